/*
 * watch — the reflector: list, then watch, one resource. See watch.h.
 *
 * The thread alternates between two states: listing (paged GETs, each page
 * applied as it arrives, then the keys the list lacked reported deleted) and
 * watching (one streamed GET from the last resourceVersion, its lines applied
 * one by one). A watch that ends normally is resumed at once; one that ends
 * in 410 Gone sends the thread back to listing; one that fails, or ends
 * without having been useful, is retried after an exponential, jittered
 * backoff. Only the reflector thread touches the key table; the counters and
 * the resume resourceVersion are shared under a lock.
 */
#include "kube/watch.h"
#include "kube/watch_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/xalloc.h"

/* A watch that ends sooner than this without applying anything counts as a
 * failure for the backoff: a server that closes every stream at once must
 * not make us spin. */
#define WATCH_MIN_USEFUL_MS 1000L
/* Extra time the client allows a watch beyond its timeoutSeconds before it
 * declares the connection dead. */
#define WATCH_STREAM_MARGIN_S 30L

/*
 * What the reflector remembers of one object: enough to tell a new object
 * from a changed one, to notice a replacement (new uid under the same key),
 * and to build the stub of a delete it did not see. One allocation of about
 * fifty bytes: the key, then the uid, packed to 16 bytes when it is a
 * canonical UUID (as the API server writes them); the resourceVersion is
 * opaque to clients, but is in practice a decimal etcd revision, kept as a
 * number when it is one and as a string otherwise. No hash handle: the key
 * table (struct watch_keys) finds it.
 */
struct watch_obj {
    union {
        uint64_t num; /* WATCH_RV_NUM */
        char *str;    /* otherwise (owned) */
    } rv;             /* resourceVersion last delivered */
    uint8_t flags;    /* WATCH_RV_NUM, WATCH_UID_BIN, WATCH_SEEN */
    char data[];      /* key, NUL, then the uid: 16 bytes, or a string */
};

#define WATCH_RV_NUM 1u  /* rv.num holds the resourceVersion */
#define WATCH_UID_BIN 2u /* the uid is 16 packed bytes */
#define WATCH_SEEN 4u    /* present in the list being applied */

struct watch {
    struct kube *k;           /* borrowed client, or NULL */
    struct kube_resource res; /* strings owned */
    char *ns;                 /* NULL: all namespaces */
    char *label_selector;     /* NULL: everything */
    char *field_selector;     /* NULL: everything */
    char *name;               /* for logs */
    long page_size;           /* list limit */
    struct watch_handlers h;  /* the consumer */
    void *ud;                 /* for the handlers */
    struct watch_keys keys;   /* known keys; reflector thread only */
    char *list_rv;            /* resourceVersion of the list in progress */
    bool delivered_synced;    /* on_synced called since watch_start */
    bool applied;             /* the current watch applied an event */
    int stream_rc;            /* what stopped the current stream */
    struct watch_lines lines; /* the current stream's partial line */
    unsigned long watches;    /* watch requests made */
    uint64_t rng;             /* jitter (rand.h); the reflector thread only */
    pthread_t thread;         /* the reflector */
    bool running;             /* thread started and not joined */
    atomic_bool stopping;     /* watch_stop() asked the thread to end */
    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t cond;      /* stop requests and the synced flag */
    bool synced;              /* first full list delivered */
    char *rv;                 /* resume resourceVersion, "" before a list */
    struct watch_stats st;    /* counters */
};

/* ---- small helpers -------------------------------------------------- */

static const char *watch__str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void watch__stat_add(struct watch *w, unsigned long *counter)
{
    pthread_mutex_lock(&w->lock);
    (*counter)++;
    pthread_mutex_unlock(&w->lock);
}

static void watch__set_rv(struct watch *w, const char *rv)
{
    if (rv == NULL || rv[0] == '\0')
        return;
    pthread_mutex_lock(&w->lock);
    if (strcmp(w->rv, rv) != 0) {
        free(w->rv);
        w->rv = xstrdup(rv);
    }
    pthread_mutex_unlock(&w->lock);
}

/* The identity of an object: its key (new string), uid and resourceVersion
 * (borrowed from obj, "" when absent). Returns NULL when obj has no name. */
