/*
 * posgate error convention.
 *
 * Every fallible function returns int: 0 (PG_OK) on success, a negative PG_E* code on failure.
 * Results come back through out-parameters. The X-macro below is the single place where a code
 * gets its name, its message and the HTTP status a handler answers with when the code reaches it.
 */
#ifndef PG_ERROR_H
#define PG_ERROR_H

#define PG_ERRNO_MAP(XX)                                                                           \
    XX(ENOMEM, -1, 503, "out of memory")                                                           \
    XX(EINVAL, -2, 400, "invalid argument")                                                        \
    XX(ETOOLARGE, -3, 413, "too large")                                                            \
    XX(ENOTFOUND, -4, 404, "not found")                                                            \
    XX(ETIMEDOUT, -5, 504, "timed out")                                                            \
    XX(EIO, -6, 502, "i/o error")                                                                  \
    XX(EUNAVAIL, -7, 503, "dependency unavailable")                                                \
    XX(EEXIST, -8, 409, "already exists")                                                          \
    XX(EPROTO, -9, 502, "protocol error")                                                          \
    XX(EAUTH, -10, 401, "not authenticated")                                                       \
    XX(EFORBIDDEN, -11, 403, "forbidden")                                                          \
    XX(ECONFIG, -12, 500, "configuration error")

enum pg_err {
    PG_OK = 0,
#define PG__ERR_ENUM(name, code, status, msg) PG_##name = (code),
    PG_ERRNO_MAP(PG__ERR_ENUM)
#undef PG__ERR_ENUM
};

/** Human-readable text for an error code. Returns a static string (never NULL). */
const char *pg_strerror(int err);

/** Symbolic name of an error code ("EINVAL"). Returns a static string (never NULL). */
const char *pg_errname(int err);

/** HTTP status a REST handler answers with for this code (500 for an unknown code). */
int pg_err_http_status(int err);

#define PG_WARN_UNUSED __attribute__((warn_unused_result))

#endif
