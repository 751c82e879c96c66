#include "sync/normalize.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EMAIL_MAX 254
#define LOCAL_MAX 64
#define LABEL_MAX 63

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int is_alnum_lc(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static void clear(char *out, size_t outsz)
{
    if (out && outsz)
        out[0] = '\0';
}

int pg_norm_email(const char *in, char *out, size_t outsz)
{
    clear(out, outsz);
    if (!in || !out)
        return PG_EINVAL;
    while (is_space(*in))
        in++;
    size_t n = strlen(in);
    while (n && is_space(in[n - 1]))
        n--;
    if (n == 0 || n > EMAIL_MAX)
        return PG_EINVAL;

    char e[EMAIL_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        e[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    e[n] = '\0';

    const char *at = strchr(e, '@');
    if (!at || strchr(at + 1, '@'))
        return PG_EINVAL;
    size_t local_len = (size_t)(at - e);
    if (local_len == 0 || local_len > LOCAL_MAX)
        return PG_EINVAL;
    /* Local part: dot-atom of atext. The apostrophe is atext (o'brien@...) and is safe here
     * because every value reaches SOQL through pg_soql_escape. */
    for (size_t i = 0; i < local_len; i++) {
        char c = e[i];
        if (c == '.') {
            if (i == 0 || i == local_len - 1 || e[i - 1] == '.')
                return PG_EINVAL;
        } else if (!is_alnum_lc(c) && !strchr("!#$%&'*+/=?^_`{|}~-", c)) {
            return PG_EINVAL; /* spaces, double quotes, (), <>, non-ASCII, control bytes */
        }
    }
    /* Domain: at least two labels of [a-z0-9-], no leading/trailing hyphen. */
    const char *d = at + 1;
    int labels = 0;
    for (;;) {
        size_t len = 0;
        while (is_alnum_lc(d[len]) || d[len] == '-')
            len++;
        if (len == 0 || len > LABEL_MAX || d[0] == '-' || d[len - 1] == '-')
            return PG_EINVAL;
        labels++;
        d += len;
        if (*d == '\0')
            break;
        if (*d != '.')
            return PG_EINVAL;
        d++;
    }
    if (labels < 2)
        return PG_EINVAL;
    if (n + 1 > outsz)
        return PG_ETOOLARGE;
    memcpy(out, e, n + 1);
    return PG_OK;
}

/* ---- phone ---- */

enum trunk { TRUNK_NANP, TRUNK_ZERO };

struct country {
    const char *iso;
    const char *cc;
    const char *intl_prefix; /* dialled before a country code from this country */
    enum trunk trunk;
    int nsn_min, nsn_max; /* national significant number length */
};

/* Lengths from the national numbering plans: GB 9-10 (0800 numbers are 9), DE 6-13 (variable
 * length area codes and subscriber numbers), FR exactly 9. */
static const struct country countries[] = {
    {"US", "1", "011", TRUNK_NANP, 10, 10}, {"CA", "1", "011", TRUNK_NANP, 10, 10},
    {"GB", "44", "00", TRUNK_ZERO, 9, 10},  {"DE", "49", "00", TRUNK_ZERO, 6, 13},
    {"FR", "33", "00", TRUNK_ZERO, 9, 9},
};

static const struct country *by_iso(const char *iso)
{
    for (size_t i = 0; i < sizeof countries / sizeof countries[0]; i++)
        if (strcasecmp(countries[i].iso, iso) == 0)
            return &countries[i];
    return NULL;
}

static const struct country *by_cc(const char *digits)
{
    for (size_t i = 0; i < sizeof countries / sizeof countries[0]; i++) {
        size_t l = strlen(countries[i].cc);
        if (strncmp(digits, countries[i].cc, l) == 0)
            return &countries[i];
    }
    return NULL;
}

/* Check (and trim the trunk prefix of) a national number for country k. nsn is modified. */
static int national_ok(const struct country *k, char *nsn)
{
    size_t n = strlen(nsn);
    if (k->trunk == TRUNK_NANP) {
        if (n == 11 && nsn[0] == '1') {
            memmove(nsn, nsn + 1, n);
            n--;
        }
        /* NXX area code (2-9 first). The exchange's first digit is not checked: the fictional
         * 555-123-4567 style numbers used in demos and tests must normalise too, and a lookup
         * of a number that cannot exist only misses. */
        if (n != 10 || nsn[0] < '2')
            return 0;
        return 1;
    }
    if (n && nsn[0] == '0') {
        memmove(nsn, nsn + 1, n);
        n--;
    }
    if (n == 0 || nsn[0] == '0')
        return 0;
    return (int)n >= k->nsn_min && (int)n <= k->nsn_max;
}

int pg_norm_phone(const char *in, const char *default_country, char *out, size_t outsz)
{
    clear(out, outsz);
    if (!in || !out)
        return PG_EINVAL;
    const struct country *home = by_iso(default_country ? default_country : "US");
    if (!home)
        return PG_ECONFIG;

    char digits[32];
    size_t nd = 0;
    int plus = 0, seen_digit = 0;
    const char *p = in;
    while (is_space(*p))
        p++;
    for (; *p; p++) {
        char c = *p;
        if (c >= '0' && c <= '9') {
            if (nd >= sizeof digits - 1)
                return PG_EINVAL; /* far too long */
            digits[nd++] = c;
            seen_digit = 1;
        } else if (c == '+') {
            /* Only as the very first character. */
            if (plus || seen_digit || p != in + strspn(in, " \t\r\n\v\f"))
                return PG_EINVAL;
            plus = 1;
        } else if (!strchr(" \t-./()", c)) {
            return PG_EINVAL; /* letters, extension markers (x, ext, #, ;, ,), anything else */
        }
    }
    digits[nd] = '\0';
    if (nd == 0)
        return PG_EINVAL;

    char e164[72];
    const char *intl = NULL;
    size_t pl = strlen(home->intl_prefix);
    if (plus)
        intl = digits;
    else if (nd > pl && strncmp(digits, home->intl_prefix, pl) == 0)
        intl = digits + pl;
    else if (strncmp(digits, "00", 2) == 0 && nd > 2)
        intl = digits + 2; /* "0044..." is unambiguous even from a NANP default */

    if (intl) {
        if (intl[0] == '0')
            return PG_EINVAL; /* no country code starts with 0 */
        const struct country *k = by_cc(intl);
        if (k) {
            char nsn[32];
            snprintf(nsn, sizeof nsn, "%s", intl + strlen(k->cc));
            if (!national_ok(k, nsn))
                return PG_EINVAL;
            snprintf(e164, sizeof e164, "+%s%s", k->cc, nsn);
        } else {
            snprintf(e164, sizeof e164, "+%s", intl);
        }
    } else {
        char nsn[32];
        snprintf(nsn, sizeof nsn, "%s", digits);
        if (!national_ok(home, nsn))
            return PG_EINVAL;
        snprintf(e164, sizeof e164, "+%s%s", home->cc, nsn);
    }
    size_t total = strlen(e164) - 1;
    if (total < 8 || total > 15)
        return PG_EINVAL;
    if (strlen(e164) + 1 > outsz)
        return PG_ETOOLARGE;
    memcpy(out, e164, strlen(e164) + 1);
    return PG_OK;
}
