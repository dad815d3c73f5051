/*
 * bench_soak — issue 13's soak: does the controller's memory stay flat while
 * VMs come, fail, are replaced and go, round after round (make bench-soak;
 * see bench/README.md)?
 *
 * Two processes, so that the RSS measured is the controller's alone:
 *
 * - the parent is the controller, the real code (reconcile/controller with
 *   its reflectors, cache, work queues, incident, capture, status and Event
 *   threads), talking HTTPS through kube/ to
 * - the child, an in-memory API server on tests/unit/fakeapi.c (list, watch
 *   with resourceVersions and 410 Gone, create with dry run and
 *   AlreadyExists, merge patch with a resourceVersion precondition, and
 *   the JSON patch a halt sends, "test" operations and all) that is
 *   also the driver: each round it creates SOAK_VMS VirtualMachines
 *   (runStrategy Manual) and their VMIs (Running), fails every VMI, waits
 *   for the controller to halt each VM and create its replacement, then
 *   deletes everything the round made (VMIs, VMs, replacements, and the
 *   ConfigMaps capture wrote, as the garbage collector would through their
 *   owner), and reads the parent's /proc/PID/status.
 *
 * Names and uids are new every round, so that anything remembered per VM
 * and not pruned on delete shows as growth. The parent's log (stderr) goes
 * to the child, which keeps the controller's "cache" lines (the parent logs
 * one when asked through a pipe) and counts warnings and errors.
 *
 * A benchmark, not a test: it prints a row per round and fails (exit 1)
 * only when a round does not make exactly one replacement per VM, or the
 * controller stops answering. The verdict on RSS is printed, not asserted.
 * SOAK_SECS (default 1800) bounds the run: no round starts after it.
 * SOAK_VMS (default 10000) is the VMs per round. SOAK_GAP_MS (1000) is the
 * pause from the round's last replacement to its deletes, SOAK_LOG_LEVEL
 * the controller's (warn), SOAK_MALLOC=glibc leaves the heap settings out.
 * Usage: bench_soak [--smoke] (two rounds of 500 VMs) or bench_soak
 * --memory: no rounds; SOAK_VMS VMs (Halted, no VMIs) and as many pool
 * members in the store before the controller starts (issue 11's memory
 * figure, in process), RSS read 5 s after the caches hold them all and
 * again after the next heap trim.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uthash.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "fakeapi.h"
#include "json_patch.h"
#include "harness.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "reconcile/cache.h"
#include "reconcile/controller.h"
#include "reconcile/manager.h"

#define SOAK_NS "soak"
#define SOAK_POOL 100            /* base pool members, kept for the whole run */
#define SOAK_RING_MIN 4096       /* watch events kept for resuming watches */
#define SOAK_RING_MAX (1u << 18) /* ... at most, while no watch runs */
#define SOAK_WATCHERS 8          /* concurrent watches per resource */
#define SOAK_STALL_S 300         /* no replacement for this long: the round failed */
#define SOAK_SETTLE_S 120        /* the cache must empty within this after the deletes */

/* SOAK_GAP_MS: from the last replacement to the round's deletes. */
static long soak_gap_ms = 1000;
/* SOAK_MALLOC=glibc: glibc's defaults, not the controller's heap settings
 * (manager_heap_init(), manager_heap_trim()): the figures before them. */
static int soak_heap = 1;
/* SOAK_LOG_LEVEL: the controller's (warn: its info lines are many). */
static enum log_level soak_log_level = LOG_LVL_WARN;

/* harness.h's, for fakeapi.c's certificates (the bench has no harness). */
const char *harness_fixture(const char *name)
{
    static char path[4096];
    const char *dir = getenv("KVR_FIXTURES");

    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", name);
    return path;
}

static double soak_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void soak_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void soak_timestamp(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long soak_env_long(const char *name, long def)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n <= 0) {
        fprintf(stderr, "bench_soak: %s=%s: not a positive integer\n", name, v);
        exit(2);
    }
    return n;
}

/* ---- the fake API server's store --------------------------------------- */

enum soak_res { R_VMI, R_VM, R_POLICY, R_CM, R_NODE, R_POD, R_EVENT, R_N };

static const struct {
    const char *plural, *kind, *api_version;
} soak_res_def[R_N] = {
    [R_VMI] = {"virtualmachineinstances", "VirtualMachineInstance", "kubevirt.io/v1"},
    [R_VM] = {"virtualmachines", "VirtualMachine", "kubevirt.io/v1"},
    [R_POLICY] = {"recoverypolicies", "RecoveryPolicy", "kvrecover.io/v1alpha1"},
    [R_CM] = {"configmaps", "ConfigMap", "v1"},
    [R_NODE] = {"nodes", "Node", "v1"},
    [R_POD] = {"pods", "Pod", "v1"},
    [R_EVENT] = {"events", "Event", "v1"},
};

struct soak_obj {
    UT_hash_handle hh;
    char *key; /* "ns/name" */
    cJSON *o;
};

struct soak_ev {
    uint64_t rv;
    char *line; /* {"type":...,"object":...}\n */
    size_t len;
};

/* The recent watch events of one resource, oldest first. */
struct soak_ring {
    struct soak_ev *v;
    size_t cap, head, n;
    uint64_t trimmed_rv;            /* newest event dropped: older watches get 410 */
    uint64_t cursor[SOAK_WATCHERS]; /* each running watch: last rv sent */
    int busy[SOAK_WATCHERS];        /* the slot is a running watch */
};

struct soak_api {
    pthread_mutex_t lock;
    uint64_t rv;   /* the store's resourceVersion */
    uint64_t uids; /* uids made */
    struct soak_obj *objs[R_N];
    struct soak_ring ring[R_N];
    long replacements; /* non-dry-run creates of a VM naming a failed uid */
    long orphans;      /* ... of which the failed VM they replace was gone */
    char *orphan_note; /* what the first orphan of a round was, or NULL */
    long requests, watches;
};

static struct soak_ev *soak_ring_at(struct soak_ring *r, size_t i)
{
    return &r->v[(r->head + i) % r->cap];
}

/* Drops the oldest events every running watch has sent already (keeping
 * SOAK_RING_MIN for watches that resume), or, with none running, beyond
 * SOAK_RING_MAX. */
static void soak_ring_trim(struct soak_ring *r)
{
    uint64_t min = UINT64_MAX;
    int any = 0;

    for (int i = 0; i < SOAK_WATCHERS; i++)
        if (r->busy[i]) {
            any = 1;
            if (r->cursor[i] < min)
                min = r->cursor[i];
        }
    while (r->n > SOAK_RING_MIN) {
        struct soak_ev *e = soak_ring_at(r, 0);

        if (any ? e->rv > min : r->n <= SOAK_RING_MAX)
            break;
        r->trimmed_rv = e->rv;
        free(e->line);
        r->head = (r->head + 1) % r->cap;
        r->n--;
    }
}

