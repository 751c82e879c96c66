#include "store/redis.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "server/log.h"
#include "server/util.h"

/* ---- URL parsing ---- */

/* Copy s[0..n) into dst (size dsz), percent-decoding when decode is set. */
static int copy_part(char *dst, size_t dsz, const char *s, size_t n, int decode)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (decode && ch == '%') {
            static const char hex[] = "0123456789abcdef0123456789ABCDEF";
            if (i + 2 >= n)
                return PG_EINVAL;
            const char *h1 = memchr(hex, s[i + 1], 32), *h2 = memchr(hex, s[i + 2], 32);
            if (!h1 || !h2)
                return PG_EINVAL;
            ch = (char)(((h1 - hex) % 16) * 16 + (h2 - hex) % 16);
            if (ch == '\0')
                return PG_EINVAL;
            i += 2;
        }
        if (o + 1 >= dsz)
            return PG_EINVAL;
        dst[o++] = ch;
    }
    dst[o] = '\0';
    return PG_OK;
}

static int parse_int_part(const char *s, size_t n, long long min, long long max, long long *out)
{
    char tmp[24];
    if (n == 0 || n >= sizeof tmp)
        return PG_EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++) /* pg_strtonum accepts "+1" and " 1"; URLs must not */
        if (tmp[i] < '0' || tmp[i] > '9')
            return PG_EINVAL;
    return pg_strtonum(tmp, min, max, out);
}

static int host_ok(const char *h, int bracketed)
{
    if (!*h)
        return 0;
    for (const char *p = h; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == '_' || (bracketed && ch == ':');
        if (!ok)
            return 0;
    }
    return 1;
}

static int parse_tcp(const char *rest, struct pg_redis_addr *a)
{
    const char *at = strrchr(rest, '@'); /* the password may contain '@' or '/' */
    const char *hp = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon || colon + 1 == at) /* "[[user]:password@]": the colon and a password */
            return PG_EINVAL;
        if (copy_part(a->user, sizeof a->user, rest, (size_t)(colon - rest), 1) ||
            copy_part(a->password, sizeof a->password, colon + 1, (size_t)(at - colon - 1), 1))
            return PG_EINVAL;
        hp = at + 1;
    }
    const char *slash = strchr(hp, '/');
    size_t hlen = slash ? (size_t)(slash - hp) : strlen(hp);
    const char *port = NULL;
    size_t portlen = 0;
    if (hlen > 0 && hp[0] == '[') {
        const char *rb = memchr(hp, ']', hlen);
        if (!rb || copy_part(a->host, sizeof a->host, hp + 1, (size_t)(rb - hp - 1), 0) ||
            !host_ok(a->host, 1))
            return PG_EINVAL;
        const char *after = rb + 1;
        if (after < hp + hlen) {
            if (*after != ':')
                return PG_EINVAL;
            port = after + 1;
            portlen = (size_t)(hp + hlen - port);
        }
    } else {
        const char *colon = memchr(hp, ':', hlen);
        size_t nlen = colon ? (size_t)(colon - hp) : hlen;
        if (copy_part(a->host, sizeof a->host, hp, nlen, 0) || !host_ok(a->host, 0))
            return PG_EINVAL;
        if (colon) {
            port = colon + 1;
            portlen = (size_t)(hp + hlen - port);
        }
    }
    long long v = 6379;
    if (port && parse_int_part(port, portlen, 1, 65535, &v))
        return PG_EINVAL;
    a->port = (int)v;
    if (slash && slash[1]) {
        if (parse_int_part(slash + 1, strlen(slash + 1), 0, INT_MAX, &v))
            return PG_EINVAL;
        a->db = (int)v;
    }
    return PG_OK;
}

