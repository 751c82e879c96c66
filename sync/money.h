/*
 * Exact money: every amount posgate moves between MICROS and Salesforce is an int64 count of
 * minor units (cents for USD, scale 2; yen, scale 0; fils, scale 3). Doubles never carry money
 * through arithmetic: they only exist for the instant jansson hands us a parsed JSON number.
 *
 * Why parse from the double. jansson decodes a JSON real straight into a double and keeps no
 * decimal text, so "313.9" arrives as the nearest double (313.8999999999999773). Multiplying by
 * 10^scale and rounding to the nearest integer recovers the decimal exactly as long as the value
 * had no more decimals than the currency and is small enough that the double still resolves
 * a tenth of a minor unit. So pg_money_parse:
 *   - takes JSON integers exactly (292 → 29200);
 *   - for reals, computes x·10^scale, rounds half away from zero and accepts the result
 *     only when the product was within a tolerance of that integer: 1e-6, widened to 8 ulps of the
 *     product for large amounts. An amount with more decimals than the currency has (29.505 at
 *     scale 2) is off by at least 0.1 minor unit and is rejected with PG_EINVAL — it is never
 *     silently rounded;
 *   - rejects |minor| > PG_MONEY_MAX_MINOR (1e13: 100 billion dollars, far beyond any check, and
 *     well inside the range where a double resolves 0.1 minor units) with PG_EINVAL.
 * Strings, booleans and null are not amounts (PG_EINVAL); callers decide what a missing total
 * means.
 *
 * Salesforce gets amounts as decimal strings from pg_money_format ("313.90"), never as a printed
 * double: jansson prints reals with 17 significant digits ("313.89999999999998").
 */
#ifndef PG_SYNC_MONEY_H
#define PG_SYNC_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/error.h"

/** Largest magnitude, in minor units, that pg_money_parse accepts. */
#define PG_MONEY_MAX_MINOR 10000000000000LL

/** Largest supported scale (decimals of the currency, or of a quantity). */
#define PG_MONEY_MAX_SCALE 6

/**
 * Parse the JSON number v as an amount with `scale` decimals (0..PG_MONEY_MAX_SCALE; 2 for USD)
 * into *minor. PG_EINVAL when v is not a number, has more decimals than scale, or is out of
 * range (*minor untouched). v is borrowed.
 */
int pg_money_parse(const json_t *v, int scale, int64_t *minor) PG_WARN_UNUSED;

/**
 * Write minor as a plain decimal string with exactly `scale` decimals: (31390, 2) → "313.90",
 * (-2950, 2) → "-29.50", (292, 0) → "292", (5, 3) → "0.005". PG_ETOOLARGE when out (size
 * outsz) is too small, PG_EINVAL for a bad scale. Always NUL-terminates when outsz > 0.
 */
int pg_money_format(int64_t minor, int scale, char *out, size_t outsz) PG_WARN_UNUSED;

/**
 * Round minor units of a finer scale to a coarser one, half away from zero: (312857, 4 → 2)
 * → 3129. Used for a value that is legitimately finer than the currency (MICROS' per-line
 * inclusive tax, 31.285714). to_scale must be <= from_scale.
 */
int64_t pg_money_rescale(int64_t minor, int from_scale, int to_scale);

#endif
