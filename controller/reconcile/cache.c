/*
 * cache — compact records of what the reflectors saw. See cache.h.
 *
 * Each put parses what the controller needs out of the borrowed object,
 * builds a fresh record outside the lock, and swaps it in under the write
 * lock, comparing with the old one to report what changed. Records hold no
 * cJSON trees except a policy's status (small) and packed strings elsewhere.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#include <utlist.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/text.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "reconcile/cache.h"
#include "sim/pool.h"
#include "sim/quantity.h"
#include "sim/replica.h"

/* A namespace the cache has seen: its pool version and the namespace index,
 * its records of each kind in the order they were stored. Kept until the
 * cache is freed, so that a pool version never starts again at 0. */
struct cache_ns {
    UT_hash_handle hh;
    char *ns;
    uint64_t pool_version;  /* bumped when a member changes */
    uint64_t vm_changes;    /* VM and VMI puts and deletes (cache_versions()) */
    uint64_t policy_stamp;  /* new when a policy's spec changes (cache_versions()) */
    struct cache_vmi *vmis; /* ns_prev/ns_next lists */
    struct cache_vm *vms;
    struct cache_policy *policies;
    struct cache_member *members;
    struct cache__raw *raws;
};

/*
 * A pool ConfigMap in a namespace without a policy (issue 12): nobody ranks
 * it, so it is not parsed, only kept until a policy arrives. It holds the
 * fields pool_member_from_json() and cache_member_put() read (name,
 * namespace, labels, the digest annotation, data.features, data.resources,
 * data.vm), each measured against its cap first, as compact JSON, deflated;
 * or, when a field is over its cap, only the error that will refuse it and
 * the labels, so that the policy whose pool it is in reports it. Not a
 * cache_member: no reader ever meets one.
 */
struct cache__raw {
    CACHE_RECORD_HEAD(struct cache__raw);
    unsigned char *z; /* the fields as compact JSON, deflated; NULL with error */
    uint32_t zlen;    /* deflated bytes */
    uint32_t len;     /* JSON bytes */
    char *error;      /* a field over its cap: why the member will be refused */
    char *labels;     /* with error: packed metadata.labels when within their
                         caps (cache__labels_fit()), else NULL */
};

/* An interned string: one copy however many records hold it. */
struct cache_str {
    UT_hash_handle hh;
    uint32_t refs;
    char s[];
};

/* A pod counted on a node: what it added to that node's use. */
struct cache_pod {
    UT_hash_handle hh;
    char *key;              /* ns, NUL, name */
    struct cache__use *use; /* its node's entry */
    double cpu, mem;        /* what it added */
};

/* A node's use: the requests of the pods counted on it. Kept while a pod
 * counts on it. */
struct cache__use {
    UT_hash_handle hh;
    const char *name; /* interned node name */
    struct cache_node_use u;
};

struct cache {
    pthread_rwlock_t lock;
    pthread_mutex_t str_lock; /* the intern table, used inside and outside lock */
    struct cache_str *strs;
    struct cache_vmi *vmis;
    struct cache_vm *vms;
    struct cache_replacement *by_failed_uid; /* replacements' hh, by failed uid */
    struct cache_policy *policies;
    struct cache_member *members;
    struct cache__raw *raws; /* pool ConfigMaps of namespaces without a policy */
    struct cache_ns *nss;
    struct cache_node *nodes;
    struct cache_pod *pods;
    struct cache__use *uses;
    uint64_t nodes_stamp; /* new when a Node's health facts change (cache_versions()) */
};

/* Stamps are drawn from one sequence for the whole process, so that two
 * caches (tests make several) never hand out the same one: a memo made
 * from one cache never matches another. */
static atomic_uint_fast64_t cache__stamps;

static uint64_t cache__stamp(void)
{
    return (uint64_t)atomic_fetch_add(&cache__stamps, 1) + 1;
}

static const char *const cache__phases[] = {
    "", "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown", "Other",
};

const char *cache_phase_name(enum cache_phase p)
{
    return (unsigned)p <= CACHE_PHASE_OTHER ? cache__phases[p] : "Other";
}

enum cache_phase cache_phase_parse(const char *s)
{
    if (!s)
        return CACHE_PHASE_NONE;
    for (int i = 0; i < CACHE_PHASE_OTHER; i++)
        if (strcmp(s, cache__phases[i]) == 0)
            return (enum cache_phase)i;
    return CACHE_PHASE_OTHER;
}

int cache_phase_failed(enum cache_phase p)
{
    return p == CACHE_PHASE_FAILED || p == CACHE_PHASE_UNKNOWN;
}

static const char *const cache__strategies[] = {
    "Halted", "Always", "RerunOnFailure", "Manual", "Once", "WaitAsReceiver", "Unknown",
};

const char *cache_run_strategy_name(enum cache_run_strategy rs)
{
    return (unsigned)rs <= CACHE_RS_UNKNOWN ? cache__strategies[rs] : "Unknown";
}

int cache_taint_next(const char **it, const char **key, const char **value, const char **effect)
{
    const char *s = *it;

    if (!s || !*s)
        return 0;
    *key = s;
    s += strlen(s) + 1;
    *value = s;
    s += strlen(s) + 1;
    *effect = s;
    s += strlen(s) + 1;
    *it = s;
    return 1;
}

/* ---- small helpers ---------------------------------------------------- */

