/*
 * recover — ranking indexes and the book of decisions and incidents. See
 * recover.h.
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
#include "base/log.h"
#include "base/xalloc.h"
#include "reconcile/recover.h"
#include "sim/replica.h"

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
    free(d->failed_vm);
    free(d->trigger);
    free(d->failed_uid);
    free(d->replacement);
    free(d->tmpl);
    cJSON_Delete(d->ranking);
    cJSON_Delete(d->changes);
    memset(d, 0, sizeof(*d));
}

void recover_pick_free(struct recover_pick *p)
{
    if (!p)
        return;
    free(p->best);
    free(p->best_reason);
    for (size_t i = 0; i < p->nsel; i++) {
        free(p->sel[i]);
        cJSON_Delete(p->sel_obj[i]);
    }
    free(p->refused);
    memset(p, 0, sizeof(*p));
}

void recover_note_free(struct recover_note *n)
{
    if (!n)
        return;
    free(n->decided_uid);
    free(n->blocked);
    free(n->blocked_msg);
    free(n->blocked_uid);
    memset(n, 0, sizeof(*n));
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
    int storm;                                      /* holding back in a storm */
    int evicted;                                    /* a decision left the ring */
    double evicted_when;                            /* the newest time of one that left it */
};

/* What the book remembers of one protected VM. */
struct recover_vm {
    UT_hash_handle hh;
    char *key;             /* ns, NUL, name */
    size_t keylen;         /* uthash key length */
    struct recover_note n; /* owned */
    char *once;            /* the last per-VM Event key announced, or NULL */
};

struct recover_book {
    pthread_mutex_t lock;
    struct recover_policy *policies;
    struct recover_vm *vms;
};

struct recover_book *recover_book_new(void)
{
    struct recover_book *b = xcalloc(1, sizeof(*b));

    pthread_mutex_init(&b->lock, NULL);
    return b;
}

/* Removes v from the book and frees it. Book lock held (or the book being freed). */
static void recover__vm_drop(struct recover_book *b, struct recover_vm *v)
{
    HASH_DELETE(hh, b->vms, v);
    recover_note_free(&v->n);
    free(v->once);
    free(v->key);
    free(v);
}

