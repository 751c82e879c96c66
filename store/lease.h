/*
 * Leases on Redis keys (SET key holder NX PX ms), as the check loader and the push workers take
 * them on a check or a customer, with one recovery the plain pattern lacks.
 *
 * Why: a worker releases its lease at the end of a batch with a compare-and-delete. When Redis
 * blinks at that moment (a restart, a stall; scripts/demo step 5 stops it), the release fails
 * and the lease stays until its PX runs out (2 min for checks by default): the job comes back
 * and is deferred until then. A lease set tells, within one process, which leases its workers
 * are using; a lease in Redis that names a worker of this process (holder prefix) but is in
 * no one's use here was left by such a failed release, and is taken over at once. Leases held
 * by another process are never touched: that process may still be working.
 *
 * Every function that talks to Redis returns PG_OK or a PG_E* code (store/redis.h).
 */
#ifndef PG_STORE_LEASE_H
#define PG_STORE_LEASE_H

#include <pthread.h>

#include <jansson.h>

#include "server/error.h"

/** Longest holder name (a worker's consumer name). */
#define PG_LEASE_HOLDER_MAX 95

struct pg_lease_set {
    pthread_mutex_t mu;
    json_t *in_use;                       /* key -> count of this process's workers using it */
    char prefix[PG_LEASE_HOLDER_MAX + 1]; /* the holder names of this process's workers begin so */
};

/** Init a set for holders named prefix... (e.g. "<host>-<pid>-load-"). PG_ENOMEM. */
int pg_lease_set_init(struct pg_lease_set *s, const char *prefix) PG_WARN_UNUSED;
void pg_lease_set_free(struct pg_lease_set *s);

/**
 * Take the lease on key for holder for ms. *got = 1 when taken: free, or left by a failed
 * release of this process (see above). *got = 0 when someone is using it. Either way the key is
 * counted as in use by the caller until pg_lease_release (call it whatever this returns).
 */
int pg_lease_take(struct pg_lease_set *s, const char *key, const char *holder, int ms, int *got)
    PG_WARN_UNUSED;

/**
 * Release: delete key if it still names holder (when held), then stop counting it as in use
 * here, even when Redis did not answer (the lease is then recoverable, see above).
 */
void pg_lease_release(struct pg_lease_set *s, const char *key, const char *holder, int held);

#endif