static const cJSON *cache__get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *cache__str(const cJSON *o, const char *k)
{
    const cJSON *v = cache__get(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int cache__streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The interned copy of s (NULL gives NULL); release with cache__unintern(). */
static const char *cache__intern(struct cache *c, const char *s)
{
    struct cache_str *e = NULL;
    size_t n;

    if (!s)
        return NULL;
    n = strlen(s);
    pthread_mutex_lock(&c->str_lock);
    HASH_FIND(hh, c->strs, s, n, e);
    if (e) {
        e->refs++;
    } else {
        e = xmalloc(sizeof(*e) + n + 1);
        memset(&e->hh, 0, sizeof(e->hh));
        e->refs = 1;
        memcpy(e->s, s, n + 1);
        HASH_ADD(hh, c->strs, s[0], n, e);
    }
    pthread_mutex_unlock(&c->str_lock);
    return e->s;
}

static void cache__unintern(struct cache *c, const char *s)
{
    struct cache_str *e;

    if (!s)
        return;
    e = (struct cache_str *)(void *)(s - offsetof(struct cache_str, s));
    pthread_mutex_lock(&c->str_lock);
    if (--e->refs == 0) {
        HASH_DELETE(hh, c->strs, e);
        free(e);
    }
    pthread_mutex_unlock(&c->str_lock);
}

char *cache_key(const char *ns, const char *name, size_t *len)
{
    size_t a = strlen(ns), b = strlen(name);
    char *k = xmalloc(a + b + 2);

    memcpy(k, ns, a + 1);
    memcpy(k + a + 1, name, b + 1);
    *len = a + 1 + b;
    return k;
}

static char *cache__obj_key(const cJSON *obj, size_t *len)
{
    const cJSON *meta = cache__get(obj, "metadata");
    const char *ns = cache__str(meta, "namespace"), *name = cache__str(meta, "name");

    if (!name || !*name)
        return NULL;
    return cache_key(ns ? ns : "", name, len);
}

static size_t cache__packed_len(const char *p)
{
    const char *s = p;

    if (!p)
        return 0;
    while (*s) {
        s += strlen(s) + 1; /* key */
        s += strlen(s) + 1; /* value */
    }
    return (size_t)(s - p) + 1;
}

/*
 * One allocation for a record and the strings it keeps unchanged for its
 * life (issue 11): the struct of size bytes, then each string, so that a
 * record pays one malloc header and one rounding instead of one per string
 * (about 8 to 24 bytes each). src[i] is len[i] bytes (NULL: none); out[i]
 * gets its copy inside the block, or NULL. The struct comes back zeroed;
 * one free() releases it all.
 */
static void *cache__block(size_t size, size_t n, const char *const src[], const size_t len[],
                          char *out[])
{
    size_t total = size;
    char *block, *p;

    for (size_t i = 0; i < n; i++)
        total += src[i] ? len[i] : 0;
    block = xmalloc(total);
    memset(block, 0, size);
    p = block + size;
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (src[i]) {
            memcpy(p, src[i], len[i]);
            out[i] = p;
            p += len[i];
        }
    }
    return block;
}

static int cache__packed_eq(const char *a, const char *b)
{
    size_t la = cache__packed_len(a), lb = cache__packed_len(b);

    return la == lb && (la == 0 || memcmp(a, b, la) == 0);
}

char *cache_labels_pack(const cJSON *labels)
{
    const cJSON *it;
    size_t n = 1;
    char *out, *p;

    cJSON_ArrayForEach(it, (cJSON_IsObject(labels) ? labels : NULL))
    {
        if (cJSON_IsString(it) && it->string && *it->string)
            n += strlen(it->string) + strlen(it->valuestring) + 2;
    }
    if (n == 1)
        return NULL;
    p = out = xmalloc(n);
    cJSON_ArrayForEach(it, labels)
    {
        if (!cJSON_IsString(it) || !it->string || !*it->string)
            continue;
        size_t k = strlen(it->string) + 1, v = strlen(it->valuestring) + 1;
        memcpy(p, it->string, k);
        memcpy(p + k, it->valuestring, v);
        p += k + v;
    }
    *p = '\0';
    return out;
}

const char *cache_label(const char *packed, const char *key)
{
    const char *s = packed;

    if (!s)
        return NULL;
    while (*s) {
        const char *v = s + strlen(s) + 1;

        if (strcmp(s, key) == 0)
            return v;
        s = v + strlen(v) + 1;
    }
    return NULL;
}

cJSON *cache_labels_json(const char *packed)
{
    cJSON *o = cJSON_CreateObject();
    const char *s = packed;

    while (s && *s) {
        const char *v = s + strlen(s) + 1;

        cJSON_AddStringToObject(o, s, v);
        s = v + strlen(v) + 1;
    }
    return o;
}

/* policy_selector_matches_with()'s lookup on packed labels. */
static const char *cache__label(const void *packed, const char *key)
{
    return cache_label(packed, key);
}

int cache_selector_matches(const struct policy_selector *sel, const char *packed)
{
    return policy_selector_matches_with(sel, cache__label, packed);
}

/* ---- cache_spec ------------------------------------------------------- */

static void cache__spec_free(struct cache *c, struct cache_spec *s)
{
    cache__unintern(c, s->features);
    free(s->error);
    memset(s, 0, sizeof(*s));
}

/* Reads the spec of obj through the features parser (vm selects the VM
 * flavour), keeping the features text as written and the resources. */
static void cache__spec_read(struct cache *c, struct cache_spec *s, const cJSON *obj, int vm)
{
    struct features f = {0};
    char *err = NULL;
    const cJSON *meta;
    const char *text;
    int rc;

    memset(s, 0, sizeof(*s));
    rc = vm ? features_from_vm(obj, &f, &err) : features_from_vmi(obj, &f, &err);
    if (rc) {
        s->error = err ? err : xstrdup("features could not be read");
        return;
    }
    meta = cache__get(obj, "metadata");
    if (vm) {
        /* features_from_vm(): the template's annotations, else the VM's. */
        const cJSON *tmeta =
            cache__get(cache__get(cache__get(obj, "spec"), "template"), "metadata");
        text = cache__str(cache__get(tmeta, "annotations"), FEATURES_ANNOTATION);
        if (!text)
            text = cache__str(cache__get(meta, "annotations"), FEATURES_ANNOTATION);
    } else {
        text = cache__str(cache__get(meta, "annotations"), FEATURES_ANNOTATION);
    }
    /* VMIs made from one template share one copy of their features text */
    s->features = text && f.has_features ? cache__intern(c, text) : NULL;
    memcpy(s->res, f.res, sizeof(s->res));
    s->has_res = f.has_res;
    features_free(&f);
}

static int cache__spec_eq(const struct cache_spec *a, const struct cache_spec *b)
{
    return cache__streq(a->features, b->features) && cache__streq(a->error, b->error) &&
           a->has_res == b->has_res && memcmp(a->res, b->res, sizeof(a->res)) == 0;
}

int cache_spec_features(const struct cache_spec *s, struct features *out, char **err)
{
    cJSON *doc = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    *err = NULL;
    if (s->error) {
        *err = xstrdup(s->error);
        return -EINVAL;
    }
    if (s->features) {
        rc = yaml_parse_one(s->features, strlen(s->features), &doc, err);
        if (!rc)
            rc = features_parse_map(out, doc, err);
        cJSON_Delete(doc);
        if (rc) {
            features_free(out);
            return rc;
        }
    }
    memcpy(out->res, s->res, sizeof(out->res));
    out->has_res = s->has_res;
    return 0;
}

/* ---- the cache -------------------------------------------------------- */

struct cache *cache_new(void)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    pthread_rwlockattr_t attr;

    /* Writers first: glibc's default lets a stream of readers (workers,
     * status) keep a reflector waiting, and a failure it holds unseen. No
     * reader ever takes the lock twice, so this cannot deadlock. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&c->str_lock, NULL);
    c->nodes_stamp = cache__stamp();
    return c;
}

void cache_rdlock(struct cache *c)
{
    pthread_rwlock_rdlock(&c->lock);
}

void cache_unlock(struct cache *c)
{
    pthread_rwlock_unlock(&c->lock);
}

static void cache__wrlock(struct cache *c)
{
    pthread_rwlock_wrlock(&c->lock);
}

static void cache__vmi_free(struct cache *c, struct cache_vmi *r)
{
    if (!r)
        return;
    free(r->key);
    free(r->uid);
    free(r->owner_uid);
    free(r->labels);
    cache__unintern(c, r->node);
    cache__spec_free(c, &r->spec);
    free(r);
}

static void cache__repl_free(struct cache_replacement *r)
{
    if (!r)
        return;
    free(r->failed_uid);
    free(r->policy);
    free(r->replaces);
    free(r->tmpl);
    free(r->decided_at);
    free(r);
}

static void cache__inc_free(struct cache_incident *r)
{
    if (!r)
        return;
    free(r->replaced_by);
    free(r->failed_uid);
    free(r->previous_rs);
    free(r->policy);
    free(r->tmpl);
    free(r);
}

static void cache__vm_free(struct cache *c, struct cache_vm *r)
{
    if (!r)
        return;
    /* key, uid, resourceVersion and labels are in r's block (cache_vm_put()) */
    cache__spec_free(c, &r->spec);
    cache__unintern(c, r->printable);
    free(r->fail_uid);
    cache__repl_free(r->repl);
    cache__inc_free(r->inc);
    free(r->last_failed_uid);
    if (r->seen)
        cache__spec_free(c, r->seen);
    free(r->seen);
    free(r);
}

static void cache__node_free(struct cache_node *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->labels);
    free(r->taints);
    free(r);
}

static void cache__policy_free(struct cache_policy *r)
{
    if (!r)
        return;
    free(r->key);
    free(r->uid);
    policy_free(&r->pol);
    free(r->error);
    cJSON_Delete(r->status);
    free(r);
}

static void cache__member_free(struct cache *c, struct cache_member *r)
{
    if (!r)
        return;
    /* key, labels, items and template are in r's block (cache__member_compact()) */
    for (uint32_t i = 0; i < 2 * r->nitems; i++)
        cache__unintern(c, r->items[i]);
    free(r->disk);
    free(r->digest);
    free(r->error);
    free(r);
}

static void cache__raw_free(struct cache__raw *r)
{
    if (!r)
        return;
    free(r->key);
    free(r->z);
    free(r->error);
    free(r->labels);
    free(r);
}

void cache_free(struct cache *c)
{
    struct cache_vmi *vmi, *vmi_tmp;
    struct cache_vm *vm, *vm_tmp;
    struct cache_policy *p, *p_tmp;
    struct cache_member *m, *m_tmp;
    struct cache_ns *n, *n_tmp;

    if (!c)
        return;
    HASH_ITER(hh, c->vmis, vmi, vmi_tmp)
    {
        HASH_DELETE(hh, c->vmis, vmi);
        cache__vmi_free(c, vmi);
    }
    HASH_CLEAR(hh, c->by_failed_uid);
    HASH_ITER(hh, c->vms, vm, vm_tmp)
    {
        HASH_DELETE(hh, c->vms, vm);
        cache__vm_free(c, vm);
    }
    HASH_ITER(hh, c->policies, p, p_tmp)
    {
        HASH_DELETE(hh, c->policies, p);
        cache__policy_free(p);
    }
    HASH_ITER(hh, c->members, m, m_tmp)
    {
        HASH_DELETE(hh, c->members, m);
        cache__member_free(c, m);
    }
    {
        struct cache__raw *w, *w_tmp;

        HASH_ITER(hh, c->raws, w, w_tmp)
        {
            HASH_DELETE(hh, c->raws, w);
            cache__raw_free(w);
        }
    }
    HASH_ITER(hh, c->nss, n, n_tmp)
    {
        HASH_DELETE(hh, c->nss, n);
        free(n->ns);
        free(n);
    }
    {
        struct cache_node *nd, *nd_tmp;
        struct cache_pod *pd, *pd_tmp;
        struct cache__use *u, *u_tmp;

        HASH_ITER(hh, c->nodes, nd, nd_tmp)
        {
            HASH_DELETE(hh, c->nodes, nd);
            cache__node_free(nd);
        }
        HASH_ITER(hh, c->pods, pd, pd_tmp)
        {
            HASH_DELETE(hh, c->pods, pd);
            free(pd->key);
            free(pd);
        }
        HASH_ITER(hh, c->uses, u, u_tmp)
        {
            HASH_DELETE(hh, c->uses, u);
            cache__unintern(c, u->name);
            free(u);
        }
    }
    pthread_rwlock_destroy(&c->lock);
    pthread_mutex_destroy(&c->str_lock);
    free(c);
}

/* Gives a record its key; ns is the key's first string, name the second. */
#define CACHE__SET_KEY(r, k, len)                                                                  \
    do {                                                                                           \
        (r)->key = (k);                                                                            \
        (r)->name = (k) + strlen(k) + 1;                                                           \
        (void)(len);                                                                               \
    } while (0)

/* The namespace ns, made on first sight. Write lock held. */
static struct cache_ns *cache__ns(struct cache *c, const char *ns)
{
    struct cache_ns *n = NULL;

    HASH_FIND_STR(c->nss, ns, n);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->ns = xstrdup(ns);
        n->policy_stamp = cache__stamp();
        HASH_ADD_KEYPTR(hh, c->nss, n->ns, strlen(n->ns), n);
    }
    return n;
}

/* Stores r in place of old (NULL: none) in the table c->field and in its
 * namespace's list of that kind, at the end of both, so that a walk of one
 * namespace meets its records in the order a walk of all does. Write lock
 * held. */
#define CACHE__STORE(c, field, old, r, len)                                                        \
    do {                                                                                           \
        struct cache_ns *n__ = cache__ns((c), (r)->ns);                                            \
        if (old) {                                                                                 \
            HASH_DELETE(hh, (c)->field, (old));                                                    \
            DL_DELETE2(n__->field, (old), ns_prev, ns_next);                                       \
        }                                                                                          \
        HASH_ADD_KEYPTR(hh, (c)->field, (r)->key, (len), (r));                                     \
        DL_APPEND2(n__->field, (r), ns_prev, ns_next);                                             \
    } while (0)

/* Takes old out of the table c->field and its namespace's list. Write lock
 * held. */
#define CACHE__REMOVE(c, field, old)                                                               \
    do {                                                                                           \
        struct cache_ns *n__ = cache__ns((c), (old)->ns);                                          \
        HASH_DELETE(hh, (c)->field, (old));                                                        \
        DL_DELETE2(n__->field, (old), ns_prev, ns_next);                                           \
    } while (0)

