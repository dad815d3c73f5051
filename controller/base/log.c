/*
 * log — JSON lines on stderr. See log.h.
 */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/xalloc.h"

static enum log_level log__min = LOG_LVL_INFO;
static pthread_mutex_t log__lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const log__names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level lvl)
{
    log__min = lvl;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_LVL_ERROR; i++) {
        if (strcmp(s, log__names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_fields(enum log_level lvl, const char *msg, cJSON *fields)
{
    char ts[CLOCK_TEXT_LEN];
    struct timespec now;
    cJSON *line;
    char *text;

    if (lvl < log__min) {
        cJSON_Delete(fields);
        return;
    }
    clock_wall_ts(&now);
    clock_format_ts(&now, 3, ts);

    line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "ts", ts);
    cJSON_AddStringToObject(line, "level", log__names[lvl]);
    cJSON_AddStringToObject(line, "msg", msg);
    if (fields) {
        /* Move the fields over rather than copy them: they are ours. */
        while (fields->child) {
            cJSON *item = cJSON_DetachItemViaPointer(fields, fields->child);
            cJSON_AddItemToObject(line, item->string, item);
        }
        cJSON_Delete(fields);
    }
    text = xcjson_print(line);
    cJSON_Delete(line);
    pthread_mutex_lock(&log__lock);
    fputs(text, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log__lock);
    free(text);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (lvl < log__min)
        return;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    log_fields(lvl, msg, NULL);
    free(msg);
}