void recover_book_free(struct recover_book *b)
{
    struct recover_policy *p, *ptmp;
    struct recover_vm *v = NULL, *vtmp = NULL;

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
    HASH_ITER(hh, b->vms, v, vtmp)
    {
        recover__vm_drop(b, v);
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

/* The VM's entry; created when absent and create is set, else NULL. Book
 * lock held. */
static struct recover_vm *recover__vm(struct recover_book *b, const char *ns, const char *name,
                                      int create)
{
    struct recover_vm *v = NULL;
    size_t len;
    char *key = cache_key(ns, name, &len);

    HASH_FIND(hh, b->vms, key, len, v);
    if (v || !create) {
        free(key);
        return v;
    }
    v = xcalloc(1, sizeof(*v));
    v->key = key;
    v->keylen = len;
    HASH_ADD_KEYPTR(hh, b->vms, v->key, v->keylen, v);
    return v;
}

/* The decision recorded in p's ring for uid, or NULL. Book lock held. */
static struct recover_decision *recover__recent(struct recover_policy *p, const char *uid)
{
    for (size_t i = 0; i < RECOVER_RECENT; i++)
        if (p->recent[i].failed_uid && strcmp(p->recent[i].failed_uid, uid) == 0)
            return &p->recent[i];
    return NULL;
}

/* Adds d to the policy's ring and as its VM's decision, unless the same
 * decision for its uid is known. Book lock held. Returns 1 when added. */
static int recover__add_locked(struct recover_book *b, struct recover_decision *d)
{
    struct recover_policy *p = recover__policy(b, d->ns, d->policy);
    struct recover_vm *v = recover__vm(b, d->ns, d->failed_vm ? d->failed_vm : "", 1);
    struct recover_decision *r = recover__recent(p, d->failed_uid);
    int same_vm = v->n.decided_uid && strcmp(v->n.decided_uid, d->failed_uid) == 0;

    if ((same_vm && v->n.decided == d->result) || (r && r->result == d->result)) {
        /* Same decision seen again (a seed, a replacement found in the
         * cache after this process created it): keep a ranking and changes it brings. */
        if (r && !r->ranking) {
            r->ranking = d->ranking;
            d->ranking = NULL;
        }
        if (r && !r->changes) {
            r->changes = d->changes;
            r->changes_omitted = d->changes_omitted;
            d->changes = NULL;
        }
        if (!same_vm) {
            free(v->n.decided_uid);
            v->n.decided_uid = xstrdup(d->failed_uid);
            v->n.decided = d->result;
        }
        recover_decision_free(d);
        return 0;
    }
    if (r) {
        if (p->counts[r->result])
            p->counts[r->result]--;
        recover_decision_free(r);
        p->nrecent--;
    }
    p->counts[d->result]++;
    free(v->n.decided_uid);
    v->n.decided_uid = xstrdup(d->failed_uid);
    v->n.decided = d->result;
    if (p->recent[p->head].failed_uid) {
        p->nrecent--;
        if (!p->evicted || p->recent[p->head].when > p->evicted_when)
            p->evicted_when = p->recent[p->head].when;
        p->evicted = 1;
    }
    recover_decision_free(&p->recent[p->head]);
    p->recent[p->head] = *d;
    memset(d, 0, sizeof(*d));
    p->head = (p->head + 1) % RECOVER_RECENT;
    p->nrecent++;
    return 1;
}

int recover_book_add(struct recover_book *b, struct recover_decision *d)
{
    int rc;

    pthread_mutex_lock(&b->lock);
    rc = recover__add_locked(b, d);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void recover_book_seed(struct recover_book *b, const char *ns, const char *policy,
                       const cJSON *status)
{
    const cJSON *recent =
        cJSON_IsObject(status) ? cJSON_GetObjectItemCaseSensitive(status, "recent") : NULL;
    const cJSON *it;
    struct recover_policy *p;

    pthread_mutex_lock(&b->lock);
    p = recover__policy(b, ns, policy);
    cJSON_ArrayForEach(it, (cJSON_IsArray(recent) ? recent : NULL))
    {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(it, "failedUID");
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(it, "decision");
        const cJSON *v;
        struct recover_decision d = {0};

        if (!cJSON_IsString(uid) || !cJSON_IsString(dec) ||
            recover_result_parse(dec->valuestring, &d.result) != 0)
            continue;
        if (recover__recent(p, uid->valuestring))
            continue;
        d.ns = xstrdup(ns);
        d.policy = xstrdup(policy);
        d.failed_uid = xstrdup(uid->valuestring);
        v = cJSON_GetObjectItemCaseSensitive(it, "failedVM");
        d.failed_vm = xstrdup(cJSON_IsString(v) ? v->valuestring : "");
        v = cJSON_GetObjectItemCaseSensitive(it, "replacement");
        d.replacement = cJSON_IsString(v) && *v->valuestring ? xstrdup(v->valuestring) : NULL;
        v = cJSON_GetObjectItemCaseSensitive(it, "template");
        d.tmpl = cJSON_IsString(v) && *v->valuestring ? xstrdup(v->valuestring) : NULL;
        v = cJSON_GetObjectItemCaseSensitive(it, "score");
        d.score = cJSON_IsNumber(v) ? v->valuedouble : 0;
        v = cJSON_GetObjectItemCaseSensitive(it, "time");
        if (!cJSON_IsString(v) || clock_parse(v->valuestring, &d.when) != 0)
            d.when = 0;
        if (p->evicted && d.when <= p->evicted_when) {
            /* The status lags the book (it is written after the book and
             * read back from the watch): a decision no newer than one the
             * ring has let go is history the book dropped, not news. Seeded
             * again, it would count twice and bring back the entry of a VM
             * deleted since, which nothing would ever forget (issue 13). */
            recover_decision_free(&d);
            continue;
        }
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
    dst->trigger = xstrdup(src->trigger);
    dst->failed_vm = xstrdup(src->failed_vm);
    dst->failed_uid = xstrdup(src->failed_uid);
    dst->replacement = xstrdup(src->replacement);
    dst->tmpl = xstrdup(src->tmpl);
    dst->score = src->score;
    dst->when = src->when;
    dst->result = src->result;
    dst->ranking = with_ranking && src->ranking ? cJSON_Duplicate(src->ranking, 1) : NULL;
    dst->changes = with_ranking && src->changes ? cJSON_Duplicate(src->changes, 1) : NULL;
    dst->changes_omitted = with_ranking ? src->changes_omitted : 0;
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
    p->storm = 0;
    p->evicted = 0;
    p->evicted_when = 0;
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

int recover_book_note(struct recover_book *b, const char *ns, const char *name,
                      struct recover_note *out)
{
    struct recover_vm *v;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, 0);
    if (v) {
        *out = v->n;
        out->decided_uid = xstrdup(v->n.decided_uid);
        out->blocked = xstrdup(v->n.blocked);
        out->blocked_msg = xstrdup(v->n.blocked_msg);
        out->blocked_uid = xstrdup(v->n.blocked_uid);
    }
    pthread_mutex_unlock(&b->lock);
    return v != NULL;
}

void recover_book_set_down(struct recover_book *b, const char *ns, const char *name, double when)
{
    struct recover_vm *v;

    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, when > 0);
    if (v)
        v->n.down_seen = when;
    pthread_mutex_unlock(&b->lock);
}

int recover_book_block(struct recover_book *b, const char *ns, const char *name, const char *uid,
                       const char *reason, const char *msg, double now, unsigned *tries)
{
    struct recover_vm *v;
    int changed;

    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, 1);
    changed = !v->n.blocked || strcmp(v->n.blocked, reason) != 0 || !v->n.blocked_uid ||
              strcmp(v->n.blocked_uid, uid ? uid : "") != 0;
    if (changed) {
        free(v->n.blocked);
        free(v->n.blocked_uid);
        v->n.blocked = xstrdup(reason);
        v->n.blocked_uid = xstrdup(uid ? uid : "");
        v->n.blocked_since = now;
        v->n.tries = 0;
    } else {
        v->n.tries++;
    }
    free(v->n.blocked_msg);
    v->n.blocked_msg = xstrdup(msg);
    if (tries)
        *tries = v->n.tries;
    pthread_mutex_unlock(&b->lock);
    return changed;
}

int recover_book_unblock(struct recover_book *b, const char *ns, const char *name)
{
    struct recover_vm *v;
    int was = 0;

    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, 0);
    if (v && v->n.blocked) {
        was = 1;
        free(v->n.blocked);
        free(v->n.blocked_msg);
        free(v->n.blocked_uid);
        v->n.blocked = v->n.blocked_msg = v->n.blocked_uid = NULL;
        v->n.blocked_since = 0;
        v->n.tries = 0;
    }
    pthread_mutex_unlock(&b->lock);
    return was;
}

int recover_book_once(struct recover_book *b, const char *ns, const char *name, const char *key)
{
    struct recover_vm *v;
    int fresh;

    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, 1);
    fresh = !v->once || strcmp(v->once, key) != 0;
    if (fresh) {
        free(v->once);
        v->once = xstrdup(key);
    }
    pthread_mutex_unlock(&b->lock);
    return fresh;
}

