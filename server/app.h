/*
 * The application state handed to every handler: the loaded configuration and, as later flows
 * arrive, their long-lived parts. Built once in main, read-only while serving.
 */
#ifndef PG_APP_H
#define PG_APP_H

#include "server/config.h"

struct pg_app {
    const struct pg_config *cfg; /* borrowed from main */
    const char *version;
};

#endif
