/*
 * Redis key names of the Salesforce → MICROS flow, in one place so the ingest script, the push
 * worker, the admin endpoints and the tests agree.
 */
#ifndef PG_SYNC_KEYS_H
#define PG_SYNC_KEYS_H

#define PG_KEY_QUEUE "pg:push:queue"     /* stream of "sync this customer" jobs */
#define PG_KEY_GROUP "push"              /* its consumer group */
#define PG_KEY_RETRY "pg:push:retry"     /* sorted set: jobs waiting for their backoff */
#define PG_KEY_DEAD "pg:push:dead"       /* dead-letter stream */
#define PG_KEY_CUST "pg:cust:"           /* + sfid: hash with the newest state and progress */
#define PG_KEY_AUDIT "pg:audit:"         /* + sfid: stream of audit events */
#define PG_KEY_LID "pg:lid:"             /* + loyalty id: the sfid */
#define PG_KEY_LOCK "pg:lock:cust:"      /* + sfid: delivery lease */
#define PG_KEY_DEDUPE_OM "pg:dedupe:om:" /* + org15:notification id */
#define PG_KEY_DEDUPE_EV "pg:dedupe:ev:" /* + EventUuid */
#define PG_KEY_MEMBER_SF "pg:member:sf:" /* + sfid: the member cache entry (sync/member.h) */
#define PG_KEY_LOOKUP "pg:lk:"           /* + kind:value → sfid, or "!nf" (not found) */
#define PG_KEY_APIKEY "pg:apikey:"       /* + sha256 hex of a station key → {"id", "stores"} */
#define PG_KEY_IDEM "pg:idem:"           /* + caller:route:key → stored reply (24 h) */
#define PG_KEY_RATE "pg:rl:"             /* + key id:window → request count */
#define PG_KEY_STATS "pg:push:stats"     /* hash: deliveries by outcome (all processes) */

/* MICROS → Salesforce (sync/checkq.h documents each). */
#define PG_KEY_CHK "pg:chk:"               /* + loc:gcid: hash with the check and its progress */
#define PG_KEY_CHK_QUEUE "pg:chk:queue"    /* stream of "load this check" jobs */
#define PG_KEY_CHK_GROUP "load"            /* its consumer group */
#define PG_KEY_CHK_RETRY "pg:chk:retry"    /* sorted set: jobs waiting for their backoff */
#define PG_KEY_CHK_DEAD "pg:chk:dead"      /* dead-letter stream of checks */
#define PG_KEY_CHK_LINES "pg:chk:lines:"   /* + loc:gcid: line external id → Salesforce Id */
#define PG_KEY_CHK_SYNCED "pg:chk:synced:" /* + loc:busdt: gcid → what was synced */
#define PG_KEY_CHK_CURSOR "pg:chk:cursor:" /* + loc: the poller's changedSinceUTC */
#define PG_KEY_CHK_REVIEW "pg:chk:review"  /* stream of ambiguous customer matches */
#define PG_KEY_CHK_PAUSE "pg:chk:pause"    /* set while Salesforce's API allocation is spent */
#define PG_KEY_CHK_RECON "pg:chk:recon:"   /* + loc:busdt: the last reconciliation report */
#define PG_KEY_CHK_DIMS "pg:chk:dims:"     /* + loc: dimension names for the transform (JSON) */
#define PG_KEY_CHK_POLL "pg:chk:poll:"     /* + loc: which process polls the location now */
#define PG_KEY_CHK_LOCK "pg:chk:lock:"     /* + loc:gcid: the loader's lease on a check */
#define PG_KEY_CHK_KNOWN "pg:chk:known"    /* hash: Product2/PricebookEntry posgate ensured */
#define PG_KEY_CHK_MATCH "pg:chk:match:"   /* + kind:sha256(value): a cached customer match */
#define PG_KEY_CHK_REPULL "pg:chk:repull:" /* + loc:busdt: re-pull asked by reconciliation */

/* Audit streams keep the newest entries per customer. */
#define PG_AUDIT_MAXLEN 1000

/* Stringify a macro's value (for building scripts). */
#define PG__STR(x) #x
#define PG_STR(x) PG__STR(x)

#endif