/* ---- VMIs ------------------------------------------------------------- */

/* When status.phaseTransitionTimestamps says phase began, or -1. */
static double cache__phase_began(const cJSON *status, const char *phase)
{
    const cJSON *ts = cache__get(status, "phaseTransitionTimestamps"), *it;
    double t = -1, v;

    cJSON_ArrayForEach(it, (cJSON_IsArray(ts) ? ts : NULL))
    {
        if (cache__streq(cache__str(it, "phase"), phase) &&
            clock_parse(cache__str(it, "phaseTransitionTimestamp"), &v) == 0 && v > t)
            t = v;
    }
    return t;
}

/* The uid the VMI's controller ownerReference gives its VirtualMachine: one
 * with controller: true, kind VirtualMachine, an apiVersion of the
 * kubevirt.io group and the VMI's own name (KubeVirt names a VM's VMI after
 * the VM). NULL when it has none: then it is nobody's (cache.h). */
static const char *cache__owner_uid(const cJSON *meta, const char *name)
{
    const cJSON *refs = cache__get(meta, "ownerReferences"), *it;

    cJSON_ArrayForEach(it, (cJSON_IsArray(refs) ? refs : NULL))
    {
        const char *api = cache__str(it, "apiVersion"), *uid = cache__str(it, "uid");

        if (!cJSON_IsTrue(cache__get(it, "controller")))
            continue;
        /* one controller at most (the API server enforces it) */
        if (cache__streq(cache__str(it, "kind"), "VirtualMachine") && api &&
            strncmp(api, "kubevirt.io/", 12) == 0 && cache__streq(cache__str(it, "name"), name) &&
            uid && *uid)
            return uid;
        return NULL;
    }
    return NULL;
}

/* The VM of the VMI r: cached under the VMI's key, with the owner's uid.
 * Lock held. */
static struct cache_vm *cache__vmi_vm(struct cache *c, const struct cache_vmi *r)
{
    struct cache_vm *vm = NULL;

    if (!r->owner_uid)
        return NULL;
    HASH_FIND(hh, c->vms, r->key, strlen(r->ns) + 1 + strlen(r->name), vm);
    return vm && strcmp(vm->uid, r->owner_uid) == 0 ? vm : NULL;
}

/* Copies what a VM remembers of its VMIs from r: a Failed one's uid and
 * time, and the features it carried. Write lock held. */
static void cache__vm_remember(struct cache *c, struct cache_vm *vm, const struct cache_vmi *r)
{
    if (r->phase == CACHE_PHASE_FAILED && !cache__streq(vm->last_failed_uid, r->uid)) {
        free(vm->last_failed_uid);
        vm->last_failed_uid = xstrdup(r->uid);
        vm->last_failed_when = r->phase_since;
        vm->last_failed_mono = r->seen_mono;
    }
    if ((r->spec.features || r->spec.has_res) &&
        !(vm->seen && cache__spec_eq(vm->seen, &r->spec))) {
        if (vm->seen)
            cache__spec_free(c, vm->seen);
        else
            vm->seen = xmalloc(sizeof(*vm->seen));
        *vm->seen = r->spec;
        vm->seen->features = cache__intern(c, r->spec.features);
        vm->seen->error = xstrdup(r->spec.error);
    }
}

int cache_vmi_put(struct cache *c, const cJSON *obj, double now_wall, double now_mono)
{
    const cJSON *meta = cache__get(obj, "metadata"), *status = cache__get(obj, "status");
    struct cache_vmi *r, *old = NULL;
    struct cache_vm *vm;
    const char *owner, *phase, *node;
    size_t len;
    char *key = cache__obj_key(obj, &len);
    int chg = 0;
    double began;

    if (!key)
        return -EINVAL;
    r = xcalloc(1, sizeof(*r));
    CACHE__SET_KEY(r, key, len);
    r->uid = xstrdup(cache__str(meta, "uid") ? cache__str(meta, "uid") : "");
    owner = cache__owner_uid(meta, r->name);
    r->owner_uid = owner ? xstrdup(owner) : NULL;
    r->labels = cache_labels_pack(cache__get(meta, "labels"));
    phase = cache__str(status, "phase");
    r->phase = cache_phase_parse(phase);
    node = cache__str(status, "nodeName");
    r->node = node && *node ? cache__intern(c, node) : NULL;
    r->deleting = cache__get(meta, "deletionTimestamp") != NULL;
    r->ever_running = r->phase == CACHE_PHASE_RUNNING || cache__phase_began(status, "Running") >= 0;
    cache__spec_read(c, &r->spec, obj, 0);
    began = cache__phase_began(status, phase);

    cache__wrlock(c);
    HASH_FIND(hh, c->vmis, key, len, old);
    if (!old || strcmp(old->uid, r->uid) != 0) {
        chg |=
            CACHE_CHG_NEW | CACHE_CHG_PHASE | CACHE_CHG_LABELS | CACHE_CHG_SPEC | CACHE_CHG_HEALTH;
    } else {
        if (old->phase != r->phase)
            chg |= CACHE_CHG_PHASE;
        if (!cache__packed_eq(old->labels, r->labels))
            chg |= CACHE_CHG_LABELS;
        if (!cache__spec_eq(&old->spec, &r->spec))
            chg |= CACHE_CHG_SPEC;
        /* interned: equal names are the same pointer */
        if (old->node != r->node || old->deleting != r->deleting ||
            old->ever_running != r->ever_running || !cache__streq(old->owner_uid, r->owner_uid))
            chg |= CACHE_CHG_HEALTH;
    }
    if (chg & CACHE_CHG_PHASE) {
        r->phase_since = began >= 0 ? began : now_wall;
        r->seen_mono = now_mono;
    } else {
        r->phase_since = old->phase_since;
        r->seen_mono = old->seen_mono;
    }
    CACHE__STORE(c, vmis, old, r, len);
    cache__ns(c, r->ns)->vm_changes++;
    vm = cache__vmi_vm(c, r);
    if (vm)
        cache__vm_remember(c, vm, r);
    cache_unlock(c);
    cache__vmi_free(c, old);
    return chg;
}

int cache_vmi_del(struct cache *c, const cJSON *obj)
{
    struct cache_vmi *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return 0;
    cache__wrlock(c);
    HASH_FIND(hh, c->vmis, key, len, old);
    if (old) {
        CACHE__REMOVE(c, vmis, old);
        cache__ns(c, old->ns)->vm_changes++;
    }
    cache_unlock(c);
    free(key);
    cache__vmi_free(c, old);
    return old != NULL;
}

/* ---- VMs -------------------------------------------------------------- */

/* Annotations KubeVirt and kubectl write for themselves: never copied by
 * capture, so they do not count in the fingerprint either. */
int cache_annotation_is_generated(const char *key)
{
    return strncmp(key, "kubevirt.io/", 12) == 0 ||
           strcmp(key, "kubectl.kubernetes.io/last-applied-configuration") == 0;
}

/* A score annotation: a number in [0, 1], else -1. */
static double cache__score(const char *score)
{
    char *end;
    double v;

    if (!score)
        return -1;
    v = strtod(score, &end);
    return end != score && *end == '\0' && v >= 0 && v <= 1 ? v : -1;
}

/* A replacement: labelled kvrecover.io/replaces and annotated
 * kvrecover.io/failed-uid (a failed VM that kvrecover halted carries the
 * annotation too, but not the label). */
static struct cache_replacement *cache__repl_read(const cJSON *meta)
{
    const cJSON *ann = cache__get(meta, "annotations"), *labels = cache__get(meta, "labels");
    const char *uid = cache__str(ann, CACHE_FAILED_UID_ANNOTATION);
    const char *replaces = cache__str(labels, CACHE_REPLACES_LABEL);
    struct cache_replacement *r;

    if (!uid || !*uid || !replaces || !*replaces)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    r->failed_uid = xstrdup(uid);
    r->policy = xstrdup(cache__str(labels, CACHE_POLICY_LABEL));
    r->replaces = xstrdup(replaces);
    r->tmpl = xstrdup(cache__str(labels, CACHE_TEMPLATE_LABEL));
    r->decided_at = xstrdup(cache__str(ann, CACHE_DECIDED_AT_ANNOTATION));
    r->score = cache__score(cache__str(ann, CACHE_SCORE_ANNOTATION));
    return r;
}

/* The incident annotations of a VM kvrecover halted, when it carries
 * kvrecover.io/replaced-by. */
static struct cache_incident *cache__inc_read(const cJSON *meta)
{
    const cJSON *ann = cache__get(meta, "annotations");
    const char *by = cache__str(ann, CACHE_REPLACED_BY_ANNOTATION), *v;
    struct cache_incident *r;

    if (!by || !*by)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    r->replaced_by = xstrdup(by);
    v = cache__str(ann, CACHE_FAILED_UID_ANNOTATION);
    r->failed_uid = v && *v ? xstrdup(v) : NULL;
    r->previous_rs = xstrdup(cache__str(ann, CACHE_PREVIOUS_RS_ANNOTATION));
    r->policy = xstrdup(cache__str(ann, CACHE_POLICY_ANNOTATION));
    r->tmpl = xstrdup(cache__str(ann, CACHE_TEMPLATE_ANNOTATION));
    r->score = cache__score(cache__str(ann, CACHE_SCORE_ANNOTATION));
    return r;
}

static int cache__inc_eq(const struct cache_incident *a, const struct cache_incident *b)
{
    if (!a || !b)
        return a == b;
    return cache__streq(a->replaced_by, b->replaced_by) &&
           cache__streq(a->failed_uid, b->failed_uid) &&
           cache__streq(a->previous_rs, b->previous_rs) && cache__streq(a->policy, b->policy) &&
           cache__streq(a->tmpl, b->tmpl) && a->score == b->score;
}

