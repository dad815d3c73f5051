/*
 * event — Kubernetes Events with client-go-like de-duplication. See event.h.
 */
#include "kube/event.h"
#include "kube/event_test.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xalloc.h"

#define EVENT__SLOTS 512    /* remembered Events (a direct-mapped cache) */
#define EVENT__MAX_MSG 1024 /* message bytes kept */

static const struct kube_resource event__events = {"", "v1", "events"};

struct event__slot {
    uint64_t hash; /* of object uid/name, type, reason and message; 0 = empty */
    char *ns;      /* the Event's namespace */
    char *name;    /* the Event's name, as created */
    int count;     /* occurrences recorded so far */
};

struct event_recorder {
    struct kube *kube;    /* borrowed */
    char *component;      /* source.component and reportingController */
    char *instance;       /* reportingInstance */
    pthread_mutex_t lock; /* guards slots */
    struct event__slot slots[EVENT__SLOTS];
};

/* One field of a slot's hash: the bytes of s, then a 0xff separator, so that
 * "ab","c" != "a","bc". (Not hash_fnv_field(), whose separator is the NUL:
 * kept as it was, so the slots are.) */
static uint64_t event__hash(uint64_t h, const char *s)
{
    return hash_fnv(hash_fnv_str(h, s), "\xff", 1);
}

struct event_recorder *event_recorder_new(struct kube *k, const char *component,
                                          const char *instance)
{
    struct event_recorder *r = xcalloc(1, sizeof(*r));

    r->kube = k;
    r->component = xstrdup(component);
    r->instance = xstrdup(instance);
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void event_recorder_free(struct event_recorder *r)
{
    if (!r)
        return;
    for (int i = 0; i < EVENT__SLOTS; i++) {
        free(r->slots[i].ns);
        free(r->slots[i].name);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->component);
    free(r->instance);
    free(r);
}

cJSON *event__object(const struct event_ref *obj, const char *type, const char *reason,
                     const char *message, const char *component, const char *instance,
                     const char *now)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(ev, "metadata");
    cJSON *io = cJSON_AddObjectToObject(ev, "involvedObject");
    char *gen = xasprintf("%s.", obj->name);

    cJSON_AddStringToObject(ev, "apiVersion", "v1");
    cJSON_AddStringToObject(ev, "kind", "Event");
    cJSON_AddStringToObject(meta, "generateName", gen);
    cJSON_AddStringToObject(meta, "namespace", obj->ns);
    cJSON_AddStringToObject(io, "apiVersion", obj->api_version);
    cJSON_AddStringToObject(io, "kind", obj->kind);
    cJSON_AddStringToObject(io, "namespace", obj->ns);
    cJSON_AddStringToObject(io, "name", obj->name);
    if (obj->uid)
        cJSON_AddStringToObject(io, "uid", obj->uid);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "reason", reason);
    cJSON_AddStringToObject(ev, "message", message);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ev, "source"), "component", component);
    cJSON_AddStringToObject(ev, "reportingComponent", component);
    cJSON_AddStringToObject(ev, "reportingInstance", instance);
    cJSON_AddStringToObject(ev, "firstTimestamp", now);
    cJSON_AddStringToObject(ev, "lastTimestamp", now);
    cJSON_AddNumberToObject(ev, "count", 1);
    free(gen);
    return ev;
}

/* Bumps count and lastTimestamp of an Event we created. */
static int event__bump(struct event_recorder *r, const char *ns, const char *name, int count,
                       const char *now)
{
    cJSON *patch = cJSON_CreateObject();
    char *path = kube_path(&event__events, ns, name, NULL);
    struct kube_error err;
    int rc;

    cJSON_AddNumberToObject(patch, "count", count);
    cJSON_AddStringToObject(patch, "lastTimestamp", now);
    rc = kube_patch(r->kube, path, KUBE_PATCH_MERGE, patch, NULL, &err);
    cJSON_Delete(patch);
    free(path);
    return rc;
}

void event_record(struct event_recorder *r, const struct event_ref *obj, const char *type,
                  const char *reason, const char *fmt, ...)
{
    char message[EVENT__MAX_MSG], now[CLOCK_TEXT_LEN];
    va_list ap;
    uint64_t h = HASH_TABLE_INIT;
    struct event__slot *s;
    char *bump_ns = NULL, *bump_name = NULL;
    int bump_count = 0, rc;
    struct kube_error err = {0};
    cJSON *ev, *created = NULL;
    char *path;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    clock_format(clock_wall(), now);

    h = event__hash(h, obj->uid ? obj->uid : obj->name);
    h = event__hash(h, obj->ns);
    h = event__hash(h, type);
    h = event__hash(h, reason);
    h = event__hash(h, message);
    h |= 1; /* never the empty marker */
    s = &r->slots[h % EVENT__SLOTS];

    pthread_mutex_lock(&r->lock);
    if (s->hash == h && s->name) {
        bump_count = ++s->count;
        bump_ns = xstrdup(s->ns);
        bump_name = xstrdup(s->name);
    }
    pthread_mutex_unlock(&r->lock);

    /* A repeat: count it on the Event we made. If that Event is gone (it
     * expired, or someone deleted it), fall through and create a new one. */
    if (bump_name && event__bump(r, bump_ns, bump_name, bump_count, now) == 0)
        goto out;

    ev = event__object(obj, type, reason, message, r->component, r->instance, now);
    path = kube_path(&event__events, obj->ns, NULL, NULL);
    rc = kube_create(r->kube, path, ev, &created, &err);
    free(path);
    cJSON_Delete(ev);
    if (rc) {
        log_warn("event %s/%s %s not recorded: %s", obj->ns, obj->name, reason, err.message);
        goto out;
    }
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(created, "metadata"), "name"));
    if (name) {
        pthread_mutex_lock(&r->lock);
        free(s->ns);
        free(s->name);
        s->hash = h;
        s->ns = xstrdup(obj->ns);
        s->name = xstrdup(name);
        s->count = 1;
        pthread_mutex_unlock(&r->lock);
    }
out:
    cJSON_Delete(created);
    free(bump_ns);
    free(bump_name);
}