static char *watch__identity(const cJSON *obj, const char **uid, const char **rv)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = watch__str(md, "name");
    const char *ns = watch__str(md, "namespace");

    if (!cJSON_IsObject(md) || name == NULL || name[0] == '\0')
        return NULL;
    *uid = watch__str(md, "uid");
    *rv = watch__str(md, "resourceVersion");
    if (*uid == NULL)
        *uid = "";
    if (*rv == NULL)
        *rv = "";
    return ns && ns[0] ? xasprintf("%s/%s", ns, name) : xstrdup(name);
}

/* A decimal resourceVersion without leading zeros that fits 64 bits, as
 * a number; false for anything else. */
static bool watch__rv_num(const char *rv, uint64_t *out)
{
    uint64_t n = 0;
    size_t len = strlen(rv);

    if (len == 0 || len > 19 || (rv[0] == '0' && len > 1))
        return false;
    for (const char *p = rv; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    return true;
}

static int watch__hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A canonical lower-case UUID (8-4-4-4-12), as 16 bytes; false otherwise,
 * so that any other uid still round-trips exactly. */
static bool watch__uid_pack(const char *uid, uint8_t out[16])
{
    int j = 0;

    if (strlen(uid) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (uid[i] != '-')
                return false;
            continue;
        }
        int hi = watch__hex(uid[i]), lo = watch__hex(uid[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[j++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    return true;
}

static const char *watch__uid_of(const struct watch_obj *o, char buf[37])
{
    static const char hex[] = "0123456789abcdef";
    const char *u = o->data + strlen(o->data) + 1;
    int j = 0;

    if (!(o->flags & WATCH_UID_BIN))
        return u;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[j++] = '-';
        buf[j++] = hex[(uint8_t)u[i] >> 4];
        buf[j++] = hex[(uint8_t)u[i] & 15];
    }
    buf[j] = '\0';
    return buf;
}

static bool watch__uid_eq(const struct watch_obj *o, const char *uid)
{
    uint8_t bin[16];
    const char *u = o->data + strlen(o->data) + 1;

    if (o->flags & WATCH_UID_BIN)
        return watch__uid_pack(uid, bin) && memcmp(bin, u, 16) == 0;
    return strcmp(u, uid) == 0;
}

static const char *watch__rv_of(const struct watch_obj *o, char buf[24])
{
    if (!(o->flags & WATCH_RV_NUM))
        return o->rv.str;
    snprintf(buf, 24, "%llu", (unsigned long long)o->rv.num);
    return buf;
}

static bool watch__rv_eq(const struct watch_obj *o, const char *rv)
{
    uint64_t n;

    if (o->flags & WATCH_RV_NUM)
        return watch__rv_num(rv, &n) && n == o->rv.num;
    return strcmp(o->rv.str, rv) == 0;
}

static void watch__rv_set(struct watch_obj *o, const char *rv)
{
    if (!(o->flags & WATCH_RV_NUM))
        free(o->rv.str);
    o->flags &= (uint8_t)~WATCH_RV_NUM;
    if (watch__rv_num(rv, &o->rv.num))
        o->flags |= WATCH_RV_NUM;
    else
        o->rv.str = xstrdup(rv);
}

struct watch_obj *watch__obj_new(const char *key, const char *uid, const char *rv)
{
    size_t kl = strlen(key), ul = strlen(uid);
    uint8_t bin[16];
    bool packed = watch__uid_pack(uid, bin);
    struct watch_obj *o =
        xmalloc(offsetof(struct watch_obj, data) + kl + 1 + (packed ? 16 : ul + 1));

    memset(o, 0, offsetof(struct watch_obj, data));
    memcpy(o->data, key, kl + 1);
    if (packed) {
        memcpy(o->data + kl + 1, bin, 16);
        o->flags |= WATCH_UID_BIN;
    } else {
        memcpy(o->data + kl + 1, uid, ul + 1);
    }
    o->flags |= WATCH_RV_NUM; /* nothing to free yet */
    watch__rv_set(o, rv);
    return o;
}

void watch__obj_free(struct watch_obj *o)
{
    if (o) {
        if (!(o->flags & WATCH_RV_NUM))
            free(o->rv.str);
        free(o);
    }
}

const char *watch__obj_key(const struct watch_obj *o)
{
    return o->data;
}

/* ---- the key table (watch_test.h) ---------------------------------- */

#define WATCH_KEYS_MIN 16u /* slots of a table's first allocation */

static uint64_t watch__keys_hash(const struct watch_keys *t, const char *key)
{
    return t->hash ? t->hash(t->seed, key) : hash_fnv_str(t->seed, key);
}

/* The slot of the entry at index i, whose key hashes to h. */
static uint32_t watch__keys_slot_of(const struct watch_keys *t, uint64_t h, uint32_t i)
{
    uint32_t s = (uint32_t)h & t->mask;

    while ((uint32_t)t->slots[s] != i + 1)
        s = (s + 1) & t->mask;
    return s;
}

static void watch__keys_place(struct watch_keys *t, uint64_t h, uint32_t i)
{
    uint32_t s = (uint32_t)h & t->mask;

    while (t->slots[s] != 0)
        s = (s + 1) & t->mask;
    t->slots[s] = (h >> 32) << 32 | (uint64_t)(i + 1);
}

/* Re-places every entry in nslots slots (a power of two). */
static void watch__keys_rebuild(struct watch_keys *t, uint32_t nslots)
{
    free(t->slots);
    t->slots = xcalloc(nslots, sizeof(*t->slots));
    t->mask = nslots - 1;
    for (uint32_t i = 0; i < t->n; i++)
        watch__keys_place(t, watch__keys_hash(t, t->objs[i]->data), i);
}

struct watch_obj *watch__keys_find(const struct watch_keys *t, const char *key)
{
    uint64_t h;
    uint32_t s;

    if (t->slots == NULL)
        return NULL;
    h = watch__keys_hash(t, key);
    for (s = (uint32_t)h & t->mask; t->slots[s] != 0; s = (s + 1) & t->mask) {
        uint64_t v = t->slots[s];
        struct watch_obj *o = t->objs[(uint32_t)v - 1];
        if (v >> 32 == h >> 32 && strcmp(o->data, key) == 0)
            return o;
    }
    return NULL;
}

void watch__keys_add(struct watch_keys *t, struct watch_obj *o)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : WATCH_KEYS_MIN;
        t->objs = xreallocarray(t->objs, t->cap, sizeof(*t->objs));
    }
    t->objs[t->n++] = o;
    if (t->slots == NULL || (uint64_t)t->n * 4 > ((uint64_t)t->mask + 1) * 3)
        watch__keys_rebuild(t, t->slots ? (t->mask + 1) * 2 : WATCH_KEYS_MIN);
    else
        watch__keys_place(t, watch__keys_hash(t, o->data), t->n - 1);
}

void watch__keys_del(struct watch_keys *t, struct watch_obj *o)
{
    uint64_t h = watch__keys_hash(t, o->data);
    uint32_t hole, i, last = t->n - 1;

    /* the index i of o: the slot its probe run holds for it */
    for (hole = (uint32_t)h & t->mask;; hole = (hole + 1) & t->mask) {
        i = (uint32_t)t->slots[hole] - 1;
        if (t->objs[i] == o)
            break;
    }
    /* Shift the run back over the hole (linear probing without
     * tombstones): an entry moves when its home is not between the hole
     * and where it sits. */
    for (uint32_t s = (hole + 1) & t->mask; t->slots[s] != 0; s = (s + 1) & t->mask) {
        uint32_t home =
            (uint32_t)watch__keys_hash(t, t->objs[(uint32_t)t->slots[s] - 1]->data) & t->mask;
        if (((s - home) & t->mask) >= ((s - hole) & t->mask)) {
            t->slots[hole] = t->slots[s];
            hole = s;
        }
    }
    t->slots[hole] = 0;
    /* the last entry fills o's place in objs */
    if (i != last) {
        struct watch_obj *m = t->objs[last];
        uint32_t ms = watch__keys_slot_of(t, watch__keys_hash(t, m->data), last);
        t->slots[ms] = (t->slots[ms] >> 32) << 32 | (uint64_t)(i + 1);
        t->objs[i] = m;
    }
    t->n--;
    /* a relist that dropped most keys leaves the table mostly empty */
    if (t->mask + 1 > WATCH_KEYS_MIN && (uint64_t)t->n * 8 < (uint64_t)t->mask + 1) {
        watch__keys_rebuild(t, (t->mask + 1) / 2);
        t->cap = t->cap / 2 > t->n ? t->cap / 2 : t->cap;
        t->objs = xreallocarray(t->objs, t->cap, sizeof(*t->objs));
    }
}

void watch__keys_clear(struct watch_keys *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        watch__obj_free(t->objs[i]);
    free(t->objs);
    free(t->slots);
    t->objs = NULL;
    t->slots = NULL;
    t->n = t->cap = t->mask = 0;
}

static void watch__count_objects(struct watch *w)
{
    size_t n = w->keys.n;

    pthread_mutex_lock(&w->lock);
    w->st.objects = n;
    pthread_mutex_unlock(&w->lock);
}

/* The stub a final-state-unknown delete carries: the metadata we kept. */
static cJSON *watch__stub(const struct watch_obj *o)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
    const char *slash = strchr(o->data, '/');
    char uid[37], rv[24];

    if (slash) {
        char *ns = xstrndup(o->data, (size_t)(slash - o->data));
        cJSON_AddStringToObject(md, "namespace", ns);
        cJSON_AddStringToObject(md, "name", slash + 1);
        free(ns);
    } else {
        cJSON_AddStringToObject(md, "name", o->data);
    }
    cJSON_AddStringToObject(md, "uid", watch__uid_of(o, uid));
    cJSON_AddStringToObject(md, "resourceVersion", watch__rv_of(o, rv));
    return obj;
}