static int parse_unix(const char *rest, struct pg_redis_addr *a)
{
    if (rest[0] != '/' || rest[1] == '\0' || rest[1] == '?')
        return PG_EINVAL;
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (copy_part(a->path, sizeof a->path, rest, plen, 0))
        return PG_EINVAL;
    int seen_db = 0, seen_pw = 0, seen_user = 0;
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return PG_EINVAL;
        size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
        if (klen == 2 && !memcmp(p, "db", 2) && !seen_db++) {
            long long v;
            if (parse_int_part(eq + 1, vlen, 0, INT_MAX, &v))
                return PG_EINVAL;
            a->db = (int)v;
        } else if (klen == 8 && !memcmp(p, "password", 8) && !seen_pw++) {
            if (vlen == 0 || copy_part(a->password, sizeof a->password, eq + 1, vlen, 1))
                return PG_EINVAL;
        } else if (klen == 4 && !memcmp(p, "user", 4) && !seen_user++) {
            if (copy_part(a->user, sizeof a->user, eq + 1, vlen, 1))
                return PG_EINVAL;
        } else {
            return PG_EINVAL; /* unknown or repeated parameter */
        }
        p = amp ? amp + 1 : NULL;
        if (amp && !*p)
            return PG_EINVAL;
    }
    return PG_OK;
}

