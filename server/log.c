#include "server/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/error.h"
#include "server/util.h"

static enum pg_log_level log_level = PG_LOG_INFO;
static const char *log_component = "posgate";
static int log_fd = 2;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pg_log_set_level(enum pg_log_level level)
{
    log_level = level;
}

int pg_log_level_parse(const char *name, enum pg_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum pg_log_level)i;
            return PG_OK;
        }
    }
    return PG_EINVAL;
}

void pg_log_set_component(const char *component)
{
    log_component = component;
}

void pg_log_set_fd(int fd)
{
    log_fd = fd;
}

int pg_log_enabled(enum pg_log_level level)
{
    return level >= log_level;
}

/* Field names whose values must never be written, whatever a caller passes. */
static int is_secret_key(const char *k)
{
    static const char *const needles[] = {"password", "secret", "token",    "authorization",
                                          "api_key",  "apikey", "assertion"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strcasestr(k, needles[i]))
            return 1;
    return 0;
}

static void log_write(json_t *line)
{
    char *s = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
    if (!s)
        return;
    size_t n = strlen(s);
    s[n] = '\n'; /* overwrite the NUL: we write exactly n+1 bytes below */
    pthread_mutex_lock(&log_mu);
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(log_fd, s + off, n + 1 - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&log_mu);
    free(s);
}

void pg_logj(enum pg_log_level level, const char *rid, const char *event, json_t *fields)
{
    if (!pg_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    pg_wall_iso8601(ts, sizeof ts);
    json_t *line = json_object();
    if (!line) {
        json_decref(fields);
        return;
    }
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "component", json_string(log_component));
    json_object_set_new(line, "event", json_string(event));
    if (rid)
        json_object_set_new(line, "request_id", json_string(rid));
    if (json_is_object(fields)) {
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v)
        {
            if (is_secret_key(k))
                json_object_set_new(line, k, json_string("[redacted]"));
            else
                json_object_set(line, k, v);
        }
    }
    json_decref(fields);
    log_write(line);
    json_decref(line);
}

void pg_log(enum pg_log_level level, const char *rid, const char *event, const char *fmt, ...)
{
    if (!pg_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *f = json_object();
    /* json_string rejects invalid UTF-8; json_stringn_nocheck would let bytes through unescaped */
    json_t *m = json_string(msg);
    json_object_set_new(f, "msg", m ? m : json_string("(unprintable message)"));
    pg_logj(level, rid, event, f);
}

void pg_log_mask_email(const char *email, char *out, size_t outsz)
{
    if (!outsz)
        return;
    const char *at = email ? strrchr(email, '@') : NULL;
    if (!at || at == email) {
        snprintf(out, outsz, "***");
        return;
    }
    snprintf(out, outsz, "%c***%s", email[0], at);
}

void pg_log_mask_phone(const char *phone, char *out, size_t outsz)
{
    if (!outsz)
        return;
    size_t n = phone ? strlen(phone) : 0;
    if (n < 4 || outsz < n + 1) {
        snprintf(out, outsz, "***");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = phone[i];
        int keep = (i == 0 && c == '+') || i >= n - 2;
        out[i] = keep ? c : '*';
    }
    out[n] = '\0';
}
