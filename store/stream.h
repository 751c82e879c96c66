/*
 * Redis Streams as a durable work queue (consumer groups), plus the dead-letter stream.
 *
 * Delivery is at-least-once: an entry read by a consumer stays pending until acked; an entry
 * whose consumer died is reclaimed by another after it has been idle long enough, and its
 * delivery count tells the worker how many attempts have been made (so it can dead-letter it).
 *
 * Entries come back as a pg_store_batch that owns all of its memory; free it with
 * pg_store_batch_free. Field names and values are binary-safe (explicit lengths) and are also
 * NUL-terminated for convenience.
 */
#ifndef PG_STORE_STREAM_H
#define PG_STORE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

/** Room for a stream id "<ms>-<seq>" plus NUL. */
#define PG_STORE_ID_MAX 48

/** Most entries one read/range/reclaim call returns. */
#define PG_STORE_COUNT_MAX 10000

/** One field to write. Everything borrowed for the duration of the call. */
struct pg_store_kv {
    const char *name;
    const void *value;
    size_t value_len;
};

/** One field read back. Both strings are owned by the batch that holds them. */
struct pg_store_field {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
};

struct pg_store_msg {
    char id[PG_STORE_ID_MAX];
    /* Deliveries to a consumer including this one: 1 for a new read, the pending entry's count
     * after the claim for a reclaim, 0 for a plain range read. */
    long long deliveries;
    size_t nfields;
    struct pg_store_field *fields; /* owned */
};

struct pg_store_batch {
    size_t n;
    struct pg_store_msg *msgs; /* owned */
};

/** Free everything a batch owns and zero it (the struct itself is the caller's). NULL-safe. */
void pg_store_batch_free(struct pg_store_batch *b);

/** The first field called name, or NULL. Borrowed from m. */
const struct pg_store_field *pg_store_msg_field(const struct pg_store_msg *m, const char *name);

/**
 * XADD stream [MAXLEN ~ maxlen] * fields... (maxlen <= 0: no trimming). id_out (may be NULL,
 * else PG_STORE_ID_MAX bytes) receives the new entry's id.
 */
int pg_store_queue_add(const char *stream,
                       const struct pg_store_kv *fields,
                       size_t nfields,
                       long long maxlen,
                       char *id_out) PG_WARN_UNUSED;

/**
 * Make sure the consumer group exists (XGROUP CREATE stream group $|0 MKSTREAM). from_start
 * picks "0" (deliver what is already in the stream) over "$" (only new entries). An existing
 * group (BUSYGROUP) is success.
 */
int pg_store_queue_group_ensure(const char *stream,
                                const char *group,
                                int from_start) PG_WARN_UNUSED;

/**
 * XREADGROUP GROUP group consumer COUNT count [BLOCK block_ms] STREAMS stream >
 * Reads entries never delivered to the group. block_ms <= 0 does not block. A blocking read
 * gets a per-call timeout of block_ms + the command timeout, so Redis ends the block first.
 * When the group is missing (NOGROUP: Redis restarted without it) it is created from "0" --
 * redelivering beats losing work -- and the read retried once. Nothing to read: PG_OK, n == 0.
 * Ownership: *out is filled (caller frees with pg_store_batch_free), empty on error.
 */
int pg_store_queue_read(const char *stream,
                        const char *group,
                        const char *consumer,
                        int count,
                        int block_ms,
                        struct pg_store_batch *out) PG_WARN_UNUSED;

/** XACK stream group ids... ids borrowed. *acked (may be NULL) receives how many were pending. */
int pg_store_queue_ack(const char *stream,
                       const char *group,
                       const char *const *ids,
                       size_t nids,
                       long long *acked) PG_WARN_UNUSED;

/**
 * Take over up to count entries pending (delivered, not acked) for at least min_idle_ms, from
 * any consumer, for consumer. Done as XPENDING stream group IDLE min_idle_ms - + count (ids and
 * delivery counts), then XCLAIM stream group consumer min_idle_ms ids... (XCLAIM re-checks the
 * idle time, so an entry another worker claimed in between is skipped, and increments the
 * delivery count). Each returned msg's deliveries is the XPENDING count + 1, i.e. it counts this
 * claim. Entries deleted from the stream meanwhile are dropped by XCLAIM and not returned.
 * Ownership of *out as for pg_store_queue_read.
 */
int pg_store_queue_reclaim(const char *stream,
                           const char *group,
                           const char *consumer,
                           int64_t min_idle_ms,
                           int count,
                           struct pg_store_batch *out) PG_WARN_UNUSED;

/** XLEN stream (0 when it does not exist). */
int pg_store_queue_len(const char *stream, long long *out) PG_WARN_UNUSED;

/** Entries delivered to the group and not yet acked (0 when the group does not exist). */
int pg_store_queue_pending(const char *stream, const char *group, long long *out) PG_WARN_UNUSED;

/**
 * XRANGE stream start end COUNT count (start/end NULL: "-" / "+"). deliveries is 0.
 * Ownership of *out as for pg_store_queue_read.
 */
int pg_store_stream_range(const char *stream,
                          const char *start,
                          const char *end,
                          int count,
                          struct pg_store_batch *out) PG_WARN_UNUSED;

/* ---- dead letters ---- */

/*
 * A dead-letter entry is one stream entry with the fields source, orig_id, attempts, error,
 * ts_ms (wall clock) and every original field under "f." + its name, so original fields can
 * never collide with the metadata.
 */
struct pg_store_dead {
    char id[PG_STORE_ID_MAX]; /* id in the dead-letter stream */
    char *source;             /* owned: the stream the entry came from */
    long long attempts;
    char *error;             /* owned: the last error */
    int64_t ts_ms;           /* when it was dead-lettered, ms since the epoch */
    struct pg_store_msg msg; /* msg.id: the original id; msg.fields: the original fields */
};

struct pg_store_dead_list {
    size_t n;
    struct pg_store_dead *items; /* owned */
};

/** Free everything the list owns and zero it. NULL-safe. */
void pg_store_dead_list_free(struct pg_store_dead_list *l);

/**
 * Append orig (borrowed; its id and fields) to the dead-letter stream dlq with its source
 * stream, attempts and last error (borrowed; NULL is stored as ""). maxlen as for queue_add.
 */
int pg_store_dead_add(const char *dlq,
                      const char *source_stream,
                      const struct pg_store_msg *orig,
                      long long attempts,
                      const char *last_error,
                      long long maxlen,
                      char *id_out) PG_WARN_UNUSED;

/** Read dead letters in [start, end] (NULL: "-" / "+"). Ownership: caller frees *out with
 * pg_store_dead_list_free. Entries missing the metadata fields are reported as PG_EPROTO. */
int pg_store_dead_range(const char *dlq,
                        const char *start,
                        const char *end,
                        int count,
                        struct pg_store_dead_list *out) PG_WARN_UNUSED;

/** Remove one dead letter (after an operator replayed it). *deleted (may be NULL): 0 or 1. */
int pg_store_dead_del(const char *dlq, const char *id, int *deleted) PG_WARN_UNUSED;

#endif