int pg_redis_url_parse(const char *url, struct pg_redis_addr *out)
{
    memset(out, 0, sizeof *out);
    if (!url)
        return PG_EINVAL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return PG_EINVAL;
    int rc = PG_EINVAL;
    if (!strncmp(url, "redis://", 8)) {
        rc = parse_tcp(url + 8, out);
    } else if (!strncmp(url, "unix://", 7)) {
        out->is_unix = 1;
        rc = parse_unix(url + 7, out);
    }
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- global state ---- */

/* Set by pg_redis_init before threads run commands; read-only afterwards. */
static struct {
    int inited;
    struct pg_redis_addr addr;
    int connect_ms, command_ms, rmin_ms, rmax_ms;
} g;

static atomic_uint g_gen;           /* bumped by init/shutdown: older connections are stale */
static atomic_ullong g_errors;      /* exported by pg_redis_error_count */
static atomic_int g_fail_streak;    /* consecutive failures; 0 = healthy */
static atomic_llong g_next_attempt; /* pg_now_ms() before which new connects fail fast */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* pg_redis_thread_bound_ms: a cap on this thread's connect and command timeouts (0: none). */
static _Thread_local int t_bound_ms;

/* ms, capped by the calling thread's bound; *cut tells whether the cap applied. */
static int bounded(int ms, int *cut)
{
    int c = t_bound_ms > 0 && t_bound_ms < ms;
    if (cut)
        *cut = c;
    return c ? t_bound_ms : ms;
}

void pg_redis_thread_bound_ms(int ms)
{
    t_bound_ms = ms > 0 ? ms : 0;
}

struct tconn {
    redisContext *c; /* owned; NULL when not connected */
    unsigned gen;
    int tmo_ms;    /* timeout currently set on the socket */
    int answered;  /* commands this connection has answered */
    int may_retry; /* this command may be retried once on a new connection */
};

static void tconn_destroy(void *p)
{
    struct tconn *t = p;
    if (t && t->c)
        redisFree(t->c);
    free(t);
}

static void key_create(void)
{
    if (pthread_key_create(&g_key, tconn_destroy) != 0)
        abort(); /* only fails when the process is out of keys: a build-time bug */
}

static void drop(struct tconn *t)
{
    if (t->c)
        redisFree(t->c);
    t->c = NULL;
    t->answered = 0;
}

static long long backoff_ms(int streak)
{
    long long d = g.rmin_ms;
    for (int i = 1; i < streak && d < g.rmax_ms; i++)
        d *= 2;
    return d < g.rmax_ms ? d : g.rmax_ms;
}

static void note_failure(const char *why)
{
    /* One Redis stall (an fsync delayed by an AOF rewrite, a pause) fails every thread waiting
     * on it at once: that is one failure of Redis, not one per thread. Only a failure outside
     * the current backoff window grows the streak, and only the thread that moves the window
     * records it; otherwise 16 simultaneous timeouts would jump straight to the longest backoff
     * and refuse all work for seconds after Redis had recovered. */
    long long now = pg_now_ms();
    long long next = atomic_load(&g_next_attempt);
    if (atomic_load(&g_fail_streak) > 0 && now < next)
        return;
    if (!atomic_compare_exchange_strong(&g_next_attempt, &next, now + g.rmin_ms))
        return; /* another thread is recording this same failure */
    int streak = atomic_fetch_add(&g_fail_streak, 1) + 1;
    atomic_store(&g_next_attempt, now + backoff_ms(streak));
    if (streak == 1)
        pg_log(PG_LOG_WARN, NULL, "redis_unavailable", "redis failed: %s; backing off", why);
}

static void note_success(void)
{
    if (atomic_load(&g_fail_streak) != 0 && atomic_exchange(&g_fail_streak, 0) != 0)
        pg_log(PG_LOG_INFO, NULL, "redis_recovered", "redis reachable again");
}

/* Drop the connection after a failure. backoff: the failure says something about Redis's
 * health (I/O, timeout), rather than about this one reply (too large). */
static int fail(struct tconn *t, int rc, int backoff)
{
    char why[160];
    snprintf(why, sizeof why, "%s (%s)", t->c && t->c->errstr[0] ? t->c->errstr : "no reply",
             pg_errname(rc));
    drop(t);
    /* A connection that already served commands and now finds the socket closed was most likely
     * cut by a Redis restart while idle: the caller retries once on a new connection before
     * anything is counted against Redis's health. */
    if (backoff && !(t->may_retry && rc == PG_EUNAVAIL)) {
        atomic_fetch_add(&g_errors, 1);
        note_failure(why);
    }
    return rc;
}

static int fail_io(struct tconn *t, int saved_errno, int cut)
{
    int timeout = t->c->err == REDIS_ERR_IO &&
                  (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT);
    return fail(t, timeout ? PG_ETIMEDOUT : PG_EUNAVAIL, !(timeout && cut));
}

static struct timeval ms_tv(int ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int set_timeout(struct tconn *t, int ms)
{
    if (t->tmo_ms == ms)
        return PG_OK;
    if (redisSetTimeout(t->c, ms_tv(ms)) != REDIS_OK)
        return PG_EUNAVAIL;
    t->tmo_ms = ms;
    return PG_OK;
}

/*
 * Send one formatted command and read its reply within timeout_ms, counting reply bytes.
 * hiredis's redisGetReply would do the same loop without the deadline and without the cap.
 */
static int exec_raw(struct tconn *t, int timeout_ms, const char *cmd, size_t len, redisReply **out)
{
    redisContext *c = t->c;
    /* A timeout that only the thread's bound caused says nothing about Redis's health: the
     * connection is dropped (its reply is still due) but the backoff is left alone. */
    int cut = 0;
    timeout_ms = bounded(timeout_ms, &cut);
    int64_t deadline = pg_now_ms() + timeout_ms;
    if (set_timeout(t, timeout_ms))
        return fail(t, PG_EUNAVAIL, 1);
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK)
        return fail(t, PG_ENOMEM, 0);
    int done = 0;
    while (!done) {
        errno = 0;
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return fail_io(t, errno, cut);
        if (!done && pg_now_ms() >= deadline)
            return fail(t, PG_ETIMEDOUT, !cut);
    }
    size_t got = 0;
    void *reply = NULL;
    for (;;) {
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return fail(t, PG_EUNAVAIL, 1); /* protocol error: stream out of sync */
        if (reply)
            break;
        int64_t left = deadline - pg_now_ms();
        if (left <= 0)
            return fail(t, PG_ETIMEDOUT, !cut);
        /* Shrink the per-read timeout only when it matters, to spare a syscall per command. */
        if (left < t->tmo_ms - 50 && set_timeout(t, (int)left))
            return fail(t, PG_EUNAVAIL, 1);
        size_t before = c->reader->len - c->reader->pos;
        errno = 0;
        if (redisBufferRead(c) != REDIS_OK)
            return fail_io(t, errno, cut);
        got += (c->reader->len - c->reader->pos) - before;
        if (got > PG_REDIS_MAX_REPLY_BYTES)
            return fail(t, PG_ETOOLARGE, 0);
    }
    redisReply *r = reply;
    int rc = r->type == REDIS_REPLY_ERROR ? PG_EPROTO : PG_OK;
    if (out)
        *out = r;
    else
        freeReplyObject(r);
    return rc;
}

static int exec_argv(struct tconn *t, redisReply **out, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0)
        return PG_ENOMEM;
    int rc = exec_raw(t, g.command_ms, cmd, (size_t)len, out);
    redisFreeCommand(cmd);
    return rc;
}

