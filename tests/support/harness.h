/*
 * Test harness for integration tests: spawns real processes (redis-server, posgate, posgate-sim)
 * on free loopback ports in private temporary directories, and talks HTTP to them with libcurl.
 * Readiness is awaited by polling (a ready file, a PING), never by fixed sleeps.
 */
#ifndef PG_TEST_HARNESS_H
#define PG_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

/** A free TCP port on 127.0.0.1 (bound to port 0, read back, released). */
int pg_t_free_port(void);

/** Create a fresh temporary directory; returns a malloc'd path (caller frees). */
char *pg_t_mkdtemp(const char *tag);

/** Remove a directory tree (best effort). */
void pg_t_rmtree(const char *path);

/** Spawn argv with stdout and stderr appended to log_path (NULL: inherit). Returns pid or -1. */
pid_t pg_t_spawn(const char *const argv[], const char *log_path);

/** Wait for pid to exit within timeout_ms. Returns its exit status, 128+signal, or -1 on timeout.
 */
int pg_t_wait_exit(pid_t pid, int timeout_ms);

/** SIGTERM, then SIGKILL after timeout_ms. Returns the exit status as pg_t_wait_exit does. */
int pg_t_stop(pid_t pid, int timeout_ms);

/** Poll until path exists (non-empty) or timeout. Returns 0 when it does. */
int pg_t_wait_file(const char *path, int timeout_ms);

/* ---- redis-server ---- */

struct pg_t_redis {
    pid_t pid;
    int port;
    char dir[512];
    char url[600];
};

/** Start a private redis-server (AOF on, appendfsync always) on a free port; waits for PING. */
int pg_t_redis_start(struct pg_t_redis *r);

/** Stop it (SIGTERM); keeps dir and port so pg_t_redis_restart can bring it back. */
void pg_t_redis_stop(struct pg_t_redis *r);

/** Start again on the same port and directory (the AOF is replayed). */
int pg_t_redis_restart(struct pg_t_redis *r);

/** SIGSTOP / SIGCONT the server to simulate a hung Redis. */
void pg_t_redis_pause(struct pg_t_redis *r);
void pg_t_redis_resume(struct pg_t_redis *r);

/** Stop and remove the directory. */
void pg_t_redis_destroy(struct pg_t_redis *r);

/** Run one command (printf-style, hiredis format) and return 0 when the reply is not an error. */
int pg_t_redis_cmd(const struct pg_t_redis *r, const char *fmt, ...);

/* ---- posgate and posgate-sim ---- */

struct pg_t_proc {
    pid_t pid;
    char dir[512];
    char log[600];
    char ready[600];
    char url[128];        /* gateway: its base URL; sim: the Salesforce simulator's */
    char micros_url[128]; /* sim only: the MICROS simulator's base URL */
};

/**
 * Write config_json to dir/config.json and start `posgate --config ... --ready-file ...`; waits
 * until the ready file appears and fills url from it.
 */
int pg_t_gateway_start(struct pg_t_proc *p, const char *config_json);

/** Same for `posgate-sim`. */
int pg_t_sim_start(struct pg_t_proc *p, const char *config_json);

/** SIGTERM the process and wait; returns its exit status. Removes nothing. */
int pg_t_proc_stop(struct pg_t_proc *p);

/** Stop if running and remove the directory. */
void pg_t_proc_destroy(struct pg_t_proc *p);

/** The whole log the process has written so far (caller frees). */
char *pg_t_proc_log(const struct pg_t_proc *p);

/* ---- HTTP ---- */

struct pg_t_resp {
    long status;
    char *body; /* NUL-terminated, owned */
    size_t len;
    char *headers; /* raw header block, owned */
    double total_s;
    int curl_rc; /* CURLcode; non-zero when the transfer failed (e.g. dropped connection) */
};

/**
 * Perform a request. headers is a NULL-terminated list of "Name: value" (may be NULL); body may
 * be NULL. timeout_ms bounds the whole transfer (0: 10 s). Returns 0 when a response was received.
 */
int pg_t_http(const char *method,
              const char *url,
              const char *const *headers,
              const char *body,
              size_t body_len,
              int timeout_ms,
              struct pg_t_resp *out);

/** Convenience GET. */
int pg_t_get(const char *url, struct pg_t_resp *out);

/** Copy the value of a response header (case-insensitive name) into buf; returns 0 when found. */
int pg_t_resp_header(const struct pg_t_resp *r, const char *name, char *buf, size_t bufsz);

void pg_t_resp_free(struct pg_t_resp *r);

/** Path of a built binary ("posgate", "posgate-sim"). Static storage. */
const char *pg_t_bin(const char *name);

/** Path inside the source tree. Static storage, reused after 8 more calls on the thread. */
const char *pg_t_src(const char *rel);

#endif
