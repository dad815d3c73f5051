/*
 * log — one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339, UTC, milliseconds), "level" and "msg";
 * log_fields() adds structured facts (a recovery decision, an API error).
 * Lines from different threads never interleave. Logging never fails the
 * caller.
 */
#ifndef KVR_LOG_H
#define KVR_LOG_H

#include <cjson/cJSON.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/** Sets the lowest level written (default LOG_LVL_INFO). */
void log_set_level(enum log_level lvl);

/** Parses "debug", "info", "warn" or "error"; returns 0, or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/** Writes a line with a printf-formatted message. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Writes a line with msg and every member of fields (which may be NULL).
 *  Takes ownership of fields. */
void log_fields(enum log_level lvl, const char *msg, cJSON *fields);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
