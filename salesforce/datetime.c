#include "salesforce/datetime.h"

#include <stddef.h>

/* n decimal digits at s, or -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

int pg_sf_parse_datetime(const char *s, int64_t *epoch_ms)
{
    if (!s || !epoch_ms)
        return PG_EINVAL;
    /* "YYYY-MM-DDTHH:MM:SS" is 19 fixed characters; check each separator before reading on. */
    for (int i = 0; i < 19; i++)
        if (!s[i])
            return PG_EINVAL;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return PG_EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 59 || d > days_in_month(y, mo))
        return PG_EINVAL;
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (p[n] >= '0' && p[n] <= '9')
            n++;
        if (n < 1 || n > 9)
            return PG_EINVAL;
        for (int i = 0; i < 3; i++)
            ms = ms * 10 + (i < n ? p[i] - '0' : 0);
        p += n;
    }
    int off_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = (p[0] && p[1]) ? digits(p, 2) : -1;
        if (oh < 0)
            return PG_EINVAL;
        p += 2;
        if (*p == ':')
            p++;
        int om = (p[0] && p[1]) ? digits(p, 2) : -1;
        if (om < 0 || oh > 23 || om > 59)
            return PG_EINVAL;
        p += 2;
        off_min = sign * (oh * 60 + om);
    } else {
        return PG_EINVAL; /* no zone: local time would be a guess */
    }
    if (*p)
        return PG_EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    secs -= (int64_t)off_min * 60;
    *epoch_ms = secs * 1000 + ms;
    return PG_OK;
}