void recover_book_forget_vm(struct recover_book *b, const char *ns, const char *name)
{
    struct recover_vm *v;

    pthread_mutex_lock(&b->lock);
    v = recover__vm(b, ns, name, 0);
    if (v)
        recover__vm_drop(b, v);
    pthread_mutex_unlock(&b->lock);
}

size_t recover_book_prune(struct recover_book *b, struct cache *c)
{
    struct recover_vm *v = NULL, *tmp = NULL;
    size_t n = 0;

    cache_rdlock(c);
    pthread_mutex_lock(&b->lock);
    HASH_ITER(hh, b->vms, v, tmp)
    {
        /* the key is ns, NUL, name */
        if (!cache_vm_find(c, v->key, v->key + strlen(v->key) + 1)) {
            recover__vm_drop(b, v);
            n++;
        }
    }
    pthread_mutex_unlock(&b->lock);
    cache_unlock(c);
    return n;
}

int recover_book_storm(struct recover_book *b, const char *ns, const char *policy, int held)
{
    struct recover_policy *p;
    int began;

    pthread_mutex_lock(&b->lock);
    p = recover__policy(b, ns, policy);
    began = held && !p->storm;
    p->storm = held != 0;
    pthread_mutex_unlock(&b->lock);
    return began;
}

void recover_book_size(struct recover_book *b, size_t *policies, size_t *vms)
{
    pthread_mutex_lock(&b->lock);
    if (policies) {
        struct recover_policy *p;
        size_t n = 0;

        /* a forgotten policy keeps its (empty) index: count only entries
         * that hold something */
        for (p = b->policies; p; p = p->hh.next)
            n += p->nrecent || p->storm || p->index.pool;
        *policies = n;
    }
    if (vms)
        *vms = HASH_COUNT(b->vms);
    pthread_mutex_unlock(&b->lock);
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

void recover_ranker_idle(struct recover_ranker *rk)
{
    sim_ranker_free(rk->r);
    rk->r = sim_ranker_new();
    sim_result_free(&rk->res);
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
    /* KubeVirt deletes a failed VMI within a second: what it carried */
    if (vm && vm->seen && vm->seen->features)
        return cache_spec_features(vm->seen, out, err);
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
        struct sim_member sm = {
            m->name,
            m->vm,
            &f,
            (m->tmpl_z ? SIM_MEMBER_TEMPLATE : 0u) | (m->disk ? SIM_MEMBER_SHARED_DISK : 0u),
            m->disk,
            NULL};

        if (sim_pool_put(ix->pool, &sm) != 0)
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
                 const struct cache_policy *p, const struct sim_query *q, recover_accept_fn accept,
                 void *ud, struct recover_pick *pick, cJSON **ranking)
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
    for (size_t i = 0; i < rk->res.n && pick->nsel < RECOVER_MAX_TRIES; i++) {
        const struct sim_candidate *cd = &rk->res.cand[i];
        const char *name = sim_pool_name(ix->pool, cd->member);
        enum sim_reason why = SIM_ELIGIBLE;
        cJSON *obj = NULL;
        char *detail = NULL;

        if (cd->reason != SIM_ELIGIBLE)
            continue;
        if (accept)
            why = accept(ud, name, cd->score, &obj, &detail);
        if (why != SIM_ELIGIBLE) {
            /* refused in the ranking too: what is shown is what happened */
            sim_result_refuse(&rk->res, i, why);
            if (!pick->refused)
                pick->refused = detail ? xasprintf("%s: %s", name, detail)
                                       : xasprintf("%s: %s", name, sim_reason_name(why));
            pick->nrefused++;
            free(detail);
            cJSON_Delete(obj);
            continue;
        }
        free(detail);
        pick->sel[pick->nsel] = xstrdup(name);
        pick->sel_obj[pick->nsel] = obj;
        pick->sel_score[pick->nsel++] = cd->score;
    }
    /* after the refusals: the top candidate's reason may be NoCapacity */
    if (rk->res.n) {
        const struct sim_candidate *top = &rk->res.cand[0];

        pick->best = xstrdup(sim_pool_name(ix->pool, top->member));
        pick->best_score = top->score;
        if (top->reason == SIM_ELIGIBLE) {
            pick->best_reason = xstrdup("");
        } else {
            /* the reason's name first: what logs and Events are searched for */
            char *detail = sim_candidate_detail(top, &p->pol);

            pick->best_reason = xasprintf("%s: %s", sim_reason_name(top->reason), detail);
            free(detail);
        }
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
    return replica_name(vm, uid);
}
