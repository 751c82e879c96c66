#include "tests/support/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "server/util.h"

int pg_t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *pg_t_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/posgate-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

void pg_t_rmtree(const char *path)
{
    if (path && *path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

pid_t pg_t_spawn(const char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    /* execvp takes char *const[] for historical reasons; it does not modify the strings */
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int pg_t_wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = pg_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
            return -1;
        }
        if (r < 0)
            return -1;
        if (pg_now_ms() > deadline)
            return -1;
        pg_sleep_ms(10);
    }
}

int pg_t_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    int st = pg_t_wait_exit(pid, timeout_ms);
    if (st == -1) {
        kill(pid, SIGKILL);
        st = pg_t_wait_exit(pid, 5000);
    }
    return st;
}

int pg_t_wait_file(const char *path, int timeout_ms)
{
    int64_t deadline = pg_now_ms() + timeout_ms;
    struct stat st;
    while (pg_now_ms() < deadline) {
        if (stat(path, &st) == 0 && st.st_size > 0)
            return 0;
        pg_sleep_ms(10);
    }
    return -1;
}

/* ---- redis-server ---- */

static int redis_ping(int port, int timeout_ms)
{
    int64_t deadline = pg_now_ms() + timeout_ms;
    while (pg_now_ms() < deadline) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisSetTimeout(c, tv);
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        } else if (c) {
            redisFree(c);
        }
        pg_sleep_ms(20);
    }
    return -1;
}

static int redis_spawn(struct pg_t_redis *r)
{
    char port[16], log[600];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    const char *argv[] = {"redis-server",
                          "--port",
                          port,
                          "--bind",
                          "127.0.0.1",
                          "--dir",
                          r->dir,
                          "--appendonly",
                          "yes",
                          "--appendfsync",
                          "always",
                          "--save",
                          "",
                          "--daemonize",
                          "no",
                          "--logfile",
                          log,
                          NULL};
    r->pid = pg_t_spawn(argv, NULL);
    if (r->pid < 0)
        return -1;
    if (redis_ping(r->port, 10000) != 0) {
        pg_t_stop(r->pid, 2000);
        r->pid = -1;
        return -1;
    }
    return 0;
}

int pg_t_redis_start(struct pg_t_redis *r)
{
    memset(r, 0, sizeof *r);
    char *d = pg_t_mkdtemp("redis");
    if (!d)
        return -1;
    snprintf(r->dir, sizeof r->dir, "%s", d);
    free(d);
    /* A port found free can be taken before redis binds it; try a few. */
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = pg_t_free_port();
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
        if (redis_spawn(r) == 0)
            return 0;
    }
    return -1;
}

void pg_t_redis_stop(struct pg_t_redis *r)
{
    if (r->pid > 0)
        pg_t_stop(r->pid, 5000);
    r->pid = -1;
}

int pg_t_redis_restart(struct pg_t_redis *r)
{
    pg_t_redis_stop(r);
    return redis_spawn(r);
}

void pg_t_redis_pause(struct pg_t_redis *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGSTOP);
}

void pg_t_redis_resume(struct pg_t_redis *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGCONT);
}

void pg_t_redis_destroy(struct pg_t_redis *r)
{
    pg_t_redis_stop(r);
    pg_t_rmtree(r->dir);
    r->dir[0] = '\0';
}

int pg_t_redis_cmd(const struct pg_t_redis *r, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = (rep && rep->type != REDIS_REPLY_ERROR) ? 0 : -1;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return rc;
}

/* ---- posgate and posgate-sim ---- */