static void watch__deliver_stub_delete(struct watch *w, const struct watch_obj *o)
{
    if (w->h.on_delete) {
        cJSON *stub = watch__stub(o);
        w->h.on_delete(w->ud, stub, true);
        cJSON_Delete(stub);
    }
}

/*
 * Records obj as present now and tells the consumer what changed: a new key
 * is an add, a new uid under a known key a delete of the old object and an
 * add, a new resourceVersion an update; the same resourceVersion again is
 * nothing (a resumed watch or a relist may repeat what we already have).
 */
static void watch__upsert(struct watch *w, const char *key, const char *uid, const char *rv,
                          const cJSON *obj)
{
    struct watch_obj *o = NULL;

    o = watch__keys_find(&w->keys, key);
    if (o && !watch__uid_eq(o, uid)) {
        watch__keys_del(&w->keys, o);
        watch__deliver_stub_delete(w, o);
        watch__obj_free(o);
        o = NULL;
    }
    if (o == NULL) {
        o = watch__obj_new(key, uid, rv);
        o->flags |= WATCH_SEEN;
        watch__keys_add(&w->keys, o);
        if (w->h.on_add)
            w->h.on_add(w->ud, obj);
        return;
    }
    o->flags |= WATCH_SEEN;
    if (watch__rv_eq(o, rv))
        return;
    watch__rv_set(o, rv);
    if (w->h.on_update)
        w->h.on_update(w->ud, obj);
}