static void soak_ring_push(struct soak_ring *r, uint64_t rv, char *line)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        struct soak_ev *v = xcalloc(cap, sizeof(*v));

        for (size_t i = 0; i < r->n; i++)
            v[i] = *soak_ring_at(r, i);
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    *soak_ring_at(r, r->n) = (struct soak_ev){rv, line, strlen(line)};
    r->n++;
    soak_ring_trim(r);
}

/* The index of the first event newer than rv (r->n when none). */
static size_t soak_ring_after(struct soak_ring *r, uint64_t rv)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (soak_ring_at(r, mid)->rv <= rv)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static cJSON *soak_meta(cJSON *o)
{
    return cJSON_GetObjectItemCaseSensitive(o, "metadata");
}

static const char *soak_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void soak_set_str(cJSON *o, const char *key, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddStringToObject(o, key, v);
}

static void soak_set_rv(cJSON *o, uint64_t rv)
{
    char num[32];

    snprintf(num, sizeof(num), "%llu", (unsigned long long)rv);
    soak_set_str(soak_meta(o), "resourceVersion", num);
}

/* A watch event of o under the store lock: o carries the new rv already. */
static void soak_emit(struct soak_api *a, enum soak_res res, const char *type, const cJSON *o)
{
    char *obj = cJSON_PrintUnformatted(o);
    char *line = xasprintf("{\"type\":\"%s\",\"object\":%s}\n", type, obj);

    free(obj);
    soak_ring_push(&a->ring[res], a->rv, line);
}

static struct soak_obj *soak_find(struct soak_api *a, enum soak_res res, const char *key)
{
    struct soak_obj *e = NULL;

    HASH_FIND_STR(a->objs[res], key, e);
    return e;
}

/* Stores o (taken) as new, under the lock: uid, rv, timestamp, kind. */
static const cJSON *soak_create(struct soak_api *a, enum soak_res res, cJSON *o)
{
    cJSON *md = soak_meta(o);
    struct soak_obj *e = xcalloc(1, sizeof(*e));
    char uid[40], ts[32];
    uint64_t u = ++a->uids;

    snprintf(uid, sizeof(uid), "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(u >> 20) ^ 0x5eed0000u,
             (unsigned)(u & 0xffff), (unsigned)((u >> 16) & 0xfff), (unsigned)(u & 0xfff),
             (unsigned long long)(u * 2654435761u) & 0xffffffffffffull);
    soak_timestamp(ts);
    soak_set_str(md, "uid", uid);
    soak_set_str(md, "creationTimestamp", ts);
    soak_set_str(o, "kind", soak_res_def[res].kind);
    soak_set_str(o, "apiVersion", soak_res_def[res].api_version);
    if (!cJSON_GetObjectItemCaseSensitive(md, "generation"))
        cJSON_AddNumberToObject(md, "generation", 1);
    soak_set_rv(o, ++a->rv);
    e->key = xasprintf("%s/%s", soak_str(md, "namespace") ? soak_str(md, "namespace") : "",
                       soak_str(md, "name"));
    e->o = o;
    HASH_ADD_KEYPTR(hh, a->objs[res], e->key, strlen(e->key), e);
    soak_emit(a, res, "ADDED", o);
    return o;
}

/* A new version of e's object has been written in place: rv and event. */
static void soak_modified(struct soak_api *a, enum soak_res res, struct soak_obj *e)
{
    soak_set_rv(e->o, ++a->rv);
    soak_emit(a, res, "MODIFIED", e->o);
}

static void soak_delete(struct soak_api *a, enum soak_res res, struct soak_obj *e)
{
    HASH_DELETE(hh, a->objs[res], e);
    soak_set_rv(e->o, ++a->rv);
    soak_emit(a, res, "DELETED", e->o);
    cJSON_Delete(e->o);
    free(e->key);
    free(e);
}

/* RFC 7386 JSON merge patch: returns the patched target (taken). */
static cJSON *soak_merge(cJSON *target, const cJSON *patch)
{
    const cJSON *p;

    if (!cJSON_IsObject(patch)) {
        cJSON_Delete(target);
        return cJSON_Duplicate(patch, 1);
    }
    if (!cJSON_IsObject(target)) {
        cJSON_Delete(target);
        target = cJSON_CreateObject();
    }
    cJSON_ArrayForEach(p, patch)
    {
        cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(target, p->string);

        if (cJSON_IsNull(p)) {
            cJSON_Delete(t);
            continue;
        }
        cJSON_AddItemToObject(target, p->string, soak_merge(t, p));
    }
    return target;
}

/* ---- the fake API server's requests ----------------------------------- */

struct soak_path {
    enum soak_res res;
    char ns[128], name[256], sub[32];
    char rv[32], dry[16], watch[8], timeout[16];
};

/* Copies query parameter key of q into out ("" when absent). */
static void soak_query(const char *q, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);

    out[0] = '\0';
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, "&");

            if (n >= cap)
                n = cap - 1;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            return;
        }
    }
}

/* Splits "/api/v1/[namespaces/NS/]RES[/NAME[/SUB]]" or the /apis/G/V form. */
static int soak_parse(const char *full, struct soak_path *p)
{
    char path[2048], *q, *seg[12], *s;
    int n = 0, i;

    memset(p, 0, sizeof(*p));
    snprintf(path, sizeof(path), "%s", full);
    q = strchr(path, '?');
    if (q) {
        *q++ = '\0';
        soak_query(q, "resourceVersion", p->rv, sizeof(p->rv));
        soak_query(q, "dryRun", p->dry, sizeof(p->dry));
        soak_query(q, "watch", p->watch, sizeof(p->watch));
        soak_query(q, "timeoutSeconds", p->timeout, sizeof(p->timeout));
    }
    for (s = path; *s && n < 12;) {
        char *slash;

        while (*s == '/')
            s++;
        if (!*s)
            break;
        seg[n++] = s;
        slash = strchr(s, '/');
        if (!slash)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    if (n >= 2 && strcmp(seg[0], "api") == 0)
        i = 2;
    else if (n >= 3 && strcmp(seg[0], "apis") == 0)
        i = 3;
    else
        return -1;
    if (i + 1 < n && strcmp(seg[i], "namespaces") == 0) {
        snprintf(p->ns, sizeof(p->ns), "%s", seg[i + 1]);
        i += 2;
    }
    if (i >= n)
        return -1;
    for (p->res = 0; p->res < R_N; p->res++)
        if (strcmp(seg[i], soak_res_def[p->res].plural) == 0)
            break;
    if (p->res == R_N)
        return -1;
    if (i + 1 < n)
        snprintf(p->name, sizeof(p->name), "%s", seg[i + 1]);
    if (i + 2 < n)
        snprintf(p->sub, sizeof(p->sub), "%s", seg[i + 2]);
    return 0;
}

static void soak_status(struct fake_conn *c, int code, const char *reason, const char *msg)
{
    char *body = xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                           "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
                           msg, reason, code);

    fake_reply(c, code, NULL, body);
    free(body);
}

