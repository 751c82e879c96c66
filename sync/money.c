#include "sync/money.h"

#include <float.h>
#include <stdio.h>
#include <string.h>

static const int64_t pow10s[] = {1, 10, 100, 1000, 10000, 100000, 1000000};

int pg_money_parse(const json_t *v, int scale, int64_t *minor)
{
    if (scale < 0 || scale > PG_MONEY_MAX_SCALE || !v)
        return PG_EINVAL;
    int64_t mul = pow10s[scale];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        /* checked before multiplying so the product cannot overflow */
        if (i > PG_MONEY_MAX_MINOR / mul || i < -PG_MONEY_MAX_MINOR / mul)
            return PG_EINVAL;
        *minor = (int64_t)i * mul;
        return PG_OK;
    }
    if (!json_is_real(v))
        return PG_EINVAL;
    double x = json_real_value(v) * (double)mul;
    double ax = x < 0 ? -x : x;
    /* the negated comparison also catches NaN */
    if (!(ax <= (double)PG_MONEY_MAX_MINOR))
        return PG_EINVAL;
    /* Round half away from zero by hand (no libm in the link): ax is < 1e13, so the cast is
     * exact. */
    int64_t r = (int64_t)(ax + 0.5);
    /* The double of a decimal with <= scale decimals is off from the integer by a few ulps of
     * the product; one extra decimal digit is off by >= 0.1. The tolerance sits between. */
    double tol = 8.0 * DBL_EPSILON * ax;
    if (tol < 1e-6)
        tol = 1e-6;
    double d = ax - (double)r;
    if (d < 0)
        d = -d;
    if (d > tol)
        return PG_EINVAL;
    if (x < 0)
        r = -r;
    *minor = r;
    return PG_OK;
}

int pg_money_format(int64_t minor, int scale, char *out, size_t outsz)
{
    if (outsz > 0)
        out[0] = '\0';
    if (scale < 0 || scale > PG_MONEY_MAX_SCALE)
        return PG_EINVAL;
    /* magnitude in unsigned so INT64_MIN does not overflow on negation */
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    uint64_t mul = (uint64_t)pow10s[scale];
    int n;
    if (scale == 0)
        n = snprintf(out, outsz, "%s%llu", minor < 0 ? "-" : "", (unsigned long long)mag);
    else
        n = snprintf(out, outsz, "%s%llu.%0*llu", minor < 0 ? "-" : "",
                     (unsigned long long)(mag / mul), scale, (unsigned long long)(mag % mul));
    if (n < 0 || (size_t)n >= outsz) {
        if (outsz > 0)
            out[0] = '\0';
        return PG_ETOOLARGE;
    }
    return PG_OK;
}

int64_t pg_money_rescale(int64_t minor, int from_scale, int to_scale)
{
    if (to_scale >= from_scale || from_scale > PG_MONEY_MAX_SCALE || to_scale < 0)
        return minor;
    int64_t div = pow10s[from_scale - to_scale];
    int64_t q = minor / div, r = minor % div;
    /* C division truncates toward zero; push the remainder's half away from zero */
    if (r * 2 >= div)
        q++;
    else if (r * 2 <= -div)
        q--;
    return q;
}