/* ---- lines ---------------------------------------------------------- */

int watch__lines_feed(struct watch_lines *l, const char *data, size_t len, watch_line_fn fn,
                      void *ud)
{
    size_t max = l->max_line ? l->max_line : WATCH_MAX_LINE;
    size_t start = 0;
    int rc = 0;

    /* The rest of an over-long line is dropped without being buffered. */
    while (l->skipping && len > 0) {
        const char *nl = memchr(data, '\n', len);
        if (nl == NULL)
            return 0;
        len -= (size_t)(nl + 1 - data);
        data = nl + 1;
        l->skipping = false;
    }
    if (len > 0)
        buf_append(&l->pending, data, len);
    while (rc == 0 && l->pending.len > 0) {
        char *p = l->pending.data;
        size_t from = l->scanned > start ? l->scanned : start;
        char *nl = memchr(p + from, '\n', l->pending.len - from);
        if (nl == NULL) {
            l->scanned = l->pending.len;
            break;
        }
        size_t n = (size_t)(nl - (p + start));
        *nl = '\0';
        if (n > max) {
            rc = fn(ud, NULL, 0);
        } else {
            if (n > 0 && p[start + n - 1] == '\r')
                p[start + --n] = '\0';
            if (n > 0)
                rc = fn(ud, p + start, n);
        }
        start = (size_t)(nl + 1 - p);
        l->scanned = start;
    }
    buf_consume(&l->pending, start);
    l->scanned = l->scanned > start ? l->scanned - start : 0;
    if (rc == 0 && l->pending.len > max) {
        /* No '\n' yet and already too long: drop it now rather than
         * buffer up to the end of a hostile or broken line. */
        rc = fn(ud, NULL, 0);
        watch__lines_reset(l);
        l->skipping = true;
    }
    return rc;
}

void watch__lines_reset(struct watch_lines *l)
{
    buf_reset(&l->pending);
    l->scanned = 0;
    l->skipping = false;
}

