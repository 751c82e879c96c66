#include "server/error.h"

const char *pg_strerror(int err)
{
    switch (err) {
    case PG_OK:
        return "ok";
#define PG__ERR_MSG(name, code, status, msg)                                                       \
    case PG_##name:                                                                                \
        return msg;
        PG_ERRNO_MAP(PG__ERR_MSG)
#undef PG__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *pg_errname(int err)
{
    switch (err) {
    case PG_OK:
        return "OK";
#define PG__ERR_NAME(name, code, status, msg)                                                      \
    case PG_##name:                                                                                \
        return #name;
        PG_ERRNO_MAP(PG__ERR_NAME)
#undef PG__ERR_NAME
    default:
        return "EUNKNOWN";
    }
}

int pg_err_http_status(int err)
{
    switch (err) {
    case PG_OK:
        return 200;
#define PG__ERR_STATUS(name, code, status, msg)                                                    \
    case PG_##name:                                                                                \
        return status;
        PG_ERRNO_MAP(PG__ERR_STATUS)
#undef PG__ERR_STATUS
    default:
        return 500;
    }
}
