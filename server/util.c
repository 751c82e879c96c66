#include "server/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_wall_iso8601(char *out, size_t outsz)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

int pg_strtonum(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s)
        return PG_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return PG_EINVAL;
    *out = v;
    return PG_OK;
}

int pg_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? PG_OK : PG_EIO;
}

int pg_random_hex_id(char *out, size_t outsz)
{
    unsigned char raw[16];
    if (outsz < 33)
        return PG_EINVAL;
    int rc = pg_random_bytes(raw, sizeof raw);
    if (rc)
        return rc;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
    return PG_OK;
}

int pg_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int rc = PG_EIO;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? PG_ENOTFOUND : PG_EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        goto out;
    if ((size_t)st.st_size > max) {
        rc = PG_ETOOLARGE;
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data) {
        rc = PG_ENOMEM;
        goto out;
    }
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size)
        goto out;
    data[n] = '\0';
    *out = data;
    if (len)
        *len = n;
    data = NULL;
    rc = PG_OK;
out:
    free(data);
    fclose(f);
    return rc;
}

int pg_write_file_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return PG_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return PG_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            unlink(tmp);
            return PG_EIO;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return PG_EIO;
    }
    return PG_OK;
}

void pg_thread_name(const char *name)
{
    char n[16];
    snprintf(n, sizeof n, "%s", name);
    (void)pthread_setname_np(pthread_self(), n); /* a name is a convenience: never fatal */
}

void pg_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