static void soak_reply_obj(struct fake_conn *c, int code, const cJSON *o)
{
    char *body = cJSON_PrintUnformatted(o);

    fake_reply(c, code, NULL, body);
    free(body);
}

/* One page with every object (limit is not honoured: no continue). */
static void soak_list(struct soak_api *a, const struct soak_path *p, struct fake_conn *c)
{
    struct buf b = {0};
    char head[256];
    int first = 1;

    pthread_mutex_lock(&a->lock);
    snprintf(head, sizeof(head),
             "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":"
             "\"%llu\"},\"items\":[",
             soak_res_def[p->res].kind, soak_res_def[p->res].api_version,
             (unsigned long long)a->rv);
    buf_puts(&b, head);
    for (struct soak_obj *e = a->objs[p->res]; e; e = e->hh.next) {
        char *o;

        if (p->ns[0] && strcmp(soak_str(soak_meta(e->o), "namespace"), p->ns) != 0)
            continue;
        o = cJSON_PrintUnformatted(e->o);
        if (!first)
            buf_puts(&b, ",");
        buf_puts(&b, o);
        free(o);
        first = 0;
    }
    pthread_mutex_unlock(&a->lock);
    buf_puts(&b, "]}");
    fake_reply(c, 200, NULL, b.data);
    buf_free(&b);
}

/* A watch from p->rv: what the ring holds after it, then new events as
 * they come, until timeoutSeconds, the client goes, or the server stops. */
static void soak_watch(struct soak_api *a, const struct soak_path *p, struct fake_conn *c)
{
    struct soak_ring *r = &a->ring[p->res];
    uint64_t cursor = strtoull(p->rv, NULL, 10);
    double end = soak_now() + (p->timeout[0] ? strtod(p->timeout, NULL) : 300);
    int slot = -1, gone = 0;

    fake_stream_begin(c);
    pthread_mutex_lock(&a->lock);
    a->watches++;
    if (cursor < r->trimmed_rv) {
        pthread_mutex_unlock(&a->lock);
        static const char expired[] =
            "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
            "\"status\":\"Failure\",\"message\":\"too old resource version\","
            "\"reason\":\"Expired\",\"code\":410}}\n";
        fake_stream_send(c, expired, sizeof(expired) - 1);
        fake_stream_end(c);
        return;
    }
    for (int i = 0; i < SOAK_WATCHERS; i++)
        if (!r->busy[i]) {
            slot = i;
            r->busy[i] = 1;
            r->cursor[i] = cursor;
            break;
        }
    pthread_mutex_unlock(&a->lock);
    while (!gone && soak_now() < end) {
        struct buf b = {0};

        pthread_mutex_lock(&a->lock);
        for (size_t i = soak_ring_after(r, cursor); i < r->n && b.len < (512u << 10); i++) {
            struct soak_ev *e = soak_ring_at(r, i);

            buf_append(&b, e->line, e->len);
            cursor = e->rv;
        }
        if (slot >= 0)
            r->cursor[slot] = cursor;
        pthread_mutex_unlock(&a->lock);
        if (b.len)
            gone = !fake_stream_send(c, b.data, b.len);
        else
            gone = fake_stream_wait(c, 1); /* one poll, at most 100 ms */
        buf_free(&b);
    }
    pthread_mutex_lock(&a->lock);
    if (slot >= 0)
        r->busy[slot] = 0;
    pthread_mutex_unlock(&a->lock);
    fake_stream_end(c);
}

static void soak_post(struct soak_api *a, const struct soak_path *p, const struct fake_req *req,
                      struct fake_conn *c)
{
    cJSON *body = cJSON_Parse(req->body);
    const char *name = soak_str(soak_meta(body), "name");
    char *key;

    if (p->res == R_EVENT) {
        /* a sink: Events are not watched */
        soak_reply_obj(c, 201, body);
        cJSON_Delete(body);
        return;
    }
    if (!body || !name) {
        cJSON_Delete(body);
        soak_status(c, 422, "Invalid", "no metadata.name");
        return;
    }
    soak_set_str(soak_meta(body), "namespace", p->ns);
    key = xasprintf("%s/%s", p->ns, name);
    pthread_mutex_lock(&a->lock);
    if (soak_find(a, p->res, key)) {
        pthread_mutex_unlock(&a->lock);
        soak_status(c, 409, "AlreadyExists", "already exists");
        cJSON_Delete(body);
    } else if (strcmp(p->dry, "All") == 0) {
        pthread_mutex_unlock(&a->lock);
        soak_reply_obj(c, 201, body);
        cJSON_Delete(body);
    } else {
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(soak_meta(body), "annotations");
        char *out;

        if (p->res == R_VM && soak_str(ann, CACHE_FAILED_UID_ANNOTATION)) {
            /* a replacement for a VM that is gone (the round's deletes
             * came first) is an orphan: nothing will ever delete it */
            const cJSON *labels = cJSON_GetObjectItemCaseSensitive(soak_meta(body), "labels");
            const char *failed = soak_str(labels, CACHE_REPLACES_LABEL);
            char *fkey = xasprintf("%s/%s", p->ns, failed ? failed : "");

            a->replacements++;
            if (!soak_find(a, R_VM, fkey)) {
                a->orphans++;
                if (!a->orphan_note)
                    a->orphan_note = xasprintf(
                        "VirtualMachine %s created for VM %s (failed uid %s), which was deleted",
                        name, failed ? failed : "(no replaces label)",
                        soak_str(ann, CACHE_FAILED_UID_ANNOTATION));
            }
            free(fkey);
        }
        out = cJSON_PrintUnformatted(soak_create(a, p->res, body));
        pthread_mutex_unlock(&a->lock);
        fake_reply(c, 201, NULL, out);
        free(out);
    }
    free(key);
}

/* A JSON patch's operations applied to a copy of o: the patched copy, or
 * NULL when one does not apply (kube-apiserver's bare 422). *spec: whether
 * one changed the spec. */
static cJSON *soak_json_patch(const cJSON *o, const cJSON *ops, int *spec)
{
    cJSON *doc = cJSON_Duplicate(o, 1), *view = cJSON_CreateObject();
    const cJSON *op;

    cJSON_ArrayForEach(op, ops)
    {
        if (json_patch_op(doc, view, op) < 0) {
            cJSON_Delete(doc);
            doc = NULL;
            break;
        }
    }
    *spec = cJSON_GetObjectItemCaseSensitive(view, "spec") != NULL;
    cJSON_Delete(view);
    return doc;
}

