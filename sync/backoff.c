#include "sync/backoff.h"

int64_t pg_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd, int retry_after_s)
{
    if (attempt < 1)
        attempt = 1;
    int64_t ceiling = base_ms;
    /* Double without overflowing: stop as soon as the cap is reached. */
    for (int i = 1; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    int64_t d = (int64_t)(rnd % (uint64_t)(ceiling + 1));
    if (retry_after_s > 0) {
        int64_t ra = (int64_t)retry_after_s * 1000;
        if (ra > cap_ms)
            ra = cap_ms;
        if (d < ra)
            d = ra;
    }
    return d;
}
