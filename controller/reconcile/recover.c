/*
 * recover — ranking indexes, the book of decisions, and the reconcile of a
 * failed VMI. See recover.h.
 *
 * Locks, always taken in this order: the cache's read lock, then a policy
 * index's rwlock, then the book's mutex. No lock is held during API calls:
 * a reconcile copies what it needs out of the cache, unlocks, then writes.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "reconcile/recover.h"
#include "web/metrics.h"

/* ---- small things ----------------------------------------------------- */

static const char *const recover__names[] = {"Recovered", "DryRun", "NoEligibleCandidate"};

const char *recover_result_name(enum recover_result r)
{
    return (unsigned)r <= RECOVER_NO_CANDIDATE ? recover__names[r] : "Unknown";
}

int recover_result_parse(const char *s, enum recover_result *out)
{
    for (int i = 0; s && i <= RECOVER_NO_CANDIDATE; i++)
        if (strcmp(s, recover__names[i]) == 0) {
            *out = (enum recover_result)i;
            return 0;
        }
    return -EINVAL;
}

void recover_decision_free(struct recover_decision *d)
{
    if (!d)
        return;
    free(d->ns);
    free(d->policy);
    free(d->vmi);
    free(d->failed_vm);
    free(d->failed_uid);
    free(d->replacement);
    free(d->tmpl);
    cJSON_Delete(d->ranking);
    memset(d, 0, sizeof(*d));
}

void recover_pick_free(struct recover_pick *p)
{
    if (!p)
        return;
    free(p->best);
    free(p->best_reason);
    for (size_t i = 0; i < p->nsel; i++)
        free(p->sel[i]);
    memset(p, 0, sizeof(*p));
}

/* ---- the book --------------------------------------------------------- */

/* A policy's ranking index: its pool as the similarity engine holds it. */
struct recover_index {
    pthread_rwlock_t lock;
    struct sim_pool *pool; /* NULL until built */
    uint64_t pool_version; /* cache_pool_version() it was built at */
    long generation;       /* the policy's generation it was built for */
    char *uid;             /* the policy's uid it was built for */
};

struct recover_policy {
    UT_hash_handle hh;
    char *key;                                      /* ns, NUL, name */
    size_t keylen;                                  /* uthash key length */
    struct recover_index index;                     /* never freed before the book */
    struct recover_decision recent[RECOVER_RECENT]; /* ring, newest at head-1 */
    size_t nrecent;                                 /* entries in use */
    size_t head;                                    /* next slot to write */
    size_t counts[RECOVER_NO_CANDIDATE + 1];        /* decisions by result */
};

/* A handled VMI uid. */
struct recover_handled {
    UT_hash_handle hh;
    char *uid;
    enum recover_result result;
};

struct recover_book {
    pthread_mutex_t lock;
    struct recover_policy *policies;
    struct recover_handled *handled;
};

