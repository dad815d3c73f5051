/*
 * event_test — for unit tests only: the Event object the recorder posts.
 * Only event.c and tests include this header (make lint checks).
 */
#ifndef KVR_EVENT_TEST_H
#define KVR_EVENT_TEST_H

#include <cjson/cJSON.h>

#include "kube/event.h"

/** The Event object event_record() creates, for tests: a new cJSON the
 *  caller frees. now is an RFC 3339 timestamp. */
cJSON *event__object(const struct event_ref *obj, const char *type, const char *reason,
                     const char *message, const char *component, const char *instance,
                     const char *now);

#endif