static int cache__repl_eq(const struct cache_replacement *a, const struct cache_replacement *b)
{
    if (!a || !b)
        return a == b;
    return cache__streq(a->failed_uid, b->failed_uid) && cache__streq(a->policy, b->policy) &&
           cache__streq(a->replaces, b->replaces) && cache__streq(a->tmpl, b->tmpl) &&
           cache__streq(a->decided_at, b->decided_at) && a->score == b->score;
}

/* metadata.generation, or 0 when absent or not a count (a hostile value
 * out of range must not reach the conversion to long). */
static long cache__generation(const cJSON *meta)
{
    const cJSON *gen = cache__get(meta, "generation");

    if (!cJSON_IsNumber(gen) || !(gen->valuedouble >= 0 && gen->valuedouble < 9e15))
        return 0;
    return (long)gen->valuedouble;
}

static uint64_t cache__vm_fingerprint(const cJSON *meta)
{
    const cJSON *ann = cache__get(meta, "annotations");
    const cJSON *it;
    uint64_t h = HASH_FNV_INIT;
    long gen = cache__generation(meta);
    char *labels = cache_labels_pack(cache__get(meta, "labels"));

    h = hash_fnv_field(h, cache__str(meta, "uid"));
    h = hash_fnv(h, &gen, sizeof(gen));
    h = hash_fnv(h, labels ? labels : "", cache__packed_len(labels));
    free(labels);
    cJSON_ArrayForEach(it, (cJSON_IsObject(ann) ? ann : NULL))
    {
        if (!cJSON_IsString(it) || !it->string || cache_annotation_is_generated(it->string))
            continue;
        h = hash_fnv_field(h, it->string);
        h = hash_fnv_field(h, it->valuestring);
    }
    return h;
}

static enum cache_run_strategy cache__run_strategy(const cJSON *spec)
{
    const cJSON *rs = cache__get(spec, "runStrategy"), *running = cache__get(spec, "running");

    if (rs && running && !cJSON_IsNull(rs) && !cJSON_IsNull(running))
        return CACHE_RS_UNKNOWN; /* KubeVirt: "mutually exclusive" */
    if (cJSON_IsBool(running))
        return cJSON_IsTrue(running) ? CACHE_RS_ALWAYS : CACHE_RS_HALTED;
    if (cJSON_IsString(rs)) {
        for (int i = 0; i < CACHE_RS_UNKNOWN; i++)
            if (strcmp(rs->valuestring, cache__strategies[i]) == 0)
                return (enum cache_run_strategy)i;
        return CACHE_RS_UNKNOWN;
    }
    return CACHE_RS_HALTED;
}

/* The status of condition type in status.conditions, and when it last
 * changed (0 when unknown). */
static enum cache_cond cache__condition(const cJSON *status, const char *type, double *since)
{
    const cJSON *conds = cache__get(status, "conditions"), *it;

    *since = 0;
    cJSON_ArrayForEach(it, (cJSON_IsArray(conds) ? conds : NULL))
    {
        const char *st;

        if (!cache__streq(cache__str(it, "type"), type))
            continue;
        if (clock_parse(cache__str(it, "lastTransitionTime"), since) != 0)
            *since = 0;
        st = cache__str(it, "status");
        if (cache__streq(st, "True"))
            return CACHE_COND_TRUE;
        if (cache__streq(st, "False"))
            return CACHE_COND_FALSE;
        return CACHE_COND_UNKNOWN;
    }
    return CACHE_COND_UNKNOWN;
}

/* KubeVirt's status of a VM, as health reads it. */
static void cache__vm_status(struct cache *c, struct cache_vm *r, const cJSON *status)
{
    const cJSON *sf = cache__get(status, "startFailure");
    const cJSON *n = cache__get(sf, "consecutiveFailCount");
    const char *p = cache__str(status, "printableStatus"), *uid;

    /* bounded: a count is small, and a printableStatus is one word */
    r->printable = p && *p && strlen(p) < 64 ? cache__intern(c, p) : NULL;
    if (cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e9)
        r->fail_count = (int)n->valuedouble;
    uid = cache__str(sf, "lastFailedVMIUID");
    r->fail_uid = uid && *uid ? xstrdup(uid) : NULL;
    r->ready = cache__condition(status, "Ready", &r->ready_since);
}

static int cache__vm_health_eq(const struct cache_vm *a, const struct cache_vm *b)
{
    return a->run_strategy == b->run_strategy && a->printable == b->printable &&
           a->fail_count == b->fail_count && cache__streq(a->fail_uid, b->fail_uid) &&
           a->ready == b->ready && a->ready_since == b->ready_since && a->deleting == b->deleting;
}

static void cache__uid_index_del(struct cache *c, struct cache_vm *r)
{
    struct cache_replacement *cur = NULL;

    if (!r || !r->repl)
        return;
    HASH_FIND(hh, c->by_failed_uid, r->repl->failed_uid, strlen(r->repl->failed_uid), cur);
    if (cur == r->repl)
        HASH_DELETE(hh, c->by_failed_uid, r->repl);
}

static void cache__uid_index_add(struct cache *c, struct cache_vm *r)
{
    struct cache_replacement *cur = NULL;

    if (!r->repl)
        return;
    /* Two VMs claiming one failed VMI: the first one seen stays indexed. */
    HASH_FIND(hh, c->by_failed_uid, r->repl->failed_uid, strlen(r->repl->failed_uid), cur);
    if (!cur) {
        r->repl->vm = r;
        HASH_ADD_KEYPTR(hh, c->by_failed_uid, r->repl->failed_uid, strlen(r->repl->failed_uid),
                        r->repl);
    }
}

int cache_vm_put(struct cache *c, const cJSON *obj)
{
    const cJSON *meta = cache__get(obj, "metadata"), *spec = cache__get(obj, "spec");
    const cJSON *tmeta = cache__get(cache__get(spec, "template"), "metadata");
    struct cache_vm *r, *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);
    int chg = 0;

    if (!key)
        return -EINVAL;
    {
        char *labels = cache_labels_pack(cache__get(meta, "labels"));
        char *tlabels = cache_labels_pack(cache__get(tmeta, "labels"));
        const char *uid = cache__str(meta, "uid") ? cache__str(meta, "uid") : "";
        const char *rv = cache__str(meta, "resourceVersion");
        const char *src[] = {key, uid, rv, labels, tlabels};
        const size_t lens[] = {len + 1, strlen(uid) + 1, rv ? strlen(rv) + 1 : 0,
                               cache__packed_len(labels), cache__packed_len(tlabels)};
        char *out[5];

        r = cache__block(sizeof(*r), 5, src, lens, out);
        free(key);
        free(labels);
        free(tlabels);
        key = out[0];
        CACHE__SET_KEY(r, key, len);
        r->uid = out[1];
        r->resource_version = out[2];
        r->labels = out[3];
        r->tlabels = out[4];
    }
    r->generation = cache__generation(meta);
    cache__spec_read(c, &r->spec, obj, 1);
    r->fingerprint = cache__vm_fingerprint(meta);
    r->run_strategy = cache__run_strategy(spec);
    r->deleting = cache__get(meta, "deletionTimestamp") != NULL;
    cache__vm_status(c, r, cache__get(obj, "status"));
    r->repl = cache__repl_read(meta);
    r->inc = cache__inc_read(meta);

    cache__wrlock(c);
    HASH_FIND(hh, c->vms, key, len, old);
    if (!old || strcmp(old->uid, r->uid) != 0) {
        chg = CACHE_CHG_NEW | CACHE_CHG_LABELS | CACHE_CHG_SPEC | CACHE_CHG_CAPTURE |
              CACHE_CHG_HEALTH;
        if (r->repl || r->inc || (old && (old->repl || old->inc)))
            chg |= CACHE_CHG_REPL;
    } else {
        if (!cache__packed_eq(old->labels, r->labels) ||
            !cache__packed_eq(old->tlabels, r->tlabels))
            chg |= CACHE_CHG_LABELS;
        if (!cache__spec_eq(&old->spec, &r->spec))
            chg |= CACHE_CHG_SPEC;
        if (old->fingerprint != r->fingerprint)
            chg |= CACHE_CHG_CAPTURE;
        if (!cache__repl_eq(old->repl, r->repl) || !cache__inc_eq(old->inc, r->inc))
            chg |= CACHE_CHG_REPL;
        if (!cache__vm_health_eq(old, r))
            chg |= CACHE_CHG_HEALTH;
        /* what this VM's VMIs told the cache stays with it */
        r->last_failed_uid = old->last_failed_uid;
        r->last_failed_when = old->last_failed_when;
        r->last_failed_mono = old->last_failed_mono;
        r->seen = old->seen;
        old->last_failed_uid = NULL;
        old->seen = NULL;
    }
    if (old)
        cache__uid_index_del(c, old);
    CACHE__STORE(c, vms, old, r, len);
    cache__ns(c, r->ns)->vm_changes++;
    cache__uid_index_add(c, r);
    if (chg & CACHE_CHG_NEW) {
        /* a VMI seen before its VM: remember it now */
        struct cache_vmi *vmi = NULL;

        HASH_FIND(hh, c->vmis, key, len, vmi);
        if (vmi && cache__vmi_vm(c, vmi) == r)
            cache__vm_remember(c, r, vmi);
    }
    cache_unlock(c);
    cache__vm_free(c, old);
    return chg;
}

int cache_vm_del(struct cache *c, const cJSON *obj)
{
    struct cache_vm *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return 0;
    cache__wrlock(c);
    HASH_FIND(hh, c->vms, key, len, old);
    if (old) {
        cache__uid_index_del(c, old);
        CACHE__REMOVE(c, vms, old);
        cache__ns(c, old->ns)->vm_changes++;
    }
    cache_unlock(c);
    free(key);
    cache__vm_free(c, old);
    return old != NULL;
}

/* ---- nodes and pods --------------------------------------------------- */

/* A quantity of a resource list (allocatable, requests), or 0. */
static double cache__qty(const cJSON *list, const char *name)
{
    double v = 0;
    char *err = NULL;

    if (!cache__get(list, name) || quantity_from_json(cache__get(list, name), &v, &err) != 0)
        v = 0;
    free(err);
    return v;
}