static void soak_patch(struct soak_api *a, const struct soak_path *p, const struct fake_req *req,
                       struct fake_conn *c)
{
    cJSON *patch = cJSON_Parse(req->body);
    int json = strstr(req->content_type, "json-patch") != NULL;
    const char *want = json ? NULL : soak_str(soak_meta(patch), "resourceVersion");
    char *key = xasprintf("%s/%s", p->ns, p->name), *out;
    struct soak_obj *e;

    if (!patch) {
        free(key);
        soak_status(c, 400, "BadRequest", "not JSON");
        return;
    }
    if (p->res == R_EVENT) {
        soak_reply_obj(c, 200, patch);
        cJSON_Delete(patch);
        free(key);
        return;
    }
    pthread_mutex_lock(&a->lock);
    e = soak_find(a, p->res, key);
    if (!e) {
        pthread_mutex_unlock(&a->lock);
        soak_status(c, 404, "NotFound", "not found");
    } else if (want && strcmp(want, soak_str(soak_meta(e->o), "resourceVersion")) != 0) {
        pthread_mutex_unlock(&a->lock);
        soak_status(c, 409, "Conflict", "the object has been modified");
    } else {
        if (strcmp(p->sub, "status") == 0) {
            /* the status subresource: only status changes */
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(patch, "status");

            if (ps) {
                cJSON *st = cJSON_DetachItemFromObjectCaseSensitive(e->o, "status");

                cJSON_AddItemToObject(e->o, "status", soak_merge(st, ps));
            }
        } else {
            cJSON *gen, *done = NULL;
            int spec = 0;

            if (json && (!cJSON_IsArray(patch) || !(done = soak_json_patch(e->o, patch, &spec)))) {
                pthread_mutex_unlock(&a->lock);
                fake_reply(c, 422, NULL, JSON_PATCH_NOT_APPLIED);
                cJSON_Delete(patch);
                free(key);
                return;
            }
            if (json) {
                cJSON_Delete(e->o);
                e->o = done;
            } else {
                e->o = soak_merge(e->o, patch);
                spec = cJSON_GetObjectItemCaseSensitive(patch, "spec") != NULL;
            }
            gen = cJSON_GetObjectItemCaseSensitive(soak_meta(e->o), "generation");
            if (spec && cJSON_IsNumber(gen))
                cJSON_SetNumberValue(gen, gen->valuedouble + 1);
        }
        soak_modified(a, p->res, e);
        out = cJSON_PrintUnformatted(e->o);
        pthread_mutex_unlock(&a->lock);
        fake_reply(c, 200, NULL, out);
        free(out);
    }
    cJSON_Delete(patch);
    free(key);
}

static void soak_get(struct soak_api *a, const struct soak_path *p, struct fake_conn *c)
{
    char *key = xasprintf("%s/%s", p->ns, p->name), *out = NULL;
    struct soak_obj *e;

    pthread_mutex_lock(&a->lock);
    e = soak_find(a, p->res, key);
    if (e)
        out = cJSON_PrintUnformatted(e->o);
    pthread_mutex_unlock(&a->lock);
    if (out)
        fake_reply(c, 200, NULL, out);
    else
        soak_status(c, 404, "NotFound", "not found");
    free(out);
    free(key);
}

static void soak_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct soak_api *a = ud;
    struct soak_path p;

    pthread_mutex_lock(&a->lock);
    a->requests++;
    pthread_mutex_unlock(&a->lock);
    if (soak_parse(req->path, &p) != 0) {
        soak_status(c, 404, "NotFound", "no such path");
    } else if (strcmp(req->method, "GET") == 0 && !p.name[0]) {
        if (strcmp(p.watch, "true") == 0)
            soak_watch(a, &p, c);
        else
            soak_list(a, &p, c);
    } else if (strcmp(req->method, "GET") == 0) {
        soak_get(a, &p, c);
    } else if (strcmp(req->method, "POST") == 0 && !p.name[0]) {
        soak_post(a, &p, req, c);
    } else if (strcmp(req->method, "PATCH") == 0 && p.name[0]) {
        soak_patch(a, &p, req, c);
    } else {
        soak_status(c, 405, "MethodNotAllowed", "not here");
    }
}

/* ---- the driver's objects ---------------------------------------------- */

static const char *const soak_os[] = {"ubuntu-22.04", "debian-12", "rhel-9", "alpine-3.19"};
static const char *const soak_lang[] = {"go", "java", "python", "nodejs", "rust"};
static const char *const soak_db[] = {"postgres", "mysql", "redis", "none", "mongodb"};

/* Member m's features ("{os: x, ...}" for annotations, YAML for data). */
static char *soak_features(int m, int flow)
{
    const char *os = soak_os[m % 4], *la = soak_lang[(m / 4) % 5], *db = soak_db[(m / 20) % 5];

    return flow ? xasprintf("{os: %s, language: %s, database: %s}", os, la, db)
                : xasprintf("os: %s\nlanguage: %s\ndatabase: %s\n", os, la, db);
}

static cJSON *soak_vm(const char *name, int m)
{
    char *f = soak_features(m, 1);
    char *text = xasprintf(
        "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"" SOAK_NS "\",\"labels\":{\"app\":"
        "\"soak\"},\"annotations\":{}},\"spec\":{\"runStrategy\":\"Manual\",\"template\":{"
        "\"metadata\":{\"labels\":{\"app\":\"soak\"},\"annotations\":{\"kvrecover.io/"
        "features\":\"%s\",\"kvrecover.io/resources\":\"{cpu: 1, memory: 128Mi, disk: 1Gi}\"}},"
        "\"spec\":{\"domain\":{\"cpu\":{\"cores\":1},\"memory\":{\"guest\":\"128Mi\"},"
        "\"devices\":{\"disks\":[{\"name\":\"rootdisk\",\"disk\":{\"bus\":\"virtio\"}}]}},"
        "\"volumes\":[{\"name\":\"rootdisk\",\"containerDisk\":{\"image\":"
        "\"quay.io/containerdisks/fedora:40\"}}]}}},\"status\":{\"printableStatus\":"
        "\"Running\",\"ready\":true}}",
        name, f);
    cJSON *o = cJSON_Parse(text);

    free(f);
    free(text);
    return o;
}