struct recover_book *recover_book_new(void)
{
    struct recover_book *b = xcalloc(1, sizeof(*b));

    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void recover_book_free(struct recover_book *b)
{
    struct recover_policy *p, *ptmp;
    struct recover_handled *h, *htmp;

    if (!b)
        return;
    HASH_ITER(hh, b->policies, p, ptmp)
    {
        HASH_DELETE(hh, b->policies, p);
        for (size_t i = 0; i < RECOVER_RECENT; i++)
            recover_decision_free(&p->recent[i]);
        sim_pool_free(p->index.pool);
        free(p->index.uid);
        pthread_rwlock_destroy(&p->index.lock);
        free(p->key);
        free(p);
    }
    HASH_ITER(hh, b->handled, h, htmp)
    {
        HASH_DELETE(hh, b->handled, h);
        free(h->uid);
        free(h);
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* The policy's entry, created when absent. Book lock held. */
static struct recover_policy *recover__policy(struct recover_book *b, const char *ns,
                                              const char *name)
{
    struct recover_policy *p = NULL;
    size_t len;
    char *key = cache_key(ns, name, &len);

    HASH_FIND(hh, b->policies, key, len, p);
    if (p) {
        free(key);
        return p;
    }
    p = xcalloc(1, sizeof(*p));
    p->key = key;
    p->keylen = len;
    pthread_rwlock_init(&p->index.lock, NULL);
    HASH_ADD_KEYPTR(hh, b->policies, p->key, p->keylen, p);
    return p;
}

int recover_book_handled(struct recover_book *b, const char *uid)
{
    struct recover_handled *h = NULL;

    pthread_mutex_lock(&b->lock);
    HASH_FIND_STR(b->handled, uid, h);
    pthread_mutex_unlock(&b->lock);
    return h != NULL;
}

/* Adds d to the policy's ring and the handled set, unless its uid is known
 * with the same result. Book lock held. Returns 1 when added. */
static int recover__add_locked(struct recover_book *b, struct recover_decision *d)
{
    struct recover_policy *p = recover__policy(b, d->ns, d->policy);
    struct recover_handled *h = NULL;

    HASH_FIND_STR(b->handled, d->failed_uid, h);
    if (h && h->result == d->result) {
        /* Same decision seen again (a seed, or a replacement found in the
         * cache after this process created it): keep a ranking it brings. */
        for (size_t i = 0; i < p->nrecent; i++) {
            struct recover_decision *r = &p->recent[i];
            if (r->failed_uid && strcmp(r->failed_uid, d->failed_uid) == 0 && !r->ranking) {
                r->ranking = d->ranking;
                d->ranking = NULL;
            }
        }
        recover_decision_free(d);
        return 0;
    }
    if (!h) {
        h = xcalloc(1, sizeof(*h));
        h->uid = xstrdup(d->failed_uid);
        HASH_ADD_KEYPTR(hh, b->handled, h->uid, strlen(h->uid), h);
    } else if (p->counts[h->result]) {
        p->counts[h->result]--;
    }
    h->result = d->result;
    p->counts[d->result]++;
    /* drop an older entry for the same uid from the ring */
    for (size_t i = 0; i < RECOVER_RECENT; i++) {
        struct recover_decision *r = &p->recent[i];
        if (r->failed_uid && strcmp(r->failed_uid, d->failed_uid) == 0) {
            recover_decision_free(r);
            p->nrecent--;
        }
    }
    if (p->recent[p->head].failed_uid)
        p->nrecent--;
    recover_decision_free(&p->recent[p->head]);
    p->recent[p->head] = *d;
    memset(d, 0, sizeof(*d));
    p->head = (p->head + 1) % RECOVER_RECENT;
    p->nrecent++;
    return 1;
}

void recover_book_add(struct recover_book *b, struct recover_decision *d)
{
    pthread_mutex_lock(&b->lock);
    recover__add_locked(b, d);
    pthread_mutex_unlock(&b->lock);
}

void recover_book_seed(struct recover_book *b, const char *ns, const char *policy,
                       const cJSON *status)
{
    const cJSON *recent =
        cJSON_IsObject(status) ? cJSON_GetObjectItemCaseSensitive(status, "recent") : NULL;
    const cJSON *it;

    pthread_mutex_lock(&b->lock);
    cJSON_ArrayForEach(it, (cJSON_IsArray(recent) ? recent : NULL))
    {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(it, "failedUID");
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(it, "decision");
        const cJSON *v;
        struct recover_handled *h = NULL;
        struct recover_decision d = {0};

        if (!cJSON_IsString(uid) || !cJSON_IsString(dec) ||
            recover_result_parse(dec->valuestring, &d.result) != 0)
            continue;
        HASH_FIND_STR(b->handled, uid->valuestring, h);
        if (h)
            continue;
        d.ns = xstrdup(ns);
        d.policy = xstrdup(policy);
        d.failed_uid = xstrdup(uid->valuestring);
        v = cJSON_GetObjectItemCaseSensitive(it, "failedVM");
        d.failed_vm = xstrdup(cJSON_IsString(v) ? v->valuestring : "");
        d.vmi = xstrdup(d.failed_vm);
        v = cJSON_GetObjectItemCaseSensitive(it, "replacement");
        d.replacement = cJSON_IsString(v) && *v->valuestring ? xstrdup(v->valuestring) : NULL;
        v = cJSON_GetObjectItemCaseSensitive(it, "template");
        d.tmpl = cJSON_IsString(v) && *v->valuestring ? xstrdup(v->valuestring) : NULL;
        v = cJSON_GetObjectItemCaseSensitive(it, "score");
        d.score = cJSON_IsNumber(v) ? v->valuedouble : 0;
        v = cJSON_GetObjectItemCaseSensitive(it, "time");
        if (!cJSON_IsString(v) || clock_parse(v->valuestring, &d.when) != 0)
            d.when = 0;
        recover__add_locked(b, &d);
    }
    pthread_mutex_unlock(&b->lock);
}

static int recover__newer(const void *a, const void *b)
{
    const struct recover_decision *x = a, *y = b;

    if (x->when != y->when)
        return x->when > y->when ? -1 : 1;
    return strcmp(x->failed_uid ? x->failed_uid : "", y->failed_uid ? y->failed_uid : "");
}

static void recover__copy(struct recover_decision *dst, const struct recover_decision *src,
                          int with_ranking)
{
    dst->ns = xstrdup(src->ns);
    dst->policy = xstrdup(src->policy);
    dst->vmi = xstrdup(src->vmi);
    dst->failed_vm = xstrdup(src->failed_vm);
    dst->failed_uid = xstrdup(src->failed_uid);
    dst->replacement = xstrdup(src->replacement);
    dst->tmpl = xstrdup(src->tmpl);
    dst->score = src->score;
    dst->when = src->when;
    dst->result = src->result;
    dst->ranking = with_ranking && src->ranking ? cJSON_Duplicate(src->ranking, 1) : NULL;
}

size_t recover_book_recent(struct recover_book *b, const char *ns, const char *policy, size_t max,
                           int with_ranking, struct recover_decision **out)
{
    struct recover_policy *p;
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&b->lock);
    p = recover__policy(b, ns, policy);
    if (p->nrecent) {
        *out = xcalloc(p->nrecent, sizeof(**out));
        for (size_t i = 0; i < RECOVER_RECENT; i++)
            if (p->recent[i].failed_uid)
                recover__copy(&(*out)[n++], &p->recent[i], with_ranking);
    }
    pthread_mutex_unlock(&b->lock);
    if (n > 1)
        qsort(*out, n, sizeof(**out), recover__newer);
    while (n > max)
        recover_decision_free(&(*out)[--n]);
    return n;
}

size_t recover_book_count(struct recover_book *b, const char *ns, const char *policy,
                          enum recover_result r)
{
    size_t n;

    pthread_mutex_lock(&b->lock);
    n = recover__policy(b, ns, policy)->counts[r];
    pthread_mutex_unlock(&b->lock);
    return n;
}

void recover_book_forget(struct recover_book *b, const char *ns, const char *policy)
{
    struct recover_policy *p;

    pthread_mutex_lock(&b->lock);
    p = recover__policy(b, ns, policy);
    for (size_t i = 0; i < RECOVER_RECENT; i++)
        recover_decision_free(&p->recent[i]);
    p->nrecent = p->head = 0;
    memset(p->counts, 0, sizeof(p->counts));
    pthread_mutex_unlock(&b->lock);
    /* The index stays allocated (a ranking may be using it): only its pool
     * goes, and a policy created again under the name rebuilds it. */
    pthread_rwlock_wrlock(&p->index.lock);
    sim_pool_free(p->index.pool);
    p->index.pool = NULL;
    free(p->index.uid);
    p->index.uid = NULL;
    pthread_rwlock_unlock(&p->index.lock);
}

/* ---- ranking ---------------------------------------------------------- */

struct recover_ranker {
    struct sim_ranker *r;
    struct sim_result res;
};

struct recover_ranker *recover_ranker_new(void)
{
    struct recover_ranker *rk = xcalloc(1, sizeof(*rk));

    rk->r = sim_ranker_new();
    return rk;
}

void recover_ranker_free(struct recover_ranker *rk)
{
    if (!rk)
        return;
    sim_ranker_free(rk->r);
    sim_result_free(&rk->res);
    free(rk);
}

struct cache_policy *recover_policy_for(struct cache *c, const char *ns, const char *labels,
                                        int *invalid)
{
    struct cache_policy *best = NULL;

    if (invalid)
        *invalid = 0;
    for (struct cache_policy *p = cache_policy_first(c, ns); p; p = cache_policy_next(p, ns)) {
        if (!p->valid) {
            /* An invalid policy's selector is unknown: it may match. */
            if (invalid)
                *invalid = 1;
            continue;
        }
        if (!cache_selector_matches(&p->pol.selector, labels))
            continue;
        if (!best || strcmp(p->name, best->name) < 0)
            best = p;
    }
    return best;
}

/* The captured entry of vm_name in p's pool: labelled for it, else named so. */
static struct cache_member *recover__captured(struct cache *c, const struct cache_policy *p,
                                              const char *vm_name)
{
    struct cache_member *named = NULL;

    for (struct cache_member *m = cache_member_first(c, p->ns); m;
         m = cache_member_next(m, p->ns)) {
        if (m->error || !cache_selector_matches(&p->pol.pool_selector, m->labels))
            continue;
        if (m->vm && strcmp(m->vm, vm_name) == 0)
            return m;
        if (!m->vm && strcmp(m->name, vm_name) == 0)
            named = m;
    }
    return named;
}

int recover_vm_features(struct cache *c, const struct cache_policy *p, const char *vm_name,
                        const struct cache_vmi *vmi, struct features *out, const char **alias,
                        char **err)
{
    struct cache_vm *vm = cache_vm_find(c, p->ns, vm_name);
    struct cache_member *m;

    if (alias)
        *alias = NULL;
    if (vmi && (vmi->spec.features || vmi->spec.error))
        return cache_spec_features(&vmi->spec, out, err);
    if (vm && (vm->spec.features || vm->spec.error))
        return cache_spec_features(&vm->spec, out, err);
    m = recover__captured(c, p, vm_name);
    if (m && m->has_features) {
        if (alias)
            *alias = m->name;
        *err = NULL;
        return cache_member_features(m, out);
    }
    /* No features anywhere: what the VMI (or VM) says about its size. */
    if (vmi)
        return cache_spec_features(&vmi->spec, out, err);
    if (vm)
        return cache_spec_features(&vm->spec, out, err);
    memset(out, 0, sizeof(*out));
    *err = NULL;
    return 0;
}

/* Brings the index up to date. Index write lock held, cache read lock held. */
static void recover__rebuild(struct recover_index *ix, struct cache *c,
                             const struct cache_policy *p, uint64_t version)
{
    if (!ix->pool)
        ix->pool = sim_pool_new();
    else
        sim_pool_clear(ix->pool);
    for (struct cache_member *m = cache_member_first(c, p->ns); m;
         m = cache_member_next(m, p->ns)) {
        if (m->error || !cache_selector_matches(&p->pol.pool_selector, m->labels))
            continue;
        struct features f;

        cache_member_features(m, &f);
        if (sim_pool_add(ix->pool, m->name, m->vm, &f, m->tmpl_z != NULL, NULL) != 0)
            log_warn("pool member %s/%s left out of policy %s's index", m->ns, m->name, p->name);
        features_free(&f);
    }
    sim_pool_finish(ix->pool);
    ix->pool_version = version;
    ix->generation = p->generation;
    free(ix->uid);
    ix->uid = xstrdup(p->uid);
}

static int recover__stale(const struct recover_index *ix, const struct cache_policy *p,
                          uint64_t version)
{
    return !ix->pool || ix->pool_version != version || ix->generation != p->generation ||
           !ix->uid || strcmp(ix->uid, p->uid) != 0;
}

int recover_rank(struct recover_book *b, struct recover_ranker *rk, struct cache *c,
                 const struct cache_policy *p, const struct sim_query *q, struct recover_pick *pick,
                 cJSON **ranking)
{
    struct recover_index *ix;
    uint64_t version = cache_pool_version(c, p->ns);
    int rc;

    memset(pick, 0, sizeof(*pick));
    if (ranking)
        *ranking = NULL;
    pthread_mutex_lock(&b->lock);
    ix = &recover__policy(b, p->ns, p->name)->index;
    pthread_mutex_unlock(&b->lock);

    pthread_rwlock_rdlock(&ix->lock);
    while (recover__stale(ix, p, version)) {
        pthread_rwlock_unlock(&ix->lock);
        pthread_rwlock_wrlock(&ix->lock);
        if (recover__stale(ix, p, version))
            recover__rebuild(ix, c, p, version);
        pthread_rwlock_unlock(&ix->lock);
        pthread_rwlock_rdlock(&ix->lock);
    }
    rc = sim_rank(rk->r, ix->pool, &p->pol, q, &rk->res);
    if (rc)
        goto out;
    if (rk->res.n) {
        const struct sim_candidate *top = &rk->res.cand[0];

        pick->best = xstrdup(sim_pool_name(ix->pool, top->member));
        pick->best_score = top->score;
        pick->best_reason = sim_candidate_detail(top, &p->pol);
    }
    for (size_t i = 0; i < rk->res.n && pick->nsel < RECOVER_MAX_TRIES; i++) {
        const struct sim_candidate *cd = &rk->res.cand[i];

        if (cd->reason != SIM_ELIGIBLE)
            continue;
        pick->sel[pick->nsel] = xstrdup(sim_pool_name(ix->pool, cd->member));
        pick->sel_score[pick->nsel++] = cd->score;
    }
    if (ranking) {
        /* Only the candidates shown: explaining a 1,000-member pool in
         * full would cost more than ranking it. */
        struct sim_result cut = rk->res;

        if (cut.n > RECOVER_RANKING_MAX)
            cut.n = RECOVER_RANKING_MAX;
        *ranking = sim_result_json(rk->r, ix->pool, &p->pol, q, &cut, SIM_JSON_DETAIL);
    }
out:
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

/* ---- the replacement -------------------------------------------------- */

char *recover_replacement_name(const char *vm, const char *uid)
{
    uint64_t h = hash_fnv_str(HASH_FNV_INIT, uid);
    char base[53];
    size_t n = 0;

    for (const char *s = vm; *s && n < sizeof(base) - 1; s++) {
        char ch = *s;

        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
            ch = '-';
        if (ch == '-' && n == 0)
            continue;
        base[n++] = ch;
    }
    while (n > 0 && base[n - 1] == '-')
        n--;
    base[n] = '\0';
    /* 40 bits of the hash: a collision needs about a million failures of
     * one VM, and is detected (the existing VM's failed-uid differs). */
    return xasprintf("%s%s%010llx", base, n ? "-" : "vm-",
                     (unsigned long long)(h & 0xffffffffffull));
}

static void recover__strip_annotations(cJSON *meta)
{
    cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations"), *it, *next;

    if (!cJSON_IsObject(ann))
        return;
    for (it = ann->child; it; it = next) {
        next = it->next;
        if (!cJSON_IsString(it) || !it->string || cache_annotation_is_generated(it->string))
            cJSON_Delete(cJSON_DetachItemViaPointer(ann, it));
    }
}

static void recover__set(cJSON *obj, const char *key, cJSON *v)
{
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else
        cJSON_AddItemToObject(obj, key, v);
}

static cJSON *recover__object(cJSON *parent, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, key);

    if (!cJSON_IsObject(o)) {
        o = cJSON_CreateObject();
        recover__set(parent, key, o);
    }
    return o;
}

cJSON *recover_build_replacement(const char *vm_json, const char *ns, const char *name,
                                 const char *failed_vm, const char *policy, const char *member,
                                 double score, const char *failed_uid, const char *decided_at,
                                 char **err)
{
    cJSON *vm = cJSON_Parse(vm_json), *meta, *newmeta, *labels, *ann, *spec, *kind;
    char num[32];

    *err = NULL;
    kind = cJSON_GetObjectItemCaseSensitive(vm, "kind");
    if (!cJSON_IsObject(vm) || !cJSON_IsString(kind) ||
        strcmp(kind->valuestring, "VirtualMachine") != 0) {
        *err = xasprintf("pool member %s: data.vm is not a VirtualMachine", member);
        cJSON_Delete(vm);
        return NULL;
    }
    /* metadata: only what a new object may carry */
    meta = cJSON_GetObjectItemCaseSensitive(vm, "metadata");
    newmeta = cJSON_CreateObject();
    cJSON_AddStringToObject(newmeta, "name", name);
    cJSON_AddStringToObject(newmeta, "namespace", ns);
    labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
    cJSON_AddItemToObject(newmeta, "labels", labels);
    ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
    ann = cJSON_IsObject(ann) ? cJSON_Duplicate(ann, 1) : cJSON_CreateObject();
    cJSON_AddItemToObject(newmeta, "annotations", ann);
    recover__strip_annotations(newmeta);
    recover__set(labels, CACHE_REPLACES_LABEL, cJSON_CreateString(failed_vm));
    recover__set(labels, CACHE_POLICY_LABEL, cJSON_CreateString(policy));
    recover__set(labels, CACHE_TEMPLATE_LABEL, cJSON_CreateString(member));
    snprintf(num, sizeof(num), "%.4f", score);
    recover__set(ann, CACHE_SCORE_ANNOTATION, cJSON_CreateString(num));
    recover__set(ann, CACHE_FAILED_UID_ANNOTATION, cJSON_CreateString(failed_uid));
    recover__set(ann, CACHE_DECIDED_AT_ANNOTATION, cJSON_CreateString(decided_at));
    recover__set(vm, "metadata", newmeta);
    cJSON_DeleteItemFromObjectCaseSensitive(vm, "status");

    /* The replacement exists to run: a template captured from a halted VM
     * (or written stopped) must not bring the service back stopped. */
    spec = recover__object(vm, "spec");
    {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(spec, "runStrategy");
        const cJSON *running = cJSON_GetObjectItemCaseSensitive(spec, "running");

        if ((cJSON_IsString(rs) && strcmp(rs->valuestring, "Halted") == 0) ||
            (!rs && cJSON_IsFalse(running)) || (!rs && !running)) {
            cJSON_DeleteItemFromObjectCaseSensitive(spec, "running");
            recover__set(spec, "runStrategy", cJSON_CreateString("Always"));
        }
    }
    return vm;
}

/* ---- the reconcile ---------------------------------------------------- */

/* What recover_vmi() copies out of the cache before it acts. */
struct recover_job {
    char *ns, *vmi, *uid, *vm, *policy, *policy_uid;
    enum policy_action action;
    int halt_failed;  /* spec.haltFailed */
    int vm_running;   /* the failed VM exists and is not halted */
    double seen_mono; /* when the cache saw the failure */
    double start;     /* when this reconcile began (monotonic) */
    double ranked;    /* when the ranking was done */
    struct recover_pick pick;
    char *tmpl_json[RECOVER_MAX_TRIES]; /* the selected members' data.vm */
    char *features_err;                 /* the failed VM's features could not be read */
    cJSON *ranking;
};

static void recover__job_free(struct recover_job *j)
{
    free(j->ns);
    free(j->vmi);
    free(j->uid);
    free(j->vm);
    free(j->policy);
    free(j->policy_uid);
    recover_pick_free(&j->pick);
    for (size_t i = 0; i < RECOVER_MAX_TRIES; i++)
        free(j->tmpl_json[i]);
    free(j->features_err);
    cJSON_Delete(j->ranking);
}

static void recover__event(const struct recover_env *env, const struct recover_job *j,
                           const char *type, const char *reason, const char *msg)
{
    struct event_ref pol = {"kvrecover.io/v1alpha1", "RecoveryPolicy", j->ns, j->policy,
                            j->policy_uid};
    struct event_ref vmi = {"kubevirt.io/v1", "VirtualMachineInstance", j->ns, j->vmi, j->uid};

    if (!env->event)
        return;
    env->event(env->ud, &pol, type, reason, msg);
    env->event(env->ud, &vmi, type, reason, msg);
}

static double recover__round4(double x)
{
    return round(x * 10000.0) / 10000.0;
}

/* The decision line, the metrics and the book entry: the same facts. */
static void recover__announce(const struct recover_env *env, struct recover_job *j,
                              enum recover_result res, const char *replacement, const char *tmpl,
                              double score, double when, int observe)
{
    struct recover_decision d = {0};
    double latency = clock_mono() - j->seen_mono;
    cJSON *f = cJSON_CreateObject();
    char *pkey = xasprintf("%s/%s", j->ns, j->policy);
    char *labels;
    char *vkey = xasprintf("%s/%s", j->ns, j->vmi);

    cJSON_AddStringToObject(f, "policy", pkey);
    cJSON_AddStringToObject(f, "vmi", vkey);
    free(vkey);
    cJSON_AddStringToObject(f, "uid", j->uid);
    cJSON_AddStringToObject(f, "vm", j->vm);
    cJSON_AddStringToObject(f, "decision", recover_result_name(res));
    cJSON_AddItemToObject(f, "selected", tmpl ? cJSON_CreateString(tmpl) : cJSON_CreateNull());
    cJSON_AddItemToObject(f, "score",
                          tmpl ? cJSON_CreateNumber(recover__round4(score)) : cJSON_CreateNull());
    cJSON_AddItemToObject(f, "replacement",
                          replacement ? cJSON_CreateString(replacement) : cJSON_CreateNull());
    cJSON_AddNumberToObject(f, "latency_ms", round(latency * 1e4) / 10.0);
    /* where the time went: waiting for a worker, ranking, the API */
    cJSON_AddNumberToObject(f, "queue_ms", round((j->start - j->seen_mono) * 1e4) / 10.0);
    cJSON_AddNumberToObject(f, "rank_ms", round((j->ranked - j->start) * 1e4) / 10.0);
    if (!tmpl && j->pick.best) {
        cJSON_AddStringToObject(f, "best", j->pick.best);
        cJSON_AddNumberToObject(f, "bestScore", recover__round4(j->pick.best_score));
        cJSON_AddStringToObject(f, "reason", j->pick.best_reason ? j->pick.best_reason : "");
    }
    log_fields(res == RECOVER_NO_CANDIDATE ? LOG_LVL_WARN : LOG_LVL_INFO, "decision", f);

    labels = metrics_labels("policy", pkey, "result", recover_result_name(res));
    metrics_counter_add(METRICS_RECOVERIES, labels, 1);
    free(labels);
    if (observe) {
        labels = metrics_labels("policy", pkey, NULL, NULL);
        metrics_histogram_observe(METRICS_RECOVERY_DURATION, labels, latency);
        free(labels);
    }
    free(pkey);

    d.ns = xstrdup(j->ns);
    d.policy = xstrdup(j->policy);
    d.vmi = xstrdup(j->vmi);
    d.failed_vm = xstrdup(j->vm);
    d.failed_uid = xstrdup(j->uid);
    d.replacement = xstrdup(replacement);
    d.tmpl = xstrdup(tmpl);
    d.score = tmpl ? recover__round4(score) : 0;
    d.when = when;
    d.result = res;
    d.ranking = j->ranking;
    j->ranking = NULL;
    recover_book_add(env->book, &d);
    if (env->changed)
        env->changed(env->ud, j->ns, j->policy);
}

/* Copies the facts of VMI ns/name out of the cache. Returns 1 with *j
 * filled when the VMI needs a decision now, else 0 (*requeue_ms set for an
 * Unknown VMI still in its grace period). A VMI whose replacement already
 * exists is recorded in the book here. */
static int recover__prepare(const struct recover_env *env, struct recover_ranker *rk,
                            const char *ns, const char *name, uint64_t *requeue_ms,
                            struct recover_job *j)
{
    struct cache *c = env->cache;
    struct cache_vmi *vmi;
    struct cache_policy *p;
    struct cache_vm *vm, *repl;
    struct features f = {0};
    const char *alias = NULL;
    char *err = NULL;
    struct recover_decision known = {0};
    int ret = 0;

    cache_rdlock(c);
    vmi = cache_vmi_find(c, ns, name);
    if (!vmi || !*vmi->uid || !cache_phase_failed(vmi->phase))
        goto out;
    p = recover_policy_for(c, ns, vmi->labels, NULL);
    if (!p)
        goto out;
    if (vmi->phase == CACHE_PHASE_UNKNOWN) {
        double left = vmi->phase_since + (double)p->pol.unknown_grace_seconds - clock_wall();
        if (left > 0) {
            *requeue_ms = (uint64_t)(left * 1000.0) + 100;
            goto out;
        }
    }
    if (recover_book_handled(env->book, vmi->uid))
        goto out;
    repl = cache_vm_find_replacement(c, vmi->uid);
    if (repl && strcmp(repl->ns, ns) == 0) {
        /* Done before (by this process, an earlier one or another replica):
         * remember it, announce nothing again. */
        known.ns = xstrdup(ns);
        known.policy = xstrdup(repl->repl->policy ? repl->repl->policy : p->name);
        known.vmi = xstrdup(vmi->name);
        known.failed_vm = xstrdup(vmi->name);
        known.failed_uid = xstrdup(vmi->uid);
        known.replacement = xstrdup(repl->name);
        known.tmpl = xstrdup(repl->repl->tmpl);
        known.score = repl->repl->score >= 0 ? repl->repl->score : 0;
        if (!repl->repl->decided_at || clock_parse(repl->repl->decided_at, &known.when))
            known.when = clock_wall();
        known.result = RECOVER_RECOVERED;
        goto out;
    }

    j->ns = xstrdup(ns);
    j->vmi = xstrdup(vmi->name);
    j->uid = xstrdup(vmi->uid);
    j->vm = xstrdup(vmi->name);
    j->policy = xstrdup(p->name);
    j->policy_uid = xstrdup(p->uid);
    j->action = p->pol.action;
    j->halt_failed = p->pol.halt_failed;
    j->seen_mono = vmi->seen_mono;
    vm = cache_vm_find(c, ns, j->vm);
    j->vm_running = vm && vm->run_strategy != CACHE_RS_HALTED;
    if (recover_vm_features(c, p, j->vm, vmi, &f, &alias, &err) != 0) {
        j->features_err = err ? err : xstrdup("features could not be read");
        err = NULL;
        features_free(&f);
    }
    {
        struct sim_query q = {j->vm, alias, &f};
        int rc = recover_rank(env->book, rk, c, p, &q, &j->pick, &j->ranking);

        if (rc) {
            log_error("ranking for VMI %s/%s failed: %d", ns, name, rc);
            goto out;
        }
    }
    for (size_t i = 0; i < j->pick.nsel; i++) {
        struct cache_member *m = cache_member_find(c, ns, j->pick.sel[i]);
        j->tmpl_json[i] = m ? cache_member_template(m) : NULL;
    }
    ret = 1;
out:
    cache_unlock(c);
    features_free(&f);
    free(err);
    if (known.failed_uid) {
        recover_book_add(env->book, &known);
        if (env->changed)
            env->changed(env->ud, ns, known.policy);
    }
    return ret;
}

/* Creates the replacement from candidate i. Returns 0 (created, or found
 * created for this uid), -EINVAL (the API server refused the template:
 * *why set), -EEXIST (a VM of that name exists for another uid) or another
 * API error worth a retry. */
static int recover__create(const struct recover_env *env, const struct recover_job *j, size_t i,
                           const char *name, const char *decided_at, char **why)
{
    struct kube_resource res = {"kubevirt.io", "v1", "virtualmachines"};
    struct kube_error kerr = {0};
    char *path = NULL, *err = NULL;
    cJSON *obj, *existing = NULL;
    int rc;

    *why = NULL;
    if (!j->tmpl_json[i]) {
        *why = xasprintf("pool member %s has no template any more", j->pick.sel[i]);
        return -EINVAL;
    }
    obj = recover_build_replacement(j->tmpl_json[i], j->ns, name, j->vm, j->policy, j->pick.sel[i],
                                    j->pick.sel_score[i], j->uid, decided_at, &err);
    if (!obj) {
        *why = err;
        return -EINVAL;
    }
    path = kube_path(&res, j->ns, NULL, NULL);
    rc = kube_create(env->kube, path, obj, NULL, &kerr);
    free(path);
    if (rc == -EEXIST && kube_error_is(&kerr, "AlreadyExists")) {
        const cJSON *ann;
        const cJSON *uid;

        path = kube_path(&res, j->ns, name, NULL);
        rc = kube_get(env->kube, path, &existing, &kerr);
        free(path);
        if (rc == 0) {
            ann = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(existing, "metadata"), "annotations");
            uid = cJSON_GetObjectItemCaseSensitive(ann, CACHE_FAILED_UID_ANNOTATION);
            rc = cJSON_IsString(uid) && strcmp(uid->valuestring, j->uid) == 0 ? 0 : -EEXIST;
            if (rc)
                *why =
                    xasprintf("VirtualMachine %s/%s exists and replaces another VMI", j->ns, name);
        }
    } else if (rc == -EINVAL) {
        *why = xasprintf("the API server refused pool member %s's VirtualMachine: %s",
                         j->pick.sel[i], kerr.message);
    }
    cJSON_Delete(obj);
    cJSON_Delete(existing);
    return rc;
}

/* spec.haltFailed: stop KubeVirt from restarting the failed VM. */
static void recover__halt(const struct recover_env *env, const struct recover_job *j)
{
    struct kube_resource res = {"kubevirt.io", "v1", "virtualmachines"};
    cJSON *patch = cJSON_CreateObject(), *spec = cJSON_AddObjectToObject(patch, "spec");
    char *path = kube_path(&res, j->ns, j->vm, NULL);
    int rc;

    cJSON_AddStringToObject(spec, "runStrategy", "Halted");
    cJSON_AddNullToObject(spec, "running");
    rc = kube_patch(env->kube, path, KUBE_PATCH_MERGE, patch, NULL, NULL);
    if (rc && rc != -ENOENT)
        log_warn("halting VirtualMachine %s/%s failed: %d", j->ns, j->vm, rc);
    else if (rc == 0)
        log_info("halted VirtualMachine %s/%s (spec.haltFailed)", j->ns, j->vm);
    free(path);
    cJSON_Delete(patch);
}

int recover_vmi(const struct recover_env *env, struct recover_ranker *rk, const char *ns,
                const char *name, uint64_t *requeue_ms)
{
    struct recover_job j = {0};
    char decided_at[CLOCK_TEXT_LEN], *msg = NULL, *repl = NULL, *why = NULL;
    double now;
    int rc = 0;
    size_t i;

    *requeue_ms = 0;
    j.start = clock_mono();
    if (!recover__prepare(env, rk, ns, name, requeue_ms, &j))
        return 0;
    j.ranked = clock_mono();
    now = clock_wall();
    clock_format(now, decided_at);

    if (j.pick.nsel == 0) {
        msg = xasprintf("VMI %s failed: no eligible pool member (best: %s%s%s)%s%s", j.vmi,
                        j.pick.best ? j.pick.best : "none, the pool is empty",
                        j.pick.best_reason && *j.pick.best_reason ? ", " : "",
                        j.pick.best_reason ? j.pick.best_reason : "",
                        j.features_err ? "; features: " : "", j.features_err ? j.features_err : "");
        recover__event(env, &j, "Warning", "NoEligibleCandidate", msg);
        recover__announce(env, &j, RECOVER_NO_CANDIDATE, NULL, NULL, 0, now, 0);
        goto out;
    }
    repl = recover_replacement_name(j.vm, j.uid);
    if (j.action == POLICY_DRYRUN) {
        msg = xasprintf("VMI %s failed: would create VirtualMachine %s from pool member %s "
                        "(score %.4f); action is DryRun, nothing created",
                        j.vmi, repl, j.pick.sel[0], j.pick.sel_score[0]);
        recover__event(env, &j, "Normal", "DryRun", msg);
        recover__announce(env, &j, RECOVER_DRYRUN, repl, j.pick.sel[0], j.pick.sel_score[0], now,
                          0);
        goto out;
    }
    if (env->leading && !env->leading(env->ud)) {
        log_warn("not leading: VMI %s/%s left to the leader", ns, name);
        goto out;
    }
    for (i = 0; i < j.pick.nsel; i++) {
        rc = recover__create(env, &j, i, repl, decided_at, &why);
        if (rc != -EINVAL)
            break;
        /* A template the API server refuses is a bad pool member: say so
         * and try the next eligible one. */
        if (env->event) {
            struct event_ref pol = {"kvrecover.io/v1alpha1", "RecoveryPolicy", j.ns, j.policy,
                                    j.policy_uid};
            env->event(env->ud, &pol, "Warning", "InvalidPoolMember", why);
        }
        log_warn("%s", why);
        free(why);
        why = NULL;
    }
    if (rc == -EINVAL) {
        msg = xasprintf("VMI %s failed: no eligible pool member has a template the API server "
                        "accepts",
                        j.vmi);
        recover__event(env, &j, "Warning", "NoEligibleCandidate", msg);
        recover__announce(env, &j, RECOVER_NO_CANDIDATE, NULL, NULL, 0, now, 0);
        rc = 0;
        goto out;
    }
    if (rc == -EEXIST) {
        log_error("%s; VMI %s/%s is not recovered", why ? why : "name collision", ns, name);
        rc = 0;
        goto out;
    }
    if (rc) {
        log_warn("creating the replacement for VMI %s/%s failed: %d; will retry", ns, name, rc);
        goto out;
    }
    if (j.halt_failed && j.vm_running)
        recover__halt(env, &j);
    msg = xasprintf("VMI %s failed: created VirtualMachine %s from pool member %s (score %.4f)",
                    j.vmi, repl, j.pick.sel[i], j.pick.sel_score[i]);
    recover__event(env, &j, "Normal", "Recovered", msg);
    recover__announce(env, &j, RECOVER_RECOVERED, repl, j.pick.sel[i], j.pick.sel_score[i], now, 1);
out:
    free(msg);
    free(repl);
    free(why);
    recover__job_free(&j);
    return rc;
}