/* One handshake command (AUTH, SELECT). A refusal is a configuration problem: it is logged
 * (the command name only; never the arguments) and treated like an unreachable Redis. */
static int handshake(struct tconn *t, int argc, const char **argv)
{
    redisReply *r = NULL;
    int rc = exec_argv(t, &r, argc, argv);
    if (rc == PG_EPROTO) {
        pg_log(PG_LOG_ERROR, NULL, "redis_handshake_failed", "%s refused: %.100s", argv[0], r->str);
        drop(t);
        atomic_fetch_add(&g_errors, 1);
        note_failure("handshake refused");
        rc = PG_EUNAVAIL;
    }
    if (r)
        freeReplyObject(r);
    return rc; /* other failures: exec_raw already dropped the connection and counted */
}

/* New connection: connect, set timeouts and buffer limits, AUTH, SELECT. */
static int connect_thread(struct tconn *t)
{
    const struct pg_redis_addr *a = &g.addr;
    struct timeval ctv = ms_tv(bounded(g.connect_ms, NULL));
    errno = 0;
    redisContext *c = a->is_unix ? redisConnectUnixWithTimeout(a->path, ctv)
                                 : redisConnectWithTimeout(a->host, a->port, ctv);
    int e = errno;
    if (!c) {
        atomic_fetch_add(&g_errors, 1);
        note_failure("out of memory");
        return PG_ENOMEM;
    }
    t->c = c;
    t->gen = atomic_load(&g_gen);
    t->tmo_ms = -1;
    if (c->err)
        return fail_io(t, e, 0);
    c->reader->maxbuf = 64 * 1024;
    int rc = PG_OK;
    if (a->password[0] && a->user[0])
        rc = handshake(t, 3, (const char *[]){"AUTH", a->user, a->password});
    else if (a->password[0])
        rc = handshake(t, 2, (const char *[]){"AUTH", a->password});
    if (rc == PG_OK && a->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", a->db);
        rc = handshake(t, 2, (const char *[]){"SELECT", db});
    }
    return rc;
}

int pg_redis_connect_new(redisContext **out)
{
    *out = NULL;
    if (!g.inited)
        return PG_ECONFIG;
    struct tconn t = {0};
    int rc = connect_thread(&t);
    if (rc == PG_OK && set_timeout(&t, g.command_ms) != PG_OK)
        rc = fail(&t, PG_EUNAVAIL, 1);
    if (rc != PG_OK) {
        drop(&t);
        return rc;
    }
    *out = t.c;
    return PG_OK;
}

/* The calling thread's live connection, connecting (subject to backoff) when needed. */
static int get_conn(struct tconn **out)
{
    if (!g.inited)
        return PG_ECONFIG;
    pthread_once(&g_once, key_create);
    struct tconn *t = pthread_getspecific(g_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return PG_ENOMEM;
        if (pthread_setspecific(g_key, t) != 0) {
            free(t);
            return PG_ENOMEM;
        }
    }
    if (t->c && t->gen != atomic_load(&g_gen))
        drop(t);
    if (!t->c) {
        if (atomic_load(&g_fail_streak) > 0) {
            /* In backoff: fail fast until the window ends, then let exactly one thread probe
             * (the CAS winner moves the window; losers fail fast too). */
            long long next = atomic_load(&g_next_attempt);
            long long now = pg_now_ms();
            if (now < next)
                return PG_EUNAVAIL;
            long long win = now + backoff_ms(atomic_load(&g_fail_streak));
            if (!atomic_compare_exchange_strong(&g_next_attempt, &next, win))
                return PG_EUNAVAIL;
        }
        int rc = connect_thread(t);
        if (rc)
            return rc;
    }
    *out = t;
    return PG_OK;
}