/* The VMI KubeVirt would make for VM vm (its uid), Running. */
static cJSON *soak_vmi(const cJSON *vm, int m)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(vm, "metadata");
    char *f = soak_features(m, 1), ts[32];
    char *text;
    cJSON *o;

    soak_timestamp(ts);
    text = xasprintf(
        "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"" SOAK_NS "\",\"labels\":{\"app\":"
        "\"soak\"},\"annotations\":{\"kvrecover.io/features\":\"%s\"},\"ownerReferences\":[{"
        "\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\",\"name\":\"%s\","
        "\"uid\":\"%s\",\"controller\":true,\"blockOwnerDeletion\":true}]},\"spec\":{\"domain\":"
        "{\"cpu\":{\"cores\":1},\"memory\":{\"guest\":\"128Mi\"}}},\"status\":{\"phase\":"
        "\"Running\",\"phaseTransitionTimestamps\":[{\"phase\":\"Running\","
        "\"phaseTransitionTimestamp\":\"%s\"}]}}",
        soak_str(md, "name"), f, soak_str(md, "name"), soak_str(md, "uid"), ts);
    o = cJSON_Parse(text);
    free(f);
    free(text);
    return o;
}

static cJSON *soak_member(int m)
{
    cJSON *o = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON *labels = cJSON_AddObjectToObject(md, "labels"), *data;
    cJSON *vm;
    char *name = xasprintf("pool-%03d", m), *vmtext, *f = soak_features(m, 0);

    cJSON_AddStringToObject(md, "name", name);
    cJSON_AddStringToObject(md, "namespace", SOAK_NS);
    cJSON_AddStringToObject(labels, CACHE_POOL_LABEL, "soak");
    data = cJSON_AddObjectToObject(o, "data");
    cJSON_AddStringToObject(data, "features", f);
    cJSON_AddStringToObject(data, "resources", "cpu: 1\nmemory: 128Mi\ndisk: 1Gi\n");
    vm = soak_vm(name, m);
    cJSON_DeleteItemFromObjectCaseSensitive(vm, "status");
    cJSON_AddStringToObject(vm, "apiVersion", soak_res_def[R_VM].api_version);
    cJSON_AddStringToObject(vm, "kind", soak_res_def[R_VM].kind);
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "metadata"),
                                            "namespace");
    vmtext = cJSON_PrintUnformatted(vm); /* JSON is YAML */
    cJSON_AddStringToObject(data, "vm", vmtext);
    cJSON_Delete(vm);
    free(vmtext);
    free(name);
    free(f);
    return o;
}

/* The policy; capture off for --memory, as bench_e2e.sh's memory part. */
static cJSON *soak_policy(int capture)
{
    cJSON *p =
        cJSON_Parse("{\"metadata\":{\"name\":\"soak\",\"namespace\":\"" SOAK_NS "\"},\"spec\":{"
                    "\"action\":\"Recreate\",\"mode\":\"Jaccard\",\"stormLimit\":\"100%\","
                    "\"poolSelector\":{\"matchLabels\":{\"" CACHE_POOL_LABEL "\":\"soak\"}},"
                    "\"selector\":{\"matchLabels\":{\"app\":\"soak\"}},\"threshold\":0.3,"
                    "\"weights\":{\"os\":0.3,\"language\":0.3,\"database\":0.2}},\"status\":{}}");

    cJSON_AddBoolToObject(cJSON_GetObjectItemCaseSensitive(p, "spec"), "capture", capture);
    return p;
}

/* ---- the driver -------------------------------------------------------- */

/* What the parent's log said, read by a thread of the child. */
struct soak_log {
    pthread_mutex_t lock;
    int fd;
    FILE *keep; /* every line, for a look afterwards (capped) */
    long kept, warns, errors;
    char *cache; /* the last "cache" line */
    char *heap;  /* the last "heap" line (logged just before it) */
    long caches; /* "cache" lines so far */
    char *first_problem;
};