void watch__lines_free(struct watch_lines *l)
{
    buf_free(&l->pending);
    l->scanned = 0;
    l->skipping = false;
}

/* ---- events --------------------------------------------------------- */

static int watch__malformed(struct watch *w, const char *why)
{
    watch__stat_add(w, &w->st.malformed);
    log_warn("watch %s: skipping event: %s", w->name, why);
    return -EBADMSG;
}

/* An ERROR event carries a Status: 410 (Expired/Gone) means our
 * resourceVersion is too old to resume from. */
static int watch__error_event(struct watch *w, const cJSON *status)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(status, "code");
    const char *reason = watch__str(status, "reason");
    const char *message = watch__str(status, "message");
    bool gone = (cJSON_IsNumber(code) && code->valueint == 410) ||
                (reason && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0));

    watch__stat_add(w, &w->st.errors);
    if (gone) {
        log_info("watch %s: resourceVersion expired (%s), relisting", w->name,
                 message ? message : "410");
        return -ESTALE;
    }
    log_warn("watch %s: ERROR event: %s %s", w->name, reason ? reason : "", message ? message : "");
    return -EAGAIN;
}

int watch__apply_line(struct watch *w, const char *line, size_t len)
{
    cJSON *ev = cJSON_ParseWithLength(line, len);
    const char *type = watch__str(ev, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
    const char *uid, *rv;
    char *key = NULL;
    int rc = 0;

    if (type == NULL || !cJSON_IsObject(obj)) {
        rc = watch__malformed(w, ev ? "not a watch event" : "not JSON");
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        rc = watch__error_event(w, obj);
        goto out;
    }
    if (strcmp(type, "BOOKMARK") == 0) {
        /* A bookmark carries only metadata.resourceVersion: the point the
         * next watch may resume from, nothing else changes. */
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        rv = watch__str(md, "resourceVersion");
        if (rv == NULL || rv[0] == '\0') {
            rc = watch__malformed(w, "bookmark without resourceVersion");
            goto out;
        }
        watch__set_rv(w, rv);
        watch__stat_add(w, &w->st.bookmarks);
        w->applied = true;
        goto out;
    }
    bool added = strcmp(type, "ADDED") == 0, modified = strcmp(type, "MODIFIED") == 0;
    bool deleted = strcmp(type, "DELETED") == 0;
    if (!added && !modified && !deleted) {
        rc = watch__malformed(w, "unknown event type");
        goto out;
    }
    key = watch__identity(obj, &uid, &rv);
    if (key == NULL) {
        rc = watch__malformed(w, "object without metadata.name");
        goto out;
    }
    if (deleted) {
        struct watch_obj *o = watch__keys_find(&w->keys, key);
        if (o) {
            watch__keys_del(&w->keys, o);
            /* A delete of a newer incarnation than the one delivered: the
             * consumer still holds the old one, so delete that. */
            if (uid[0] && !watch__uid_eq(o, uid))
                watch__deliver_stub_delete(w, o);
            else if (w->h.on_delete)
                w->h.on_delete(w->ud, obj, false);
            watch__obj_free(o);
        }
        /* An unknown key was never delivered: nothing to take back. */
    } else {
        watch__upsert(w, key, uid, rv, obj);
    }
    watch__set_rv(w, rv);
    watch__count_objects(w);
    watch__stat_add(w, &w->st.events);
    w->applied = true;
out:
    free(key);
    cJSON_Delete(ev);
    return rc;
}

/* ---- lists ---------------------------------------------------------- */

void watch__list_begin(struct watch *w)
{
    for (uint32_t i = 0; i < w->keys.n; i++)
        w->keys.objs[i]->flags &= (uint8_t)~WATCH_SEEN;
    free(w->list_rv);
    w->list_rv = NULL;
}

int watch__list_page(struct watch *w, const cJSON *page)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(page, "metadata");
    const cJSON *item;
    const char *list_rv = watch__str(md, "resourceVersion");

    /* "items": null is how some servers write an empty list. */
    if (!cJSON_IsObject(page) || !(cJSON_IsArray(items) || cJSON_IsNull(items)))
        return watch__malformed(w, "list page is not a List");
    if (list_rv && list_rv[0]) {
        free(w->list_rv);
        w->list_rv = xstrdup(list_rv);
    }
    cJSON_ArrayForEach(item, items)
    {
        const char *uid, *rv;
        char *key = watch__identity(item, &uid, &rv);
        if (key == NULL) {
            watch__malformed(w, "list item without metadata.name");
            continue;
        }
        watch__upsert(w, key, uid, rv, item);
        free(key);
    }
    watch__count_objects(w);
    return 0;
}