/* spec.taints packed as key, value, effect triples; NULL when none. */
static char *cache__taints_pack(const cJSON *taints)
{
    struct buf b = {0};
    const cJSON *it;

    cJSON_ArrayForEach(it, (cJSON_IsArray(taints) ? taints : NULL))
    {
        const char *k = cache__str(it, "key"), *v = cache__str(it, "value");
        const char *e = cache__str(it, "effect");

        if (!k || !*k)
            continue;
        buf_append(&b, k, strlen(k) + 1);
        buf_append(&b, v ? v : "", strlen(v ? v : "") + 1);
        buf_append(&b, e ? e : "", strlen(e ? e : "") + 1);
    }
    if (!b.len)
        return NULL;
    buf_append(&b, "", 1);
    return buf_steal(&b);
}

static size_t cache__taints_len(const char *p)
{
    const char *s = p, *k, *v, *e;

    if (!p)
        return 0;
    while (cache_taint_next(&s, &k, &v, &e))
        ;
    return (size_t)(s - p) + 1;
}

int cache_node_put(struct cache *c, const cJSON *obj)
{
    const cJSON *meta = cache__get(obj, "metadata"), *status = cache__get(obj, "status");
    const cJSON *alloc = cache__get(status, "allocatable");
    const char *name = cache__str(meta, "name"), *hb;
    struct cache_node *r, *old = NULL;
    size_t lt;
    int chg = 0;

    if (!name || !*name)
        return -EINVAL;
    r = xcalloc(1, sizeof(*r));
    r->name = xstrdup(name);
    r->labels = cache_labels_pack(cache__get(meta, "labels"));
    r->taints = cache__taints_pack(cache__get(cache__get(obj, "spec"), "taints"));
    r->unschedulable = cJSON_IsTrue(cache__get(cache__get(obj, "spec"), "unschedulable"));
    r->kv_schedulable = cache__streq(cache_label(r->labels, CACHE_SCHEDULABLE_LABEL), "true");
    r->ready = cache__condition(status, "Ready", &r->ready_since);
    hb = cache__str(cache__get(meta, "annotations"), CACHE_HEARTBEAT_ANNOTATION);
    if (!hb || clock_parse(hb, &r->heartbeat) != 0)
        r->heartbeat = -1;
    r->alloc_cpu = cache__qty(alloc, "cpu");
    r->alloc_mem = cache__qty(alloc, "memory");
    r->alloc_pods = cache__qty(alloc, "pods");

    cache__wrlock(c);
    HASH_FIND_STR(c->nodes, name, old);
    if (!old) {
        chg = CACHE_CHG_NEW | CACHE_CHG_SPEC | CACHE_CHG_HEALTH;
    } else {
        HASH_DELETE(hh, c->nodes, old);
        if (old->ready != r->ready || old->ready_since != r->ready_since ||
            old->heartbeat != r->heartbeat)
            chg |= CACHE_CHG_HEALTH;
        lt = cache__taints_len(r->taints);
        if (!cache__packed_eq(old->labels, r->labels) || old->unschedulable != r->unschedulable ||
            lt != cache__taints_len(old->taints) ||
            (lt && memcmp(old->taints, r->taints, lt) != 0) || old->alloc_cpu != r->alloc_cpu ||
            old->alloc_mem != r->alloc_mem || old->alloc_pods != r->alloc_pods)
            chg |= CACHE_CHG_SPEC;
    }
    HASH_ADD_KEYPTR(hh, c->nodes, r->name, strlen(r->name), r);
    if (chg & (CACHE_CHG_NEW | CACHE_CHG_HEALTH))
        c->nodes_stamp = cache__stamp();
    cache_unlock(c);
    cache__node_free(old);
    return chg;
}

int cache_node_del(struct cache *c, const cJSON *obj)
{
    const char *name = cache__str(cache__get(obj, "metadata"), "name");
    struct cache_node *old = NULL;

    if (!name)
        return 0;
    cache__wrlock(c);
    HASH_FIND_STR(c->nodes, name, old);
    if (old) {
        HASH_DELETE(hh, c->nodes, old);
        c->nodes_stamp = cache__stamp();
    }
    cache_unlock(c);
    cache__node_free(old);
    return old != NULL;
}

/* Adds the requests of a list of containers to *cpu and *mem. */
static void cache__containers(const cJSON *list, double *cpu, double *mem)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, (cJSON_IsArray(list) ? list : NULL))
    {
        const cJSON *req = cache__get(cache__get(it, "resources"), "requests");

        *cpu += cache__qty(req, "cpu");
        *mem += cache__qty(req, "memory");
    }
}

/* What a pod requests of its node, as the scheduler counts it: its
 * containers and sidecars (restartable init containers) together, or one
 * of its other init containers (which run one at a time, before them) with
 * the sidecars started before it, whichever is larger; plus the pod
 * overhead. */
static void cache__pod_requests(const cJSON *spec, double *cpu, double *mem)
{
    const cJSON *init = cache__get(spec, "initContainers"), *it;
    double side_cpu = 0, side_mem = 0, init_cpu = 0, init_mem = 0;

    *cpu = *mem = 0;
    cache__containers(cache__get(spec, "containers"), cpu, mem);
    cJSON_ArrayForEach(it, (cJSON_IsArray(init) ? init : NULL))
    {
        const cJSON *req = cache__get(cache__get(it, "resources"), "requests");
        double c1 = cache__qty(req, "cpu"), m1 = cache__qty(req, "memory");

        if (cache__streq(cache__str(it, "restartPolicy"), "Always")) {
            side_cpu += c1;
            side_mem += m1;
        } else {
            if (side_cpu + c1 > init_cpu)
                init_cpu = side_cpu + c1;
            if (side_mem + m1 > init_mem)
                init_mem = side_mem + m1;
        }
    }
    *cpu += side_cpu;
    *mem += side_mem;
    if (init_cpu > *cpu)
        *cpu = init_cpu;
    if (init_mem > *mem)
        *mem = init_mem;
    *cpu += cache__qty(cache__get(spec, "overhead"), "cpu");
    *mem += cache__qty(cache__get(spec, "overhead"), "memory");
}

/* Takes pod p's share back from its node and forgets p. Write lock held. */
static void cache__pod_uncount(struct cache *c, struct cache_pod *p)
{
    struct cache__use *u = p->use;

    HASH_DELETE(hh, c->pods, p);
    u->u.cpu -= p->cpu;
    u->u.mem -= p->mem;
    if (--u->u.pods == 0) {
        HASH_DELETE(hh, c->uses, u);
        cache__unintern(c, u->name);
        free(u);
    }
    free(p->key);
    free(p);
}

int cache_pod_put(struct cache *c, const cJSON *obj)
{
    const cJSON *spec = cache__get(obj, "spec");
    const char *node = cache__str(spec, "nodeName");
    const char *phase = cache__str(cache__get(obj, "status"), "phase");
    struct cache_pod *p = NULL, *old = NULL;
    struct cache__use *u = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return -EINVAL;
    if (node && *node && !cache__streq(phase, "Succeeded") && !cache__streq(phase, "Failed")) {
        p = xcalloc(1, sizeof(*p));
        p->key = key;
        key = NULL;
        cache__pod_requests(spec, &p->cpu, &p->mem);
    }
    cache__wrlock(c);
    HASH_FIND(hh, c->pods, p ? p->key : key, len, old);
    if (old)
        cache__pod_uncount(c, old);
    if (p) {
        HASH_FIND_STR(c->uses, node, u);
        if (!u) {
            u = xcalloc(1, sizeof(*u));
            u->name = cache__intern(c, node);
            HASH_ADD_KEYPTR(hh, c->uses, u->name, strlen(u->name), u);
        }
        p->use = u;
        u->u.cpu += p->cpu;
        u->u.mem += p->mem;
        u->u.pods++;
        HASH_ADD_KEYPTR(hh, c->pods, p->key, len, p);
    }
    cache_unlock(c);
    free(key);
    return 0;
}

int cache_pod_del(struct cache *c, const cJSON *obj)
{
    struct cache_pod *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return 0;
    cache__wrlock(c);
    HASH_FIND(hh, c->pods, key, len, old);
    if (old)
        cache__pod_uncount(c, old);
    cache_unlock(c);
    free(key);
    return old != NULL;
}

/* ---- policies --------------------------------------------------------- */

static void cache__ns_parse(struct cache *c, const char *ns);

int cache_policy_put(struct cache *c, const cJSON *obj)
{
    const cJSON *meta = cache__get(obj, "metadata");
    const cJSON *status = cache__get(obj, "status");
    struct cache_policy *r, *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);
    int chg = 0;

    if (!key)
        return -EINVAL;
    r = xcalloc(1, sizeof(*r));
    CACHE__SET_KEY(r, key, len);
    r->uid = xstrdup(cache__str(meta, "uid") ? cache__str(meta, "uid") : "");
    r->generation = cache__generation(meta);
    r->status = cJSON_IsObject(status) ? cJSON_Duplicate(status, 1) : NULL;

    cache__wrlock(c);
    HASH_FIND(hh, c->policies, key, len, old);
    if (old && strcmp(old->uid, r->uid) == 0 && old->generation == r->generation &&
        r->generation > 0) {
        /* Same spec (status updates do not bump the generation): keep the
         * parse instead of validating again, and swap the record in under
         * this same lock. Unlocked between the two, readers would meet the
         * old record valid with its parse moved out (stormLimit 0, an empty
         * selector): the soak's "stormLimit allows (0)" holds. */
        r->pol = old->pol;
        memset(&old->pol, 0, sizeof(old->pol));
        r->valid = old->valid;
        r->error = old->error;
        old->error = NULL;
        goto store;
    }
    cache_unlock(c);
    {
        char *err = NULL;

        r->valid = policy_from_json(obj, &r->pol, &err) == 0;
        r->error = r->valid ? NULL : (err ? err : xstrdup("spec: invalid"));
        if (r->valid)
            free(err);
    }

    cache__wrlock(c);
    HASH_FIND(hh, c->policies, key, len, old);