static int
proc_start(struct pg_t_proc *p, const char *bin, const char *tag, const char *config_json)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    char *d = pg_t_mkdtemp(tag);
    if (!d)
        return -1;
    snprintf(p->dir, sizeof p->dir, "%s", d);
    free(d);
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", p->dir);
    snprintf(p->log, sizeof p->log, "%s/out.log", p->dir);
    snprintf(p->ready, sizeof p->ready, "%s/ready.json", p->dir);
    if (pg_write_file_atomic(cfg, config_json, strlen(config_json)) != 0)
        return -1;
    const char *argv[] = {pg_t_bin(bin), "--config", cfg, "--ready-file", p->ready, NULL};
    p->pid = pg_t_spawn(argv, p->log);
    if (p->pid < 0)
        return -1;
    int64_t deadline = pg_now_ms() + 15000;
    struct stat st;
    while (pg_now_ms() < deadline) {
        if (stat(p->ready, &st) == 0 && st.st_size > 0)
            break;
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = -1;
            return -1;
        }
        pg_sleep_ms(10);
    }
    json_t *j = json_load_file(p->ready, 0, NULL);
    if (!j)
        return -1;
    const char *u = json_string_value(json_object_get(j, "url"));
    if (!u)
        u = json_string_value(json_object_get(j, "salesforce_url"));
    const char *mu = json_string_value(json_object_get(j, "micros_url"));
    snprintf(p->url, sizeof p->url, "%s", u ? u : "");
    snprintf(p->micros_url, sizeof p->micros_url, "%s", mu ? mu : "");
    json_decref(j);
    return p->url[0] ? 0 : -1;
}

int pg_t_gateway_start(struct pg_t_proc *p, const char *config_json)
{
    return proc_start(p, "posgate", "gw", config_json);
}

int pg_t_sim_start(struct pg_t_proc *p, const char *config_json)
{
    return proc_start(p, "posgate-sim", "sim", config_json);
}

int pg_t_proc_stop(struct pg_t_proc *p)
{
    int st = -1;
    if (p->pid > 0)
        st = pg_t_stop(p->pid, 15000);
    p->pid = -1;
    return st;
}

void pg_t_proc_destroy(struct pg_t_proc *p)
{
    pg_t_proc_stop(p);
    if (getenv("PG_TEST_KEEP")) /* keep logs for debugging a failure */
        return;
    pg_t_rmtree(p->dir);
}

char *pg_t_proc_log(const struct pg_t_proc *p)
{
    char *s = NULL;
    if (pg_read_file(p->log, 64 << 20, &s, NULL) != 0)
        return strdup("");
    return s;
}

/* ---- HTTP ---- */

static size_t collect(char *ptr, size_t sz, size_t n, void *ud)
{
    char **dst = ud;
    size_t add = sz * n;
    size_t cur = *dst ? strlen(*dst) : 0;
    char *nb = realloc(*dst, cur + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + cur, ptr, add);
    nb[cur + add] = '\0';
    *dst = nb;
    return add;
}

int pg_t_http(const char *method,
              const char *url,
              const char *const *headers,
              const char *body,
              size_t body_len,
              int timeout_ms,
              struct pg_t_resp *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *hl = NULL;
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 10000));
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    CURLcode rc = curl_easy_perform(c);
    out->curl_rc = (int)rc;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->total_s);
    if (!out->body)
        out->body = strdup("");
    out->len = strlen(out->body);
    if (!out->headers)
        out->headers = strdup("");
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int pg_t_get(const char *url, struct pg_t_resp *out)
{
    return pg_t_http("GET", url, NULL, NULL, 0, 0, out);
}

int pg_t_resp_header(const struct pg_t_resp *r, const char *name, char *buf, size_t bufsz)
{
    size_t nl = strlen(name);
    const char *line = r->headers;
    while (line && *line) {
        const char *eol = strstr(line, "\r\n");
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - line);
            snprintf(buf, bufsz, "%.*s", (int)vl, v);
            return 0;
        }
        line = eol ? eol + 2 : NULL;
    }
    return -1;
}

void pg_t_resp_free(struct pg_t_resp *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

const char *pg_t_bin(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", PG_BINARY_DIR, name);
    return path;
}

const char *pg_t_src(const char *rel)
{
    /* A small ring, so several results can be used in one call (e.g. one snprintf). */
    static __thread char paths[8][1024];
    static __thread unsigned next;
    char *path = paths[next++ % 8];
    snprintf(path, 1024, "%s/%s", PG_SOURCE_DIR, rel);
    return path;
}