void watch__list_end(struct watch *w)
{
    bool first;

    /* a delete moves the last entry into i: look at i again */
    for (uint32_t i = 0; i < w->keys.n;) {
        struct watch_obj *o = w->keys.objs[i];
        if (o->flags & WATCH_SEEN) {
            i++;
            continue;
        }
        watch__keys_del(&w->keys, o);
        watch__deliver_stub_delete(w, o);
        watch__obj_free(o);
    }
    watch__count_objects(w);
    watch__set_rv(w, w->list_rv);
    free(w->list_rv);
    w->list_rv = NULL;
    pthread_mutex_lock(&w->lock);
    w->st.lists++;
    if (w->st.lists > 1)
        w->st.relists++;
    first = !w->delivered_synced;
    w->delivered_synced = true;
    pthread_mutex_unlock(&w->lock);
    if (first && w->h.on_synced)
        w->h.on_synced(w->ud);
    if (first) {
        pthread_mutex_lock(&w->lock);
        w->synced = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
}

/* ---- the reflector thread ------------------------------------------- */

static bool watch__cancelled(void *ud)
{
    struct watch *w = ud;

    return atomic_load(&w->stopping);
}

/* Sleeps ms unless stopped first. Returns true when stopped. */
static bool watch__sleep(struct watch *w, long ms)
{
    struct timespec until;
    bool stopped;

    clock_deadline(&until, ms);
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->stopping))
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
            break;
    stopped = atomic_load(&w->stopping);
    pthread_mutex_unlock(&w->lock);
    return stopped;
}

/* The collection path with the selectors every request carries. */
static void watch__base_path(struct watch *w, struct buf *b)
{
    char *p = kube_path(&w->res, w->ns, NULL, NULL);

    buf_puts(b, p);
    free(p);
    kube_query_add(b, "labelSelector", w->label_selector);
    kube_query_add(b, "fieldSelector", w->field_selector);
}

/* List items come without kind and apiVersion (the List has them); fill
 * them in so that a consumer sees the same object from a list and a watch. */
static void watch__fill_kind(cJSON *page)
{
    const char *list_kind = watch__str(page, "kind");
    const char *api_version = watch__str(page, "apiVersion");
    cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
    cJSON *item;
    size_t n;

    if (list_kind == NULL || api_version == NULL || !cJSON_IsArray(items))
        return;
    n = strlen(list_kind);
    if (n <= 4 || strcmp(list_kind + n - 4, "List") != 0)
        return;
    char *kind = xstrndup(list_kind, n - 4);
    cJSON_ArrayForEach(item, items)
    {
        if (!cJSON_IsObject(item))
            continue;
        if (!cJSON_HasObjectItem(item, "kind"))
            cJSON_AddStringToObject(item, "kind", kind);
        if (!cJSON_HasObjectItem(item, "apiVersion"))
            cJSON_AddStringToObject(item, "apiVersion", api_version);
    }
    free(kind);
}

/*
 * A complete paged list. A continue token that expired mid-list (410)
 * restarts the list once from the first page, as client-go does. Returns 0,
 * or the errno of the failed page.
 */
static int watch__list(struct watch *w)
{
    char *cont = NULL;
    bool restarted = false;
    int rc = 0;

    watch__list_begin(w);
    for (;;) {
        struct buf path = {0};
        struct kube_error err;
        cJSON *page = NULL;

        watch__base_path(w, &path);
        kube_query_add_long(&path, "limit", w->page_size);
        kube_query_add(&path, "continue", cont);
        rc = kube_get_cancel(w->k, path.data, watch__cancelled, w, &page, &err);
        buf_free(&path);
        if (rc == -ESTALE && cont && !restarted) {
            log_info("watch %s: list continue token expired, listing again", w->name);
            free(cont);
            cont = NULL;
            restarted = true;
            watch__list_begin(w);
            continue;
        }
        if (rc < 0) {
            if (rc != -ECANCELED)
                log_warn("watch %s: list failed: %s %s", w->name, strerror(-rc),
                         err.reason[0] ? err.reason : err.message);
            goto out;
        }
        watch__fill_kind(page);
        rc = watch__list_page(w, page);
        const char *next =
            watch__str(cJSON_GetObjectItemCaseSensitive(page, "metadata"), "continue");
        free(cont);
        cont = next && next[0] ? xstrdup(next) : NULL;
        cJSON_Delete(page);
        if (rc < 0)
            goto out;
        if (cont == NULL)
            break;
        if (atomic_load(&w->stopping)) {
            rc = -ECANCELED;
            goto out;
        }
    }
    watch__list_end(w);
out:
    free(cont);
    return rc;
}