store:
    if (!old || strcmp(old->uid, r->uid) != 0) {
        chg = CACHE_CHG_NEW | CACHE_CHG_SPEC | CACHE_CHG_STATUS;
    } else {
        if (old->generation != r->generation || old->valid != r->valid ||
            !cache__streq(old->error, r->error))
            chg |= CACHE_CHG_SPEC;
        if (!old->status != !r->status || (r->status && !cJSON_Compare(old->status, r->status, 1)))
            chg |= CACHE_CHG_STATUS;
    }
    CACHE__STORE(c, policies, old, r, len);
    /* a spec the generation does not tell apart (0, as objects made
     * without an API server carry) may have changed unseen */
    if ((chg & (CACHE_CHG_NEW | CACHE_CHG_SPEC)) || r->generation <= 0)
        cache__ns(c, r->ns)->policy_stamp = cache__stamp();
    /* the namespace's pool is worth parsing now (issue 12) */
    cache__ns_parse(c, r->ns);
    cache_unlock(c);
    cache__policy_free(old);
    return chg;
}

int cache_policy_del(struct cache *c, const cJSON *obj)
{
    struct cache_policy *old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return 0;
    cache__wrlock(c);
    HASH_FIND(hh, c->policies, key, len, old);
    if (old) {
        CACHE__REMOVE(c, policies, old);
        cache__ns(c, old->ns)->policy_stamp = cache__stamp();
    }
    cache_unlock(c);
    free(key);
    cache__policy_free(old);
    return old != NULL;
}

/* ---- pool members ----------------------------------------------------- */

void cache_versions(struct cache *c, const char *ns, struct cache_versions *out)
{
    struct cache_ns *n = NULL;

    HASH_FIND_STR(c->nss, ns, n);
    out->vm_changes = n ? n->vm_changes : 0;
    /* a namespace never seen has had no policy: 0 is no stamp */
    out->policies = n ? n->policy_stamp : 0;
    out->nodes = c->nodes_stamp;
}

uint64_t cache_pool_version(struct cache *c, const char *ns)
{
    struct cache_ns *n = NULL;

    HASH_FIND_STR(c->nss, ns, n);
    return n ? n->pool_version : 0;
}

static int cache__member_data_eq(const struct cache_member *a, const struct cache_member *b)
{
    if (a->nitems != b->nitems || a->has_res != b->has_res || a->has_features != b->has_features ||
        memcmp(a->res, b->res, sizeof(a->res)) != 0 || a->tmpl_len != b->tmpl_len ||
        a->tmpl_zlen != b->tmpl_zlen ||
        (a->tmpl_zlen && memcmp(a->tmpl_z, b->tmpl_z, a->tmpl_zlen) != 0))
        return 0;
    /* interned: equal strings are the same pointer */
    for (uint32_t i = 0; i < 2 * a->nitems; i++)
        if (a->items[i] != b->items[i])
            return 0;
    return 1;
}

/* Templates are deflated against this dictionary: the text every
 * KubeVirt VirtualMachine repeats, so that a 1 KB template keeps about a
 * fifth of its size. Changing it only changes how well new records pack. */
static const char cache__dict[] =
    "{\"name\":\"cloudinitdisk\",\"cloudInitNoCloud\":{\"userData\":\"#cloud-config\\n\"}}"
    "\"dataVolumeTemplates\":[{\"metadata\":{\"name\":\"\"},\"spec\":{\"storage\":{"
    "\"resources\":{\"requests\":{\"storage\":\"\"}}},\"source\":{\"registry\":{\"url\":"
    "\"docker://\"}}}}]\"resources\":{\"requests\":{\"memory\":\"\",\"cpu\":\"\"}}"
    "{\"os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}\","
    "\"kvrecover.io/resources\":\"{cpu: 2, memory: 4Gi, disk: 20Gi}\"}},\"spec\":{"
    "\"domain\":{\"cpu\":{\"cores\":2},\"memory\":{\"guest\":\"4Gi\"},\"devices\":{"
    "\"disks\":[{\"name\":\"rootdisk\",\"disk\":{\"bus\":\"virtio\"}}],\"interfaces\":[{"
    "\"name\":\"default\",\"masquerade\":{}}]}},\"networks\":[{\"name\":\"default\","
    "\"pod\":{}}],\"volumes\":[{\"name\":\"rootdisk\",\"containerDisk\":{\"image\":"
    "\"quay.io/containerdisks/ubuntu:20.04\"}}]}}}}"
    "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\",\"metadata\":{"
    "\"name\":\"vm-\",\"labels\":{\"app\":\"\"}},\"spec\":{\"runStrategy\":\"Always\","
    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"\"},\"annotations\":{"
    "\"kvrecover.io/features\":";

/* text deflated against the dictionary into *z (owned), *zlen and *len. */
static void cache__deflate(const char *text, unsigned char **zout, uint32_t *zlen, uint32_t *len)
{
    z_stream z;
    uLong n = (uLong)strlen(text), bound;
    unsigned char *out;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    deflateSetDictionary(&z, (const Bytef *)cache__dict, (uInt)(sizeof(cache__dict) - 1));
    bound = deflateBound(&z, n);
    out = xmalloc(bound);
    z.next_in = (Bytef *)(uintptr_t)text;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort(); /* cannot happen with deflateBound() room */
    *len = (uint32_t)n;
    *zlen = (uint32_t)z.total_out;
    *zout = xrealloc(out, *zlen ? *zlen : 1);
    deflateEnd(&z);
}

/* What cache__deflate() made, as a new string (the caller frees), or NULL
 * when it does not inflate to len bytes. */
static char *cache__inflate(const unsigned char *zin, uint32_t zlen, uint32_t len)
{
    z_stream z;
    char *out;
    int rc;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        abort();
    inflateSetDictionary(&z, (const Bytef *)cache__dict, (uInt)(sizeof(cache__dict) - 1));
    out = xmalloc((size_t)len + 1);
    z.next_in = (Bytef *)(uintptr_t)zin;
    z.avail_in = zlen;
    z.next_out = (Bytef *)out;
    z.avail_out = len;
    rc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.total_out != len) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

char *cache_member_template(const struct cache_member *m)
{
    return m->tmpl_z ? cache__inflate(m->tmpl_z, m->tmpl_zlen, m->tmpl_len) : NULL;
}

int cache_member_features(const struct cache_member *m, struct features *out)
{
    memset(out, 0, sizeof(*out));
    if (m->nitems) {
        out->items = xcalloc(m->nitems, sizeof(*out->items));
        for (uint32_t i = 0; i < m->nitems; i++) {
            out->items[i].category = xstrdup(m->items[2 * i]);
            out->items[i].value = xstrdup(m->items[2 * i + 1]);
        }
        out->n = out->cap = m->nitems;
    }
    memcpy(out->res, m->res, sizeof(out->res));
    out->has_res = m->has_res;
    out->has_features = m->has_features;
    return 0;
}

/* Bytes of the kvrecover.io/capture-digest annotation: capture writes 16
 * hex digits; anything much longer is not its. */
#define CACHE__MAX_DIGEST 64u

/* Whether labels (a mapping or absent) hold only strings within the API
 * server's limits (pool.h), measured without copying them. */
static int cache__labels_fit(const cJSON *labels)
{
    const cJSON *it;

    if (labels && !cJSON_IsObject(labels))
        return 0;
    cJSON_ArrayForEach(it, labels)
    {
        if (!cJSON_IsString(it) || !it->string ||
            strnlen(it->string, POOL_MAX_LABEL_KEY + 1) > POOL_MAX_LABEL_KEY ||
            strnlen(it->valuestring, POOL_MAX_LABEL_VALUE + 1) > POOL_MAX_LABEL_VALUE)
            return 0;
    }
    return 1;
}

/* Parses the pool ConfigMap obj into r (keyed already): what
 * pool_member_from_json() reads, then, only once it accepted the member,
 * the labels and the digest annotation. A refused member keeps its error,
 * and its labels when they are within their caps, so that the policies
 * whose pool selector it matches report it (status.c); nothing else. */
static void cache__member_parse(struct cache *c, struct cache_member *r, const cJSON *obj)
{
    const cJSON *meta = cache__get(obj, "metadata"), *labels = cache__get(meta, "labels");
    const char *digest = cache__str(cache__get(meta, "annotations"), CACHE_DIGEST_ANNOTATION);
    struct pool_member pm;
    char *err = NULL, *inner = NULL;

    if (pool_member_from_json(obj, &pm, &err) != 0) {
        r->error = err ? err : xstrdup("invalid pool member");
        if (cache__labels_fit(labels))
            r->labels = cache_labels_pack(labels);
        return;
    }
    if (text_check_len(digest, CACHE__MAX_DIGEST,
                       "metadata.annotations[" CACHE_DIGEST_ANNOTATION "]", &inner) != 0) {
        char *who = text_name(r->name);

        r->error = xasprintf("ConfigMap %s: %s", who, inner);
        free(who);
        free(inner);
        pool_member_free(&pm);
        r->labels = cache_labels_pack(labels); /* pool_member_from_json() measured them */
        return;
    }
    /* sorted, without duplicates (features.h): kept as interned pairs */
    r->nitems = (uint32_t)pm.features.n;
    r->items = xcalloc(2 * (size_t)r->nitems + 1, sizeof(*r->items));
    for (uint32_t i = 0; i < r->nitems; i++) {
        r->items[2 * i] = cache__intern(c, pm.features.items[i].category);
        r->items[2 * i + 1] = cache__intern(c, pm.features.items[i].value);
    }
    memcpy(r->res, pm.features.res, sizeof(r->res));
    r->has_res = pm.features.has_res;
    r->has_features = pm.features.has_features;
    if (pm.vm_template) {
        char *text = xcjson_print(pm.vm_template);

        cache__deflate(text, &r->tmpl_z, &r->tmpl_zlen, &r->tmpl_len);
        free(text);
        /* computed once here, not at every ranking: SharedDisk */
        replica_shared_disk(pm.vm_template, &r->disk);
    }
    r->labels = cache_labels_pack(labels);
    r->vm = cache_label(r->labels, CACHE_VM_LABEL);
    if (r->vm && !*r->vm)
        r->vm = NULL;
    r->digest = xstrdup(digest);
    pool_member_free(&pm);
}

