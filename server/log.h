/*
 * Structured logging: one JSON object per line on stderr.
 *
 * Every line carries ts, level, component and event; lines about a request carry its request_id.
 * Fields whose names look like secrets (password, secret, token, authorization, api_key) are
 * replaced by "[redacted]" as a last line of defence; PII is masked with the helpers below by the
 * caller before it reaches a field.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

#include <stddef.h>

#include <jansson.h>

enum pg_log_level { PG_LOG_DEBUG = 0, PG_LOG_INFO, PG_LOG_WARN, PG_LOG_ERROR };

/** Set the process-wide minimum level. */
void pg_log_set_level(enum pg_log_level level);

/** Parse "debug" | "info" | "warn" | "error". Returns 0 or PG_EINVAL. */
int pg_log_level_parse(const char *name, enum pg_log_level *out);

/** Set the component name written on every line (borrowed; must outlive logging). */
void pg_log_set_component(const char *component);

/** True when a line at this level would be written. */
int pg_log_enabled(enum pg_log_level level);

/**
 * Log an event with a printf-formatted "msg". rid may be NULL.
 */
void pg_log(enum pg_log_level level, const char *rid, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Log an event with extra structured fields.
 * Ownership: steals fields (a JSON object, may be NULL).
 */
void pg_logj(enum pg_log_level level, const char *rid, const char *event, json_t *fields);

/** Mask an e-mail address for logs: "jane.doe@example.com" -> "j***@example.com". */
void pg_log_mask_email(const char *email, char *out, size_t outsz);

/** Mask a phone number for logs, keeping the last two digits: "+15551234567" -> "+*********67". */
void pg_log_mask_phone(const char *phone, char *out, size_t outsz);

/** Redirect output to a file descriptor (tests capture logs through a pipe). Default is 2. */
void pg_log_set_fd(int fd);

#endif