static int watch__on_line(void *ud, const char *line, size_t len)
{
    struct watch *w = ud;
    int rc;

    if (line == NULL) {
        watch__malformed(w, "event line too long");
        return 0;
    }
    rc = watch__apply_line(w, line, len);
    if (rc == -ESTALE || rc == -EAGAIN) {
        w->stream_rc = rc;
        return 1; /* ends the stream: relist or re-watch */
    }
    return 0;
}

static int watch__on_chunk(void *ud, const char *data, size_t len)
{
    struct watch *w = ud;

    return watch__lines_feed(&w->lines, data, len, watch__on_line, w);
}

/*
 * One watch request from the resume resourceVersion. Returns 0 when the
 * server ended it, -ESTALE when it must relist (HTTP 410 or an ERROR 410
 * event), another -errno on failure; *useful tells whether it applied
 * anything or lasted long enough not to count as a failure.
 */
static int watch__watch_once(struct watch *w, bool *useful)
{
    long timeout_s = WATCH_MIN_TIMEOUT_S +
                     (long)(rand_uniform(&w->rng) * (WATCH_MAX_TIMEOUT_S - WATCH_MIN_TIMEOUT_S));
    long t0 = clock_mono_ms();
    struct buf path = {0};
    struct kube_error err;
    char *rv = watch_resource_version(w);
    int rc;

    pthread_mutex_lock(&w->lock);
    if (w->watches++ > 0)
        w->st.restarts++;
    pthread_mutex_unlock(&w->lock);
    watch__base_path(w, &path);
    kube_query_add(&path, "watch", "true");
    kube_query_add(&path, "resourceVersion", rv);
    kube_query_add(&path, "allowWatchBookmarks", "true");
    kube_query_add_long(&path, "timeoutSeconds", timeout_s);
    free(rv);
    w->applied = false;
    w->stream_rc = 0;
    watch__lines_reset(&w->lines);
    rc = kube_stream(w->k, path.data, (timeout_s + WATCH_STREAM_MARGIN_S) * 1000, watch__on_chunk,
                     watch__cancelled, w, &err);
    buf_free(&path);
    /* A partial line at the end of a stream is lost with it; the next watch
     * resumes from the last complete event. */
    watch__lines_reset(&w->lines);
    if (rc == -ECANCELED && w->stream_rc != 0)
        rc = w->stream_rc;
    *useful = w->applied || clock_mono_ms() - t0 >= WATCH_MIN_USEFUL_MS;
    if (rc == -ESTALE) {
        if (w->stream_rc == 0)
            log_info("watch %s: 410 Gone, relisting", w->name);
    } else if (rc < 0 && rc != -ECANCELED) {
        if (rc != -EAGAIN || w->stream_rc == 0)
            watch__stat_add(w, &w->st.errors);
        log_warn("watch %s: watch failed: %s %s", w->name, strerror(-rc),
                 err.reason[0] ? err.reason : err.message);
    }
    return rc;
}

static long watch__backoff(struct watch *w, int failures)
{
    return kube_backoff_ms(failures, WATCH_BACKOFF_MS, WATCH_MAX_BACKOFF_MS, rand_uniform(&w->rng));
}

static void *watch__thread(void *arg)
{
    struct watch *w = arg;
    bool need_list = true;
    int failures = 0;

    while (!atomic_load(&w->stopping)) {
        int rc;
        bool useful = false;

        if (need_list) {
            rc = watch__list(w);
            if (rc == -ECANCELED && atomic_load(&w->stopping))
                break;
            if (rc < 0) {
                watch__stat_add(w, &w->st.errors);
                if (watch__sleep(w, watch__backoff(w, ++failures)))
                    break;
                continue;
            }
            need_list = false;
            failures = 0;
        }
        rc = watch__watch_once(w, &useful);
        if (atomic_load(&w->stopping))
            break;
        if (rc == -ESTALE)
            need_list = true;
        if ((rc == 0 || rc == -ESTALE) && useful) {
            failures = 0;
            continue;
        }
        if (watch__sleep(w, watch__backoff(w, ++failures)))
            break;
    }
    return NULL;
}