static void *soak_log_main(void *arg)
{
    struct soak_log *l = arg;
    FILE *in = fdopen(l->fd, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while (in && (n = getline(&line, &cap, in)) > 0) {
        int warn = strstr(line, "\"level\":\"warn\"") != NULL;
        int err = strstr(line, "\"level\":\"error\"") != NULL;

        pthread_mutex_lock(&l->lock);
        if (l->keep && l->kept < (64L << 20)) {
            fputs(line, l->keep);
            l->kept += n;
        }
        l->warns += warn;
        l->errors += err;
        if ((warn || err) && !l->first_problem)
            l->first_problem = xstrdup(line);
        if (strstr(line, "\"msg\":\"heap\"")) {
            free(l->heap);
            l->heap = xstrdup(line);
        }
        if (strstr(line, "\"msg\":\"cache\"")) {
            free(l->cache);
            l->cache = xstrdup(line);
            l->caches++;
        }
        pthread_mutex_unlock(&l->lock);
    }
    free(line);
    if (in)
        fclose(in);
    return NULL;
}

/* Field key of the last cache line, or -1. */
static double soak_cache_field(const cJSON *line, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(line, key);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Asks the parent for a "cache" line and returns it parsed (NULL when none
 * came within 10 s). */
static cJSON *soak_ask_cache(struct soak_log *l, int cmd_fd)
{
    long before;

    pthread_mutex_lock(&l->lock);
    before = l->caches;
    pthread_mutex_unlock(&l->lock);
    if (write(cmd_fd, "L", 1) != 1)
        return NULL;
    for (int i = 0; i < 200; i++) {
        cJSON *o = NULL;

        pthread_mutex_lock(&l->lock);
        if (l->caches > before)
            o = cJSON_Parse(l->cache);
        pthread_mutex_unlock(&l->lock);
        if (o)
            return o;
        soak_sleep_ms(50);
    }
    return NULL;
}

/* VmRSS and VmHWM of pid, in kB. */
static void soak_rss(pid_t pid, long *rss, long *hwm)
{
    char path[64], line[256];
    FILE *f;

    *rss = *hwm = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

/* CPU seconds (user + system) pid has used. */
static double soak_cpu(pid_t pid)
{
    char path[64], buf[1024], *p, *end;
    double ticks = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after "(comm) ": state is field 3, utime 14, stime 15 */
    p = strrchr(buf, ')');
    for (int field = 2; p && field < 14; field++)
        p = strchr(p + 1, ' ');
    for (int i = 0; p && i < 2; i++) {
        ticks += (double)strtoull(p + 1, &end, 10);
        p = end;
    }
    return ticks / (double)sysconf(_SC_CLK_TCK);
}

/* Waits until every running watch of the kinds the round touches has been
 * sent everything the store has (the controller then has it, or nearly). */
static void soak_drain_watches(struct soak_api *a)
{
    for (int tries = 0; tries < 6000; tries++) {
        int behind = 0;

        pthread_mutex_lock(&a->lock);
        for (int res = 0; res < R_N; res++) {
            struct soak_ring *r = &a->ring[res];
            uint64_t last = r->n ? soak_ring_at(r, r->n - 1)->rv : 0;

            for (int i = 0; i < SOAK_WATCHERS; i++)
                behind |= r->busy[i] && r->cursor[i] < last;
        }
        pthread_mutex_unlock(&a->lock);
        if (!behind)
            return;
        soak_sleep_ms(10);
    }
}

static long soak_replacements(struct soak_api *a)
{
    long n;

    pthread_mutex_lock(&a->lock);
    n = a->replacements;
    pthread_mutex_unlock(&a->lock);
    return n;
}

/* Deletes what round made: VMIs, VMs (its and the replacements), and every
 * ConfigMap but the base pool. Returns the objects deleted. */
static long soak_delete_round(struct soak_api *a)
{
    struct soak_obj *e, *tmp;
    long n = 0;

    pthread_mutex_lock(&a->lock);
    HASH_ITER(hh, a->objs[R_VMI], e, tmp)
    {
        soak_delete(a, R_VMI, e);
        n++;
    }
    HASH_ITER(hh, a->objs[R_VM], e, tmp)
    {
        soak_delete(a, R_VM, e);
        n++;
    }
    HASH_ITER(hh, a->objs[R_CM], e, tmp)
    {
        if (strncmp(soak_str(soak_meta(e->o), "name"), "pool-", 5) != 0) {
            soak_delete(a, R_CM, e);
            n++;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return n;
}

struct soak_row {
    int round;
    double secs, cpu;
    long repl, rss, hwm;
    double vms, vmis, members, book_vms, book_policies, captured;
    double heap; /* bytes the parent's heap has in use, -1: unknown */
};

/* A field of the last "heap" line, or -1. */
static double soak_heap_field(struct soak_log *l, const char *key)
{
    cJSON *o;
    double v;

    pthread_mutex_lock(&l->lock);
    o = l->heap ? cJSON_Parse(l->heap) : NULL;
    pthread_mutex_unlock(&l->lock);
    v = soak_cache_field(o, key);
    cJSON_Delete(o);
    return v;
}

/* The inUse of the last "heap" line, in kB, or -1. */
static double soak_heap_kb(struct soak_log *l)
{
    double v = soak_heap_field(l, "inUse");

    return v < 0 ? -1 : v / 1024;
}

static void soak_print_row(const struct soak_row *r)
{
    printf("%5d %8.1f %7.1f %6ld %9ld %9ld %9.0f %6.0f %6.0f %8.0f %8.0f %8.0f %8.0f\n", r->round,
           r->secs, r->cpu, r->repl, r->rss, r->hwm, r->heap, r->vms, r->vmis, r->members,
           r->book_policies, r->book_vms, r->captured);
    fflush(stdout);
}

/* One round; 0, or -1 after saying why. */
static int soak_round(struct soak_api *a, struct soak_log *l, int cmd_fd, pid_t ctl, int round,
                      long nvms, struct soak_row *row)
{
    double t0 = soak_now(), cpu0 = soak_cpu(ctl), last_progress;
    long base = soak_replacements(a), made = 0, prev = -1, orphans0;
    cJSON *cache = NULL;

    memset(row, 0, sizeof(*row));
    row->round = round;
    row->heap = -1;
    pthread_mutex_lock(&a->lock);
    orphans0 = a->orphans;
    free(a->orphan_note);
    a->orphan_note = NULL;
    for (long i = 0; i < nvms; i++) {
        char name[64];
        const cJSON *vm;

        snprintf(name, sizeof(name), "r%d-vm-%05ld", round, i);
        vm = soak_create(a, R_VM, soak_vm(name, (int)(i % SOAK_POOL)));
        soak_create(a, R_VMI, soak_vmi(vm, (int)(i % SOAK_POOL)));
    }
    pthread_mutex_unlock(&a->lock);
    soak_drain_watches(a);
    /* every guest fails at once: the VMIs go Failed, runStrategy Manual
     * does not restart them */
    pthread_mutex_lock(&a->lock);
    for (struct soak_obj *e = a->objs[R_VMI]; e; e = e->hh.next) {
        cJSON *st = cJSON_GetObjectItemCaseSensitive(e->o, "status");
        cJSON *pt = cJSON_GetObjectItemCaseSensitive(st, "phaseTransitionTimestamps");
        cJSON *t = cJSON_CreateObject();
        char ts[32];

        soak_timestamp(ts);
        soak_set_str(st, "phase", "Failed");
        cJSON_AddStringToObject(t, "phase", "Failed");
        cJSON_AddStringToObject(t, "phaseTransitionTimestamp", ts);
        cJSON_AddItemToArray(pt, t);
        soak_modified(a, R_VMI, e);
    }
    pthread_mutex_unlock(&a->lock);
    last_progress = soak_now();
    while (made < nvms) {
        made = soak_replacements(a) - base;
        if (made != prev) {
            prev = made;
            last_progress = soak_now();
        } else if (soak_now() - last_progress > SOAK_STALL_S) {
            fprintf(stderr,
                    "bench_soak: round %d: %ld replacements for %ld failed VMs, none for %d s\n",
                    round, made, nvms, SOAK_STALL_S);
            return -1;
        }
        soak_sleep_ms(50);
    }
    /* a moment for the controller to finish what follows a create (the
     * halted VM seen Replaced, Events, status), then everything goes */
    soak_drain_watches(a);
    soak_sleep_ms(soak_gap_ms);
    soak_delete_round(a);
    soak_drain_watches(a);
    /* capture may have written a ConfigMap for a VM in flight: again */
    soak_sleep_ms(1000);
    soak_delete_round(a);
    soak_drain_watches(a);
    for (double t1 = soak_now(); soak_now() - t1 < SOAK_SETTLE_S;) {
        cJSON_Delete(cache);
        cache = soak_ask_cache(l, cmd_fd);
        if (!cache) {
            fprintf(stderr, "bench_soak: the controller logs no cache line\n");
            return -1;
        }
        /* the book is not waited for: what it keeps of deleted VMs is
         * one of the things the soak measures */
        if (soak_cache_field(cache, "vms") == 0 && soak_cache_field(cache, "vmis") == 0 &&
            soak_cache_field(cache, "captured") == 0)
            break;
        soak_sleep_ms(500);
    }
    row->secs = soak_now() - t0;
    row->cpu = soak_cpu(ctl) - cpu0;
    row->repl = soak_replacements(a) - base;
    soak_rss(ctl, &row->rss, &row->hwm);
    row->heap = soak_heap_kb(l);
    row->vms = soak_cache_field(cache, "vms");
    row->vmis = soak_cache_field(cache, "vmis");
    row->members = soak_cache_field(cache, "members");
    row->book_policies = soak_cache_field(cache, "bookPolicies");
    row->book_vms = soak_cache_field(cache, "bookVMs");
    row->captured = soak_cache_field(cache, "captured");
    cJSON_Delete(cache);
    pthread_mutex_lock(&a->lock);
    if (a->orphans > orphans0)
        fprintf(stderr,
                "bench_soak: round %d: %ld replacements for VMs already deleted; first: %s\n",
                round, a->orphans - orphans0, a->orphan_note);
    pthread_mutex_unlock(&a->lock);
    if (row->repl != nvms) {
        fprintf(stderr, "bench_soak: round %d: %ld replacements for %ld failed VMs\n", round,
                row->repl, nvms);
        return -1;
    }
    return 0;
}

/* The child: the API server and the driver. Returns the exit status. */
static int soak_driver(int port_fd, int cmd_fd, int log_fd, long nvms, long secs, int min_rounds,
                       long memory)
{
    int pool = memory ? (int)memory : SOAK_POOL;
    struct soak_api a = {0};
    struct soak_log l = {0};
    struct fake_server *srv;
    struct soak_row first = {0}, row = {0};
    pthread_t log_thread;
    pid_t ctl = getppid();
    double start;
    int rc = 0, rounds = 0, port = -1;

    pthread_mutex_init(&a.lock, NULL);
    pthread_mutex_init(&l.lock, NULL);
    l.fd = log_fd;
    l.keep = fopen(getenv("SOAK_LOG") ? getenv("SOAK_LOG") : "/dev/null", "w");
    pthread_create(&log_thread, NULL, soak_log_main, &l);
    pthread_mutex_lock(&a.lock);
    soak_create(&a, R_POLICY, soak_policy(memory == 0));
    for (int m = 0; m < pool; m++)
        soak_create(&a, R_CM, soak_member(m));
    for (long i = 0; i < memory; i++) {
        /* Halted: no VMIs, as bench_e2e.sh's memory part */
        char name[64];
        cJSON *vm;

        snprintf(name, sizeof(name), "mem-vm-%05ld", i);
        vm = soak_vm(name, (int)(i % SOAK_POOL));
        soak_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Halted");
        soak_set_str(cJSON_GetObjectItemCaseSensitive(vm, "status"), "printableStatus", "Stopped");
        soak_create(&a, R_VM, vm);
    }
    pthread_mutex_unlock(&a.lock);
    srv = fake_start(soak_handler, &a);
    if (srv) {
        struct kubeconfig *kc = fake_kubeconfig(srv, NULL);
        const char *colon = strrchr(kc->server, ':');

        port = colon ? (int)strtol(colon + 1, NULL, 10) : -1;
        kubeconfig_free(kc);
    }
    if (write(port_fd, &port, sizeof(port)) != (ssize_t)sizeof(port) || !srv) {
        fprintf(stderr, "bench_soak: the fake API server did not start\n");
        return 1;
    }
    close(port_fd);
    printf("bench_soak: %ld VMs per round, rounds for %ld s, controller pid %d\n", nvms, secs,
           (int)ctl);
    printf("%5s %8s %7s %6s %9s %9s %9s %6s %6s %8s %8s %8s %8s\n", "round", "seconds", "cpu s",
           "repl", "VmRSS kB", "VmHWM kB", "heap kB", "vms", "vmis", "members", "bookPol",
           "bookVMs", "captured");
    fflush(stdout);
    start = soak_now();
    /* the controller's caches synced and its workers started */
    for (int i = 0; i < 6000; i++) {
        cJSON *c = soak_ask_cache(&l, cmd_fd);
        double members = c ? soak_cache_field(c, "members") : -1;
        double vms = c ? soak_cache_field(c, "vms") : -1;

        cJSON_Delete(c);
        if (members == pool && vms == (double)memory)
            break;
        soak_sleep_ms(100);
    }
    if (memory) {
        /* read as bench_e2e.sh does, 5 s after the caches hold it all,
         * and again once the manager's trim has run */
        printf("memory: %ld VMs (Halted) and %d pool members cached %.1f s after start\n", memory,
               pool, soak_now() - start);
        soak_sleep_ms(5000);
    }
    {
        struct soak_row zero = {0};
        cJSON *c = soak_ask_cache(&l, cmd_fd);

        soak_rss(ctl, &zero.rss, &zero.hwm);
        zero.heap = soak_heap_kb(&l);
        zero.members = soak_cache_field(c, "members");
        zero.vms = soak_cache_field(c, "vms");
        zero.book_policies = soak_cache_field(c, "bookPolicies");
        cJSON_Delete(c);
        soak_print_row(&zero);
    }
    if (memory) {
        struct soak_row trimmed = {0};

        soak_sleep_ms(MANAGER_HEAP_TRIM_MS + 1000);
        soak_ask_cache(&l, cmd_fd);
        cJSON_Delete(soak_ask_cache(&l, cmd_fd));
        soak_rss(ctl, &trimmed.rss, &trimmed.hwm);
        trimmed.heap = soak_heap_kb(&l);
        trimmed.members = pool;
        trimmed.vms = (double)memory;
        printf("after the next trim (%d s later):\n", MANAGER_HEAP_TRIM_MS / 1000 + 1);
        soak_print_row(&trimmed);
        min_rounds = 0;
        secs = 0;
    }
    while (soak_now() - start < (double)secs || rounds < min_rounds) {
        if (soak_round(&a, &l, cmd_fd, ctl, rounds + 1, nvms, &row) != 0) {
            rc = 1;
            break;
        }
        rounds++;
        soak_print_row(&row);
        if (rounds == 1)
            first = row;
    }
    if (write(cmd_fd, "Q", 1) != 1)
        rc = 1;
    close(cmd_fd);
    pthread_join(log_thread, NULL);
    fake_stop(srv);
    if (rounds > 0)
        printf("rounds %d in %.0f s; VmRSS end/first-round %.3f (%ld kB / %ld kB): %s; "
               "VmHWM end %ld kB\n",
               rounds, soak_now() - start, (double)row.rss / (double)first.rss, row.rss, first.rss,
               (double)row.rss <= 1.10 * (double)first.rss ? "within 10 %" : "GREW MORE THAN 10 %",
               row.hwm);
    printf("API requests %ld (watches %ld); controller log: %ld warnings, %ld errors\n", a.requests,
           a.watches, l.warns, l.errors);
    if (soak_heap)
        printf("heap checked every %d s, trims: %.0f, mean %.2f ms, longest %.2f ms, %.0f over 10 "
               "ms\n",
               MANAGER_HEAP_TRIM_MS / 1000, soak_heap_field(&l, "trims"),
               soak_heap_field(&l, "trimMsMean"), soak_heap_field(&l, "trimMsMax"),
               soak_heap_field(&l, "trimsOver10Ms"));
    else
        printf("SOAK_MALLOC=glibc: glibc's malloc defaults, no trims\n");
    if (l.first_problem)
        printf("first warning or error: %s", l.first_problem);
    fflush(stdout);
    free(l.cache);
    free(l.heap);
    free(l.first_problem);
    if (l.keep)
        fclose(l.keep);
    return rc;
}

/* ---- the parent: the controller --------------------------------------- */

/* Runs the controller against the child's server until the child says Q
 * (or goes); answers L with a "cache" log line. Returns 0, or 1 when the
 * controller did not start. */
static int soak_controller(int port_fd, int cmd_fd)
{
    /* no client-side rate limit: the soak is about memory, and 50 QPS
     * would make a round of 10,000 recoveries take half an hour */
    static const struct kube_options opts = {.qps = -1};
    struct kubeconfig *kc = xcalloc(1, sizeof(*kc));
    struct kube *kube = NULL, *event_kube = NULL;
    struct controller *ctl = NULL;
    struct controller_config cfg = {0};
    char *err = NULL;
    double next_resync, next_trim, trim_max = 0, trim_sum = 0;
    long trims = 0, trims_slow = 0;
    int port = -1, rc = 1;

    if (read(port_fd, &port, sizeof(port)) != (ssize_t)sizeof(port) || port <= 0)
        goto out;
    kc->server = xasprintf("https://127.0.0.1:%d", port);
    kc->ca_file = xstrdup(harness_fixture("kube-test-ca.pem"));
    kc->context = xstrdup("soak");
    kc->source = xstrdup("bench_soak");
    if (kube_new(kc, &opts, &kube, &err) != 0 || kube_new(kc, &opts, &event_kube, &err) != 0) {
        log_error("API client: %s", err ? err : "failed");
        goto out;
    }
    cfg.kube = kube;
    cfg.event_kube = event_kube;
    cfg.ns = SOAK_NS;
    cfg.identity = "bench-soak";
    if (controller_new(&cfg, &ctl) != 0 || controller_start(ctl) != 0) {
        log_error("the controller did not start");
        goto out;
    }
    for (int i = 0; i < 3000 && !controller_synced(ctl); i++)
        soak_sleep_ms(10);
    controller_start_workers(ctl);
    if (soak_heap)
        manager_heap_trim(); /* as the manager does once the caches synced */
    rc = 0;
    next_resync = soak_now() + CONTROLLER_DEFAULT_RESYNC_MS / 1000.0;
    next_trim = soak_now() + MANAGER_HEAP_TRIM_MS / 1000.0;
    for (;;) {
        struct pollfd p = {.fd = cmd_fd, .events = POLLIN};
        char cmd;

        if (poll(&p, 1, 1000) > 0) {
            if (read(cmd_fd, &cmd, 1) != 1 || cmd == 'Q')
                break;
            if (cmd == 'L') {
                /* the only info lines the soak wants among many: what the
                 * heap holds in use (a leak grows it; memory malloc keeps
                 * for reuse does not), then the cache */
                struct mallinfo2 mi = mallinfo2();
                cJSON *f = cJSON_CreateObject();

                cJSON_AddNumberToObject(f, "inUse", (double)mi.uordblks + (double)mi.hblkhd);
                cJSON_AddNumberToObject(f, "free", (double)mi.fordblks);
                cJSON_AddNumberToObject(f, "trimMsMax", trim_max);
                cJSON_AddNumberToObject(f, "trimMsMean", trims ? trim_sum / (double)trims : 0);
                cJSON_AddNumberToObject(f, "trims", (double)trims);
                cJSON_AddNumberToObject(f, "trimsOver10Ms", (double)trims_slow);
                log_set_level(LOG_LVL_INFO);
                log_fields(LOG_LVL_INFO, "heap", f);
                controller_log_cache(ctl);
                log_set_level(soak_log_level);
            }
        }
        if (soak_now() >= next_resync) {
            /* as the manager does every --resync-period */
            controller_resync(ctl);
            next_resync = soak_now() + CONTROLLER_DEFAULT_RESYNC_MS / 1000.0;
        }
        if (soak_heap && soak_now() >= next_trim) {
            /* as the manager does */
            double ms = manager_heap_trim();

            if (ms >= 0) {
                trim_max = ms > trim_max ? ms : trim_max;
                trim_sum += ms;
                trims++;
                trims_slow += ms > 10;
            }
            next_trim = soak_now() + MANAGER_HEAP_TRIM_MS / 1000.0;
        }
    }
    controller_stop_workers(ctl);
    kube_shutdown(kube);
    controller_stop(ctl);
out:
    controller_free(ctl);
    kube_free(event_kube);
    kube_free(kube);
    kubeconfig_free(kc);
    free(err);
    return rc;
}

int main(int argc, char **argv)
{
    int smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
    int mem = argc > 1 && strcmp(argv[1], "--memory") == 0;
    long nvms = soak_env_long("SOAK_VMS", smoke ? 500 : 10000);
    long secs = soak_env_long("SOAK_SECS", smoke ? 1 : 1800);
    int port_pipe[2], cmd_pipe[2], log_pipe[2], status = 0, rc;
    pid_t child;

    if (argc > 2 || (argc > 1 && !smoke && !mem)) {
        fprintf(stderr, "usage: bench_soak [--smoke|--memory]  (env SOAK_SECS, SOAK_VMS, "
                        "SOAK_GAP_MS, SOAK_LOG, SOAK_LOG_LEVEL, SOAK_MALLOC)\n");
        return 2;
    }
    soak_gap_ms = getenv("SOAK_GAP_MS") && strcmp(getenv("SOAK_GAP_MS"), "0") == 0
                      ? 0
                      : soak_env_long("SOAK_GAP_MS", 1000);
    if (getenv("SOAK_LOG_LEVEL") && log_parse_level(getenv("SOAK_LOG_LEVEL"), &soak_log_level)) {
        fprintf(stderr, "bench_soak: SOAK_LOG_LEVEL=%s: not debug, info, warn or error\n",
                getenv("SOAK_LOG_LEVEL"));
        return 2;
    }
    soak_heap = !(getenv("SOAK_MALLOC") && strcmp(getenv("SOAK_MALLOC"), "glibc") == 0);
    if (smoke && !getenv("SOAK_SECS"))
        secs = 1; /* two rounds: see below */
    if (pipe(port_pipe) || pipe(cmd_pipe) || pipe(log_pipe))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* before any thread: the child is the API server and the driver */
    child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        close(port_pipe[0]);
        close(cmd_pipe[0]);
        close(log_pipe[1]);
        _exit(soak_driver(port_pipe[1], cmd_pipe[1], log_pipe[0], nvms, secs, smoke ? 2 : 1,
                          mem ? nvms : 0));
    }
    close(port_pipe[1]);
    close(cmd_pipe[1]);
    close(log_pipe[0]);
    /* the controller's heap, set up as kvrecover-controller's main does */
    if (soak_heap)
        manager_heap_init();
    /* the controller's log goes to the driver */
    dup2(log_pipe[1], 2);
    close(log_pipe[1]);
    log_set_level(soak_log_level);
    rc = soak_controller(port_pipe[0], cmd_pipe[0]);
    close(2);
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc)
        return rc;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