static int run_formatted(redisReply **out, int timeout_ms, const char *cmd, size_t len)
{
    if (out)
        *out = NULL;
    struct tconn *t;
    int rc = get_conn(&t);
    if (rc)
        return rc;
    t->may_retry = t->answered > 0;
    rc = exec_raw(t, timeout_ms, cmd, len, out);
    if (rc == PG_EUNAVAIL && t->may_retry) {
        /* One retry on a fresh connection (see fail()). Safe for our commands: intake scripts
         * dedupe, and queue/ack/cache writes are idempotent in effect. */
        t->may_retry = 0;
        rc = connect_thread(t);
        if (rc == PG_OK)
            rc = exec_raw(t, timeout_ms, cmd, len, out);
    }
    t->may_retry = 0;
    if (rc == PG_OK || rc == PG_EPROTO)
        t->answered++;
    /* Healthy again only once a caller's command got an answer: a handshake that passes AUTH
     * and then fails SELECT must keep escalating the backoff. */
    if (rc == PG_OK || rc == PG_EPROTO)
        note_success();
    return rc;
}

/* ---- public API ---- */

int pg_redis_init(const struct pg_redis_opts *o)
{
    struct pg_redis_addr a;
    if (!o || pg_redis_url_parse(o->url, &a))
        return PG_EINVAL;
    if (o->password && *o->password) { /* "" means no override, as NULL does */
        if (strlen(o->password) >= sizeof a.password)
            return PG_EINVAL;
        snprintf(a.password, sizeof a.password, "%s", o->password);
    }
    int cmin = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 100;
    int cmax = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
    if (cmin > cmax)
        return PG_EINVAL;
    pg_redis_shutdown();
    g.addr = a;
    g.connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 1000;
    g.command_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 1000;
    g.rmin_ms = cmin;
    g.rmax_ms = cmax;
    g.inited = 1;
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    return PG_OK;
}

void pg_redis_shutdown(void)
{
    pthread_once(&g_once, key_create);
    struct tconn *t = pthread_getspecific(g_key);
    if (t) {
        pthread_setspecific(g_key, NULL);
        tconn_destroy(t);
    }
    atomic_fetch_add(&g_gen, 1);
    atomic_store(&g_fail_streak, 0);
    atomic_store(&g_next_attempt, 0);
    memset(&g, 0, sizeof g); /* wipes the password copy too */
}

int pg_redis_command(redisReply **out, const char *fmt, ...)
{
    if (out)
        *out = NULL;
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return len == -1 ? PG_ENOMEM : PG_EINVAL;
    int rc = run_formatted(out, g.command_ms, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int pg_redis_command_argv_timeout(
    redisReply **out, int timeout_ms, int argc, const char **argv, const size_t *argvlen)
{
    if (out)
        *out = NULL;
    if (argc < 1 || !argv || timeout_ms < 1)
        return PG_EINVAL;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return PG_ENOMEM;
    int rc = run_formatted(out, timeout_ms, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int pg_redis_command_argv(redisReply **out, int argc, const char **argv, const size_t *argvlen)
{
    return pg_redis_command_argv_timeout(out, g.command_ms > 0 ? g.command_ms : 1, argc, argv,
                                         argvlen);
}

int pg_redis_ping(void)
{
    redisReply *r = NULL;
    int rc = pg_redis_command(&r, "PING");
    if (rc == PG_OK && !(r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG")))
        rc = PG_EPROTO;
    if (r)
        freeReplyObject(r);
    return rc;
}

int pg_redis_command_timeout_ms(void)
{
    return g.command_ms;
}

unsigned long long pg_redis_error_count(void)
{
    return atomic_load(&g_errors);
}

int pg_redis_reply_is_error(const redisReply *r, const char *code)
{
    size_t n = strlen(code);
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= n &&
           !strncmp(r->str, code, n) && (r->str[n] == ' ' || r->str[n] == '\0');
}