/* ---- public API ----------------------------------------------------- */

int watch_new(struct kube *k, const struct watch_config *cfg, struct watch **out)
{
    struct watch *w;

    *out = NULL;
    if (cfg == NULL || cfg->res.version == NULL || cfg->res.version[0] == '\0' ||
        cfg->res.resource == NULL || cfg->res.resource[0] == '\0')
        return -EINVAL;
    w = xcalloc(1, sizeof(*w));
    w->k = k;
    w->res.group = xstrdup(cfg->res.group ? cfg->res.group : "");
    w->res.version = xstrdup(cfg->res.version);
    w->res.resource = xstrdup(cfg->res.resource);
    w->ns = cfg->namespace && cfg->namespace[0] ? xstrdup(cfg->namespace) : NULL;
    w->label_selector = xstrdup(cfg->label_selector);
    w->field_selector = xstrdup(cfg->field_selector);
    w->name = xstrdup(cfg->name && cfg->name[0] ? cfg->name : cfg->res.resource);
    w->page_size = cfg->page_size > 0 ? cfg->page_size : WATCH_DEFAULT_PAGE_SIZE;
    w->h = cfg->handlers;
    w->ud = cfg->ud;
    w->rv = xstrdup("");
    w->rng = rand_seed(w);
    w->keys.seed = rand_seed(&w->keys);
    atomic_init(&w->stopping, false);
    pthread_mutex_init(&w->lock, NULL);
    clock_cond_init(&w->cond);
    *out = w;
    return 0;
}

int watch_start(struct watch *w)
{
    int rc;

    if (w->k == NULL)
        return -EINVAL;
    if (w->running)
        return -EALREADY;
    atomic_store(&w->stopping, false);
    pthread_mutex_lock(&w->lock);
    w->synced = false;
    w->delivered_synced = false;
    pthread_mutex_unlock(&w->lock);
    rc = pthread_create(&w->thread, NULL, watch__thread, w);
    if (rc != 0)
        return -rc;
    w->running = true;
    return 0;
}

void watch_stop(struct watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stopping, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->running) {
        pthread_join(w->thread, NULL);
        w->running = false;
    }
}

void watch_free(struct watch *w)
{
    if (w == NULL)
        return;
    watch_stop(w);
    watch__keys_clear(&w->keys);
    watch__lines_free(&w->lines);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free((char *)w->res.group);
    free((char *)w->res.version);
    free((char *)w->res.resource);
    free(w->ns);
    free(w->label_selector);
    free(w->field_selector);
    free(w->name);
    free(w->list_rv);
    free(w->rv);
    free(w);
}

bool watch_has_synced(const struct watch *w)
{
    struct watch *mw = (struct watch *)w; /* the lock is not part of the value */
    bool s;

    pthread_mutex_lock(&mw->lock);
    s = mw->synced;
    pthread_mutex_unlock(&mw->lock);
    return s;
}

int watch_wait_synced(struct watch *w, long timeout_ms)
{
    struct timespec until;
    int rc = 0;

    clock_deadline(&until, timeout_ms >= 0 ? timeout_ms : 0);
    pthread_mutex_lock(&w->lock);
    while (!w->synced && !atomic_load(&w->stopping)) {
        int e = timeout_ms >= 0 ? pthread_cond_timedwait(&w->cond, &w->lock, &until)
                                : pthread_cond_wait(&w->cond, &w->lock);
        if (e == ETIMEDOUT) {
            rc = w->synced ? 0 : -ETIMEDOUT;
            break;
        }
    }
    if (rc == 0 && !w->synced)
        rc = -ECANCELED;
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void watch_get_stats(const struct watch *w, struct watch_stats *st)
{
    struct watch *mw = (struct watch *)w;

    pthread_mutex_lock(&mw->lock);
    *st = mw->st;
    pthread_mutex_unlock(&mw->lock);
}

char *watch_resource_version(const struct watch *w)
{
    struct watch *mw = (struct watch *)w;
    char *rv;

    pthread_mutex_lock(&mw->lock);
    rv = xstrdup(mw->rv);
    pthread_mutex_unlock(&mw->lock);
    return rv;
}