/*
 * Moves member r, parsed, into one allocation with its key, labels, items
 * and deflated template, and frees r (issue 11: four malloc headers and
 * roundings less per member). The rare strings (disk, digest, error) stay
 * apart. r is in no table yet.
 */
static struct cache_member *cache__member_compact(struct cache_member *r)
{
    /* the items first: an array of pointers, aligned right after the struct */
    const char *src[] = {(const char *)r->items, (const char *)r->tmpl_z, r->key, r->labels};
    const size_t lens[] = {r->items ? (2 * (size_t)r->nitems + 1) * sizeof(*r->items) : 0,
                           r->tmpl_z ? r->tmpl_zlen : 0,
                           strlen(r->ns) + 1 + strlen(r->name) + 1, /* "ns\0name\0" */
                           cache__packed_len(r->labels)};
    char *out[4];
    struct cache_member *n = cache__block(sizeof(*n), 4, src, lens, out);

    *n = *r;
    n->items = (const char **)(void *)out[0];
    n->tmpl_z = (unsigned char *)out[1];
    CACHE__SET_KEY(n, out[2], lens[2]);
    n->labels = out[3];
    if (r->vm && r->labels)
        n->vm = n->labels + (r->vm - r->labels);
    free(r->items);
    free(r->tmpl_z);
    free(r->key);
    free(r->labels);
    free(r);
    return n;
}

/* The caps of the fields a cache__raw keeps (pool.h, features.h). */
static const struct {
    const char *key;
    size_t max;
} cache__raw_caps[] = {
    {"vm", POOL_MAX_VM_TEXT},
    {"features", FEATURES_MAX_TEXT},
    {"resources", FEATURES_MAX_RES_TEXT},
};

/* Copies field k of from into to: a string as it is, anything else as
 * false (which the parser refuses as it would have refused the value,
 * "must be a string"), nothing when absent or null. */
static void cache__raw_copy(cJSON *to, const cJSON *from, const char *k, int any)
{
    const cJSON *v = cache__get(from, k);

    if (!v || cJSON_IsNull(v))
        return;
    if (cJSON_IsString(v) || (any && cJSON_IsObject(v))) {
        cJSON *d = cJSON_Duplicate(v, 1);

        if (!d)
            xalloc_oom(0); /* only without xalloc_init() */
        cJSON_AddItemToObject(to, k, d);
    } else
        cJSON_AddItemToObject(to, k, cJSON_CreateFalse());
}

/* The pool ConfigMap obj kept unparsed (see struct cache__raw), keyed. */
static struct cache__raw *cache__raw_new(const cJSON *obj, char *key, size_t len)
{
    const cJSON *meta = cache__get(obj, "metadata"), *data = cache__get(obj, "data");
    struct cache__raw *r = xcalloc(1, sizeof(*r));
    cJSON *keep, *km, *kd;
    char *text, *inner = NULL;

    CACHE__SET_KEY(r, key, len);
    for (size_t i = 0; i < sizeof(cache__raw_caps) / sizeof(cache__raw_caps[0]); i++) {
        char where[32];

        snprintf(where, sizeof(where), "data.%s", cache__raw_caps[i].key);
        if (text_check_len(cache__str(data, cache__raw_caps[i].key), cache__raw_caps[i].max, where,
                           &inner) != 0) {
            char *who = text_name(r->name);

            r->error = xasprintf("ConfigMap %s: %s", who, inner);
            free(who);
            free(inner);
            if (cache__labels_fit(cache__get(meta, "labels")))
                r->labels = cache_labels_pack(cache__get(meta, "labels"));
            return r;
        }
    }
    keep = cJSON_CreateObject();
    km = cJSON_AddObjectToObject(keep, "metadata");
    cache__raw_copy(km, meta, "name", 0);
    cache__raw_copy(km, meta, "namespace", 0);
    cache__raw_copy(km, meta, "labels", 1);
    {
        const char *d = cache__str(cache__get(meta, "annotations"), CACHE_DIGEST_ANNOTATION);

        if (d) {
            /* kept whole up to one byte past the cap: the error says "too large" */
            size_t n = strnlen(d, CACHE__MAX_DIGEST + 1);
            char *cut = xstrndup(d, n);

            cJSON_AddStringToObject(cJSON_AddObjectToObject(km, "annotations"),
                                    CACHE_DIGEST_ANNOTATION, cut);
            free(cut);
        }
    }
    kd = cJSON_AddObjectToObject(keep, "data");
    for (size_t i = 0; i < sizeof(cache__raw_caps) / sizeof(cache__raw_caps[0]); i++)
        cache__raw_copy(kd, data, cache__raw_caps[i].key, 0);
    text = xcjson_print(keep);
    cJSON_Delete(keep);
    cache__deflate(text, &r->z, &r->zlen, &r->len);
    free(text);
    return r;
}

/* The member raw keeps, parsed now (a new record, keyed with a copy of its
 * key). */
static struct cache_member *cache__raw_parse(struct cache *c, const struct cache__raw *raw,
                                             size_t len)
{
    struct cache_member *r = xcalloc(1, sizeof(*r));
    char *text, *key = xmalloc(len + 1);
    cJSON *obj;

    memcpy(key, raw->key, len + 1);
    CACHE__SET_KEY(r, key, len);
    if (raw->error) {
        /* as cache__member_parse() keeps a refused member */
        r->error = xstrdup(raw->error);
        if (raw->labels) {
            size_t n = cache__packed_len(raw->labels);

            r->labels = memcpy(xmalloc(n), raw->labels, n);
        }
        return cache__member_compact(r);
    }
    text = cache__inflate(raw->z, raw->zlen, raw->len);
    obj = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!obj)
        xalloc_oom(raw->len); /* it is what this cache printed */
    cache__member_parse(c, r, obj);
    cJSON_Delete(obj);
    return cache__member_compact(r);
}

/* Whether namespace ns has a policy. Lock held. */
static int cache__has_policy(struct cache *c, const char *ns)
{
    struct cache_ns *n = NULL;

    HASH_FIND_STR(c->nss, ns, n);
    return n && n->policies;
}

/* Stores member r (keyed) in place of any record of its key, parsed or not.
 * Returns the CACHE_CHG_ flags. Write lock held; *gone is what the caller
 * frees after unlocking. */
static int cache__member_store(struct cache *c, struct cache_member *r, size_t len,
                               struct cache_member **gone)
{
    struct cache_member *old = NULL;
    struct cache__raw *raw = NULL;
    int chg = 0;

    HASH_FIND(hh, c->raws, r->key, len, raw);
    if (raw) {
        CACHE__REMOVE(c, raws, raw);
        cache__raw_free(raw);
    }
    HASH_FIND(hh, c->members, r->key, len, old);
    if (!old) {
        chg = CACHE_CHG_NEW | CACHE_CHG_LABELS | CACHE_CHG_SPEC;
    } else {
        if (!cache__packed_eq(old->labels, r->labels))
            chg |= CACHE_CHG_LABELS;
        if (!cache__member_data_eq(old, r) || !cache__streq(old->error, r->error) ||
            !cache__streq(old->disk, r->disk) || !cache__streq(old->digest, r->digest))
            chg |= CACHE_CHG_SPEC;
    }
    CACHE__STORE(c, members, old, r, len);
    if (chg)
        cache__ns(c, r->ns)->pool_version++;
    *gone = old;
    return chg;
}

/* Parses every member of namespace ns kept unparsed, now that it has a
 * policy. Write lock held. */
static void cache__ns_parse(struct cache *c, const char *ns)
{
    struct cache_ns *n = NULL;
    struct cache__raw *raw, *tmp;

    HASH_FIND_STR(c->nss, ns, n);
    if (!n)
        return;
    DL_FOREACH_SAFE2(n->raws, raw, tmp, ns_next)
    {
        size_t len = strlen(raw->ns) + 1 + strlen(raw->name);
        struct cache_member *r = cache__raw_parse(c, raw, len), *gone = NULL;

        cache__member_store(c, r, len, &gone); /* frees raw */
        cache__member_free(c, gone);
    }
}

int cache_member_put(struct cache *c, const cJSON *obj)
{
    struct cache_member *r = NULL, *old = NULL;
    struct cache__raw *raw = NULL, *raw_old = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);
    int chg = 0, parse;

    if (!key)
        return -EINVAL;
    /* Only a namespace with a policy pays for parsing its pool (issue 12). */
    cache_rdlock(c);
    parse = cache__has_policy(c, key);
    cache_unlock(c);
    if (parse) {
        r = xcalloc(1, sizeof(*r));
        CACHE__SET_KEY(r, key, len);
        cache__member_parse(c, r, obj);
        r = cache__member_compact(r);
        key = r->key;
    } else {
        raw = cache__raw_new(obj, key, len);
    }

    cache__wrlock(c);
    if (raw && cache__has_policy(c, key)) {
        /* a policy arrived meanwhile: its parse of the namespace missed this */
        r = cache__raw_parse(c, raw, len);
        cache__raw_free(raw);
        raw = NULL;
    }
    if (r) {
        chg = cache__member_store(c, r, len, &old);
    } else {
        /* no policy (any more): the member goes back to waiting for one */
        HASH_FIND(hh, c->members, key, len, old);
        if (old) {
            CACHE__REMOVE(c, members, old);
            cache__ns(c, old->ns)->pool_version++;
            chg = CACHE_CHG_SPEC;
        }
        HASH_FIND(hh, c->raws, key, len, raw_old);
        CACHE__STORE(c, raws, raw_old, raw, len);
    }
    cache_unlock(c);
    cache__member_free(c, old);
    cache__raw_free(raw_old);
    return chg;
}

int cache_member_del(struct cache *c, const cJSON *obj)
{
    struct cache_member *old = NULL;
    struct cache__raw *raw = NULL;
    size_t len;
    char *key = cache__obj_key(obj, &len);

    if (!key)
        return 0;
    cache__wrlock(c);
    HASH_FIND(hh, c->members, key, len, old);
    if (old) {
        CACHE__REMOVE(c, members, old);
        cache__ns(c, old->ns)->pool_version++;
    }
    HASH_FIND(hh, c->raws, key, len, raw);
    if (raw)
        CACHE__REMOVE(c, raws, raw);
    cache_unlock(c);
    free(key);
    cache__member_free(c, old);
    cache__raw_free(raw);
    return old != NULL;
}

/* ---- lookups and iteration -------------------------------------------- */

#define CACHE__FIND(head, type, ns, name)                                                          \
    do {                                                                                           \
        size_t len__;                                                                              \
        char *k__ = cache_key((ns), (name), &len__);                                               \
        type *r__ = NULL;                                                                          \
        HASH_FIND(hh, (head), k__, len__, r__);                                                    \
        free(k__);                                                                                 \
        return r__;                                                                                \
    } while (0)

struct cache_vmi *cache_vmi_find(struct cache *c, const char *ns, const char *name)
{
    CACHE__FIND(c->vmis, struct cache_vmi, ns, name);
}

struct cache_vm *cache_vm_find(struct cache *c, const char *ns, const char *name)
{
    CACHE__FIND(c->vms, struct cache_vm, ns, name);
}

struct cache_policy *cache_policy_find(struct cache *c, const char *ns, const char *name)
{
    CACHE__FIND(c->policies, struct cache_policy, ns, name);
}

struct cache_member *cache_member_find(struct cache *c, const char *ns, const char *name)
{
    CACHE__FIND(c->members, struct cache_member, ns, name);
}

struct cache_vm *cache_vm_find_replacement(struct cache *c, const char *failed_uid)
{
    struct cache_replacement *r = NULL;

    if (failed_uid)
        HASH_FIND(hh, c->by_failed_uid, failed_uid, strlen(failed_uid), r);
    return r ? r->vm : NULL;
}

struct cache_vm *cache_vmi_vm(struct cache *c, const struct cache_vmi *vmi)
{
    return cache__vmi_vm(c, vmi);
}

struct cache_vmi *cache_vm_vmi(struct cache *c, const struct cache_vm *vm)
{
    struct cache_vmi *vmi = NULL;

    HASH_FIND(hh, c->vmis, vm->key, strlen(vm->ns) + 1 + strlen(vm->name), vmi);
    return vmi && vmi->owner_uid && strcmp(vmi->owner_uid, vm->uid) == 0 ? vmi : NULL;
}

struct cache_node *cache_node_find(struct cache *c, const char *name)
{
    struct cache_node *n = NULL;

    if (name)
        HASH_FIND_STR(c->nodes, name, n);
    return n;
}

struct cache_node *cache_node_first(struct cache *c)
{
    return c->nodes;
}

struct cache_node *cache_node_next(struct cache_node *n)
{
    return n->hh.next;
}

struct cache_node_use cache_node_use(struct cache *c, const char *name)
{
    struct cache__use *u = NULL;
    struct cache_node_use zero = {0};

    if (name)
        HASH_FIND_STR(c->uses, name, u);
    return u ? u->u : zero;
}

/* The first record of a walk: of all (ns NULL: the table, in its order) or
 * of namespace ns only (its list, in the same order). Read lock held. */
#define CACHE__FIRST(c, field, ns)                                                                 \
    do {                                                                                           \
        struct cache_ns *n__ = NULL;                                                               \
        if (!(ns))                                                                                 \
            return (c)->field;                                                                     \
        HASH_FIND_STR((c)->nss, (ns), n__);                                                        \
        return n__ ? n__->field : NULL;                                                            \
    } while (0)

/* The record after r in the same walk. */
#define CACHE__NEXT(type, r, ns) return (ns) ? (r)->ns_next : (type *)(r)->hh.next

struct cache_vmi *cache_vmi_first(struct cache *c, const char *ns)
{
    CACHE__FIRST(c, vmis, ns);
}

struct cache_vmi *cache_vmi_next(struct cache_vmi *r, const char *ns)
{
    CACHE__NEXT(struct cache_vmi, r, ns);
}

struct cache_vm *cache_vm_first(struct cache *c, const char *ns)
{
    CACHE__FIRST(c, vms, ns);
}

struct cache_vm *cache_vm_next(struct cache_vm *r, const char *ns)
{
    CACHE__NEXT(struct cache_vm, r, ns);
}

struct cache_policy *cache_policy_first(struct cache *c, const char *ns)
{
    CACHE__FIRST(c, policies, ns);
}

struct cache_policy *cache_policy_next(struct cache_policy *r, const char *ns)
{
    CACHE__NEXT(struct cache_policy, r, ns);
}

struct cache_member *cache_member_first(struct cache *c, const char *ns)
{
    CACHE__FIRST(c, members, ns);
}

struct cache_member *cache_member_next(struct cache_member *r, const char *ns)
{
    CACHE__NEXT(struct cache_member, r, ns);
}

/* ---- statistics ------------------------------------------------------- */

static size_t cache__sz(const void *p)
{
    return p ? malloc_usable_size((void *)p) : 0;
}

static size_t cache__table_sz(const UT_hash_table *t)
{
    return t ? sizeof(*t) + t->num_buckets * sizeof(UT_hash_bucket) : 0;
}

void cache_stats(struct cache *c, struct cache_stats *st)
{
    struct cache_vmi *vmi;
    struct cache_vm *vm;
    struct cache_policy *p;
    struct cache_member *m;

    memset(st, 0, sizeof(*st));
    cache_rdlock(c);
    for (vmi = c->vmis; vmi; vmi = vmi->hh.next) {
        st->vmis++;
        st->vmi_bytes += cache__sz(vmi) + cache__sz(vmi->key) + cache__sz(vmi->uid) +
                         cache__sz(vmi->owner_uid) + cache__sz(vmi->labels) +
                         cache__sz(vmi->spec.error);
    }
    st->vmi_bytes += cache__table_sz(c->vmis ? c->vmis->hh.tbl : NULL);
    for (vm = c->vms; vm; vm = vm->hh.next) {
        st->vms++;
        /* the key, uid, resourceVersion and labels are in vm's block */
        st->vm_bytes += cache__sz(vm) + cache__sz(vm->spec.error) + cache__sz(vm->fail_uid) +
                        cache__sz(vm->last_failed_uid) + cache__sz(vm->seen) +
                        (vm->seen ? cache__sz(vm->seen->error) : 0);
        if (vm->inc)
            st->vm_bytes += cache__sz(vm->inc) + cache__sz(vm->inc->replaced_by) +
                            cache__sz(vm->inc->failed_uid) + cache__sz(vm->inc->previous_rs) +
                            cache__sz(vm->inc->policy) + cache__sz(vm->inc->tmpl);
        if (vm->repl)
            st->vm_bytes += cache__sz(vm->repl) + cache__sz(vm->repl->failed_uid) +
                            cache__sz(vm->repl->policy) + cache__sz(vm->repl->replaces) +
                            cache__sz(vm->repl->tmpl) + cache__sz(vm->repl->decided_at);
    }
    st->vm_bytes += cache__table_sz(c->vms ? c->vms->hh.tbl : NULL) +
                    cache__table_sz(c->by_failed_uid ? c->by_failed_uid->hh.tbl : NULL);
    for (p = c->policies; p; p = p->hh.next) {
        char *s = p->status ? cJSON_PrintUnformatted(p->status) : NULL;

        st->policies++;
        /* the parsed spec and the status tree: a rough figure is enough */
        st->policy_bytes += cache__sz(p) + cache__sz(p->key) + cache__sz(p->uid) +
                            cache__sz(p->error) + 4 * (s ? strlen(s) : 0);
        free(s);
    }
    for (m = c->members; m; m = m->hh.next) {
        st->members++;
        st->member_bytes +=
            cache__sz(m) + cache__sz(m->digest) + cache__sz(m->disk) + cache__sz(m->error);
    }
    st->member_bytes += cache__table_sz(c->members ? c->members->hh.tbl : NULL);
    for (struct cache__raw *w = c->raws; w; w = w->hh.next) {
        st->pending++;
        st->pending_bytes += cache__sz(w) + cache__sz(w->key) + cache__sz(w->z) +
                             cache__sz(w->error) + cache__sz(w->labels);
    }
    st->pending_bytes += cache__table_sz(c->raws ? c->raws->hh.tbl : NULL);
    for (struct cache_node *n = c->nodes; n; n = n->hh.next) {
        st->nodes++;
        st->node_bytes +=
            cache__sz(n) + cache__sz(n->name) + cache__sz(n->labels) + cache__sz(n->taints);
    }
    st->node_bytes += cache__table_sz(c->nodes ? c->nodes->hh.tbl : NULL);
    for (struct cache_pod *pd = c->pods; pd; pd = pd->hh.next) {
        st->pods++;
        st->pod_bytes += cache__sz(pd) + cache__sz(pd->key);
    }
    st->pod_bytes += cache__table_sz(c->pods ? c->pods->hh.tbl : NULL);
    for (struct cache__use *u = c->uses; u; u = u->hh.next)
        st->pod_bytes += cache__sz(u);
    st->pod_bytes += cache__table_sz(c->uses ? c->uses->hh.tbl : NULL);
    pthread_mutex_lock(&c->str_lock);
    for (struct cache_str *e = c->strs; e; e = e->hh.next)
        st->shared_bytes += cache__sz(e);
    st->shared_bytes += cache__table_sz(c->strs ? c->strs->hh.tbl : NULL);
    pthread_mutex_unlock(&c->str_lock);
    cache_unlock(c);
}
