/*
 * status — RecoveryPolicy status, policy Events, gauges and dashboard views.
 * See status.h.
 *
 * A reconcile gathers its facts under the cache's read lock, then builds,
 * compares and writes without it. The state remembers, per policy, when it
 * may run again, which Events it already announced, and the last view.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "base/buf.h"
#include "reconcile/cache.h"
#include "reconcile/health.h"
#include "reconcile/incident.h"
#include "reconcile/recover.h"
#include "reconcile/status.h"
#include "web/metrics.h"

#define STATUS_MIN_INTERVAL_S 0.5

struct status_policy {
    UT_hash_handle hh;
    char *key;               /* "ns/name" */
    double next_mono;        /* earliest time of the next reconcile */
    char *invalid_event;     /* "generation|error" of the last InvalidPolicy Event */
    uint64_t *member_events; /* hashes of (member, error) announced */
    size_t nmember_events;
    cJSON *view;               /* the dashboard object, or NULL */
    struct status__memo *memo; /* rankings of the protected VMs, by name hash */
    size_t nmemo;              /* entries in memo */
};

/* A ranking remembered per protected VM, valid while its key holds. A
 * sorted array without the VM's name (its hash stands for it): 10,000
 * protected VMs cost about half a megabyte. */
struct status__memo {
    uint64_t vm;  /* hash_fnv_str() of the VM's name */
    uint64_t key; /* what it was ranked with (status__key()) */
    char *best;   /* the selected (else the top) candidate, or NULL */
    double score; /* its score */
    int eligible; /* an eligible candidate exists */
};

static void status__memo_clear(struct status__memo *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].best);
    free(m);
}

static int status__memo_cmp(const void *a, const void *b)
{
    const struct status__memo *x = a, *y = b;

    return x->vm < y->vm ? -1 : x->vm > y->vm;
}

static uint64_t status__name_hash(const char *name)
{
    return hash_fnv_str(HASH_FNV_INIT, name);
}

struct status_state {
    pthread_mutex_t lock;
    struct status_policy *policies;
};

struct status_state *status_state_new(void)
{
    struct status_state *s = xcalloc(1, sizeof(*s));

    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void status__policy_free(struct status_policy *p)
{
    if (!p)
        return;
    status__memo_clear(p->memo, p->nmemo);
    free(p->key);
    free(p->invalid_event);
    free(p->member_events);
    cJSON_Delete(p->view);
    free(p);
}

void status_state_free(struct status_state *s)
{
    struct status_policy *p, *tmp;

    if (!s)
        return;
    HASH_ITER(hh, s->policies, p, tmp)
    {
        HASH_DELETE(hh, s->policies, p);
        status__policy_free(p);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The policy's entry, created when absent. State lock held. */
static struct status_policy *status__policy(struct status_state *s, const char *key)
{
    struct status_policy *p = NULL;

    HASH_FIND_STR(s->policies, key, p);
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        p->key = xstrdup(key);
        HASH_ADD_KEYPTR(hh, s->policies, p->key, strlen(p->key), p);
    }
    return p;
}

/* ---- building the status ---------------------------------------------- */

/* The condition of type in a status, or NULL. */
static const cJSON *status__cond_find(const cJSON *status, const char *type)
{
    const cJSON *conds =
        cJSON_IsObject(status) ? cJSON_GetObjectItemCaseSensitive(status, "conditions") : NULL;
    const cJSON *it;

    cJSON_ArrayForEach(it, (cJSON_IsArray(conds) ? conds : NULL))
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
            return it;
    }
    return NULL;
}

static const cJSON *status__ready(const cJSON *status)
{
    return status__cond_find(status, "Ready");
}

/* Appends a condition to conds; its lastTransitionTime is old's while the
 * status stays the same (Kubernetes conventions), else now. */
static void status__cond(cJSON *conds, const cJSON *old, const char *type, const char *status,
                         const char *reason, const char *message, long generation, const char *now)
{
    const cJSON *oldc = status__cond_find(old, type);
    const cJSON *v = oldc ? cJSON_GetObjectItemCaseSensitive(oldc, "status") : NULL;
    const cJSON *t = oldc ? cJSON_GetObjectItemCaseSensitive(oldc, "lastTransitionTime") : NULL;
    cJSON *cond = cJSON_CreateObject();

    cJSON_AddItemToArray(conds, cond);
    cJSON_AddStringToObject(cond, "type", type);
    cJSON_AddStringToObject(cond, "status", status);
    cJSON_AddNumberToObject(cond, "observedGeneration", (double)generation);
    cJSON_AddStringToObject(cond, "lastTransitionTime",
                            cJSON_IsString(v) && strcmp(v->valuestring, status) == 0 &&
                                    cJSON_IsString(t)
                                ? t->valuestring
                                : now);
    cJSON_AddStringToObject(cond, "reason", reason);
    cJSON_AddStringToObject(cond, "message", message);
}

cJSON *status_build(const struct status_facts *f, const cJSON *old, const char *now)
{
    cJSON *st = cJSON_CreateObject(), *conds, *arr;
    const char *status, *reason;
    char *message;
    char when[CLOCK_TEXT_LEN];

    if (!f->valid) {
        status = "False";
        reason = "InvalidPolicy";
        message = xstrdup(f->error ? f->error : "spec: invalid");
    } else if (f->pool_size == 0) {
        /* Still acting (a failure is announced as NoEligibleCandidate), and
         * capture may be about to fill the pool: not an error. */
        status = "True";
        reason = "EmptyPool";
        message = xasprintf("no ConfigMap matches spec.poolSelector yet; %zu protected VMs",
                            f->protected_vms);
    } else if (f->pool_invalid == f->pool_size) {
        status = "False";
        reason = "InvalidPool";
        message = xasprintf("all %zu pool members are invalid, e.g. %s", f->pool_size,
                            f->first_invalid ? f->first_invalid : "?");
    } else {
        status = "True";
        reason = "Valid";
        if (f->pool_invalid)
            message =
                xasprintf("%zu of %zu pool members are invalid and skipped, e.g. %s",
                          f->pool_invalid, f->pool_size, f->first_invalid ? f->first_invalid : "?");
        else
            message =
                xasprintf("%zu pool members, %zu protected VMs", f->pool_size, f->protected_vms);
    }
    conds = cJSON_AddArrayToObject(st, "conditions");
    status__cond(conds, old, "Ready", status, reason, message, f->generation, now);
    free(message);
    if (f->valid && f->down > f->storm_limit) {
        message = xasprintf("%zu of %zu protected VMs are down, more than spec.stormLimit "
                            "allows (%zu): kvrecover replaces none of them until fewer are down "
                            "or spec.stormLimit is raised",
                            f->down, f->protected_vms, f->storm_limit);
        status__cond(conds, old, "StormHold", "True", "TooManyDown", message, f->generation, now);
    } else {
        message = xasprintf("%zu of %zu protected VMs are down; spec.stormLimit allows %zu",
                            f->down, f->protected_vms, f->storm_limit);
        status__cond(conds, old, "StormHold", "False", "WithinLimit", message, f->generation, now);
    }
    free(message);
    if (f->blocked) {
        message = xasprintf("%zu incidents cannot go on: %s", f->blocked,
                            f->blocked_msg ? f->blocked_msg : "");
        status__cond(conds, old, "Blocked", "True", "IncidentsBlocked", message, f->generation,
                     now);
    } else {
        message = xstrdup("no incident is blocked");
        status__cond(conds, old, "Blocked", "False", "NoneBlocked", message, f->generation, now);
    }
    free(message);

    cJSON_AddNumberToObject(st, "observedGeneration", (double)f->generation);
    cJSON_AddNumberToObject(st, "protected", (double)f->protected_vms);
    cJSON_AddNumberToObject(st, "poolSize", (double)f->pool_size);
    cJSON_AddNumberToObject(st, "unprotected", (double)f->unprotected);
    arr = cJSON_AddArrayToObject(st, "unprotectedVMs");
    for (size_t i = 0; i < f->nunprotected_names && i < STATUS_UNPROTECTED_MAX; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(f->unprotected_names[i]));
    cJSON_AddNumberToObject(st, "down", (double)f->down);
    cJSON_AddNumberToObject(st, "blocked", (double)f->blocked);
    cJSON_AddItemToObject(st, "incidents",
                          f->incidents ? cJSON_Duplicate(f->incidents, 1) : cJSON_CreateArray());
    cJSON_AddNumberToObject(st, "recoveries", (double)f->recoveries);
    for (size_t i = 0; i < f->nrecent; i++) {
        const char *d = f->recent[i].decision;
        if (strcmp(d, "Recovered") == 0 || strcmp(d, "DryRun") == 0) {
            clock_format(f->recent[i].when, when);
            cJSON_AddStringToObject(st, "lastRecovery", when);
            break;
        }
    }
    arr = cJSON_AddArrayToObject(st, "recent");
    for (size_t i = 0; i < f->nrecent && i < RECOVER_RECENT; i++) {
        const struct status_recent *r = &f->recent[i];
        cJSON *e = cJSON_CreateObject();

        cJSON_AddStringToObject(e, "failedVM", r->failed_vm ? r->failed_vm : "");
        cJSON_AddStringToObject(e, "failedUID", r->failed_uid ? r->failed_uid : "");
        cJSON_AddStringToObject(e, "replacement", r->replacement ? r->replacement : "");
        cJSON_AddStringToObject(e, "template", r->tmpl ? r->tmpl : "");
        cJSON_AddNumberToObject(e, "score", r->score);
        clock_format(r->when, when);
        cJSON_AddStringToObject(e, "time", when);
        cJSON_AddStringToObject(e, "decision", r->decision);
        cJSON_AddItemToArray(arr, e);
    }
    return st;
}

cJSON *status_patch(const cJSON *old, const cJSON *new_status)
{
    cJSON *patch, *st;
    const cJSON *it;

    if (old && cJSON_Compare(old, new_status, 1))
        return NULL;
    patch = cJSON_CreateObject();
    st = cJSON_Duplicate(new_status, 1);
    cJSON_ArrayForEach(it, (cJSON_IsObject(old) ? old : NULL))
    {
        if (it->string && !cJSON_GetObjectItemCaseSensitive(st, it->string))
            cJSON_AddNullToObject(st, it->string);
    }
    cJSON_AddItemToObject(patch, "status", st);
    return patch;
}

/* ---- gathering the facts ---------------------------------------------- */

/* A protected VM: gathered under the cache lock (names copied), ranked in
 * chunks or taken from the memo. */
struct status__vm {
    UT_hash_handle hh; /* by name, while gathering */
    char *name;        /* the VM's name */
    char *vmi;         /* its VMI's name, or NULL */
    const char *phase; /* the VMI's phase ("" without one); static */
    uint64_t key;      /* what it was (or is to be) ranked with */
    char *best;        /* the selected (else the top) candidate, or NULL */
    double score;      /* its score */
    int eligible;      /* an eligible candidate exists */
    int known;         /* best, score and eligible are filled */
};

static int status__by_name(const void *a, const void *b)
{
    const struct status__vm *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static int status__recent_newer(const void *a, const void *b)
{
    const struct status_recent *x = a, *y = b;

    if (x->when != y->when)
        return x->when > y->when ? -1 : 1;
    return strcmp(x->failed_uid, y->failed_uid);
}

/* An incident's state in status.incidents and the kvrecover_incidents gauge. */
static const char *const status__states[] = {"Restarting", "Waiting", "Recovering", "Halted",
                                             "Blocked"};
#define STATUS__NSTATES 5
/* Why an incident is blocked, as the kvrecover_blocked_incidents gauge
 * names it (the last one stands for any other API reason). */
static const char *const status__reasons[] = {"StormHold",     "NoEligibleCandidate", "Forbidden",
                                              "QuotaExceeded", "NameTaken",           "Invalid",
                                              "Unavailable"};
#define STATUS__NREASONS 7

static size_t status__reason_index(const char *r)
{
    for (size_t i = 0; i + 1 < STATUS__NREASONS; i++)
        if (strcmp(status__reasons[i], r) == 0)
            return i;
    return STATUS__NREASONS - 1;
}

/* Everything a reconcile copies out of the cache. */
struct status__snap {
    char *ns, *name, *uid;
    long generation;
    int valid;
    char *error;
    cJSON *old;  /* status as last seen */
    cJSON *view; /* dashboard object being built */
    size_t pool_size, pool_invalid;
    char **invalid; /* "member: error" of invalid members */
    char *first_invalid;
    struct status__vm *prot; /* the protected VMs, sorted by name */
    size_t nprotected, nunprotected;
    char **unprotected; /* sorted names, up to STATUS_UNPROTECTED_MAX */
    size_t nunprotected_names;
    size_t nreplacements;
    struct recover_decision *repl; /* replacements of this policy (Recovered) */
    size_t nrepl;
    cJSON *incidents;                   /* status.incidents, sorted by VM, bounded */
    size_t down, blocked;               /* counts */
    size_t storm_limit;                 /* policy_storm_limit() */
    char *blocked_msg;                  /* named VMs and reasons, bounded */
    size_t by_state[STATUS__NSTATES];   /* incidents per state (all, not only listed) */
    size_t by_reason[STATUS__NREASONS]; /* blocked incidents per reason */
};

static void status__snap_free(struct status__snap *s)
{
    cJSON_Delete(s->incidents);
    free(s->blocked_msg);
    free(s->ns);
    free(s->name);
    free(s->uid);
    free(s->error);
    cJSON_Delete(s->old);
    cJSON_Delete(s->view);
    for (size_t i = 0; i < s->pool_invalid; i++)
        free(s->invalid[i]);
    free(s->invalid);
    free(s->first_invalid);
    for (size_t i = 0; i < s->nunprotected_names; i++)
        free(s->unprotected[i]);
    free(s->unprotected);
    for (size_t i = 0; i < s->nrepl; i++)
        recover_decision_free(&s->repl[i]);
    free(s->repl);
    for (size_t i = 0; i < s->nprotected; i++) {
        free(s->prot[i].name);
        free(s->prot[i].vmi);
        free(s->prot[i].best);
    }
    free(s->prot);
}

/* The pool: size, invalid members, and the dashboard's member list. */
static void status__pool(struct cache *c, const struct cache_policy *p, struct status__snap *s)
{
    cJSON *members = cJSON_AddArrayToObject(s->view, "members");

    for (struct cache_member *m = cache_member_first(c, p->ns); m;
         m = cache_member_next(m, p->ns)) {
        if (!cache_selector_matches(&p->pol.pool_selector, m->labels))
            continue;
        s->pool_size++;
        if (m->error) {
            s->invalid = xreallocarray(s->invalid, s->pool_invalid + 1, sizeof(*s->invalid));
            s->invalid[s->pool_invalid++] = xstrdup(m->error);
            if (!s->first_invalid || strcmp(m->error, s->first_invalid) < 0) {
                free(s->first_invalid);
                s->first_invalid = xstrdup(m->error);
            }
        }
        if (cJSON_GetArraySize(members) < STATUS_VIEW_MAX) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", m->name);
            cJSON_AddItemToObject(e, "vm", m->vm ? cJSON_CreateString(m->vm) : cJSON_CreateNull());
            cJSON_AddBoolToObject(e, "hasTemplate", m->tmpl_z != NULL);
            if (m->error)
                cJSON_AddStringToObject(e, "error", m->error);
            cJSON_AddItemToArray(members, e);
        }
    }
}

/* What a protected VM's ranking depends on: the pool (its namespace's
 * version), the policy, and where its features come from, in
 * recover_vm_features()'s order. Cache read lock held. */
static uint64_t status__key(struct cache *c, const struct cache_policy *p, const char *vm_name,
                            const struct cache_vmi *vmi)
{
    uint64_t v = cache_pool_version(c, p->ns), h = HASH_FNV_INIT;
    const struct cache_vm *vm = cache_vm_find(c, p->ns, vm_name);
    const struct cache_spec *specs[2] = {vmi ? &vmi->spec : NULL, vm ? &vm->spec : NULL};

    h = hash_fnv(h, &v, sizeof(v));
    h = hash_fnv(h, &p->generation, sizeof(p->generation));
    h = hash_fnv_field(h, p->uid);
    for (int i = 0; i < 2; i++) {
        const struct cache_spec *sp = specs[i];

        h = hash_fnv(h, sp ? "+" : "-", 1);
        if (!sp)
            continue;
        if (sp->features)
            h = hash_fnv_field(h, sp->features);
        if (sp->error)
            h = hash_fnv_field(h, sp->error);
        h = hash_fnv(h, sp->res, sizeof(sp->res));
        h = hash_fnv(h, &sp->has_res, sizeof(sp->has_res));
        /* the first source with features decides; the rest do not matter */
        if (sp->features || sp->error)
            break;
    }
    return h;
}

/* The protected VMs: VMs whose template labels, and VMIs whose labels,
 * select p (as the policy that acts on them), by VM name, with the key of
 * what they would be ranked with. Cache read lock held. */
static void status__protected(struct cache *c, const struct cache_policy *p, struct status__snap *s)
{
    struct status__vm *set = NULL, *e, *tmp;
    size_t i = 0;

    for (struct cache_vm *vm = cache_vm_first(c, p->ns); vm; vm = cache_vm_next(vm, p->ns)) {
        if (recover_policy_for(c, p->ns, vm->tlabels, NULL) != p)
            continue;
        e = xcalloc(1, sizeof(*e));
        e->name = xstrdup(vm->name);
        e->phase = "";
        HASH_ADD_KEYPTR(hh, set, e->name, strlen(e->name), e);
    }
    for (struct cache_vmi *vmi = cache_vmi_first(c, p->ns); vmi; vmi = cache_vmi_next(vmi, p->ns)) {
        const char *name = vmi->name;

        if (recover_policy_for(c, p->ns, vmi->labels, NULL) != p)
            continue;
        HASH_FIND_STR(set, name, e);
        if (!e) {
            e = xcalloc(1, sizeof(*e));
            e->name = xstrdup(name);
            HASH_ADD_KEYPTR(hh, set, e->name, strlen(e->name), e);
        }
        free(e->vmi);
        e->vmi = xstrdup(vmi->name);
        e->phase = cache_phase_name(vmi->phase);
    }
    s->nprotected = HASH_COUNT(set);
    s->prot = xcalloc(s->nprotected ? s->nprotected : 1, sizeof(*s->prot));
    HASH_ITER(hh, set, e, tmp)
    {
        HASH_DELETE(hh, set, e);
        s->prot[i] = *e;
        memset(&s->prot[i].hh, 0, sizeof(s->prot[i].hh));
        s->prot[i].key =
            status__key(c, p, e->name, e->vmi ? cache_vmi_find(c, p->ns, e->vmi) : NULL);
        i++;
        free(e);
    }
    qsort(s->prot, s->nprotected, sizeof(*s->prot), status__by_name);
}

/* Protected VMs ranked per chunk: the cache lock is taken once per chunk,
 * so that a large pool never keeps the reflectors waiting for long. */
#define STATUS_CHUNK 16

/* Ranks the VMs in todo[0..n) (indices into s->prot). Returns 0, or -EAGAIN
 * when the policy changed meanwhile (the reconcile is repeated). */
static int status__rank_chunk(const struct recover_env *env, struct recover_ranker *rk,
                              struct status__snap *s, const size_t *todo, size_t n)
{
    struct cache *c = env->cache;
    struct cache_policy *p;
    int rc = 0;

    cache_rdlock(c);
    p = cache_policy_find(c, s->ns, s->name);
    if (!p || !p->valid || p->generation != s->generation || strcmp(p->uid, s->uid) != 0) {
        rc = -EAGAIN;
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        struct status__vm *e = &s->prot[todo[k]];
        const struct cache_vmi *vmi = e->vmi ? cache_vmi_find(c, s->ns, e->vmi) : NULL;
        struct features f = {0};
        struct recover_pick pick;
        const char *alias = NULL;
        char *err = NULL;

        e->key = status__key(c, p, e->name, vmi);
        if (recover_vm_features(c, p, e->name, vmi, &f, &alias, &err) != 0)
            features_free(&f);
        free(err);
        {
            struct sim_query q = {e->name, alias, &f};
            if (recover_rank(env->book, rk, c, p, &q, NULL, NULL, &pick, NULL) != 0)
                memset(&pick, 0, sizeof(pick));
        }
        features_free(&f);
        e->eligible = pick.nsel > 0;
        free(e->best);
        e->best = xstrdup(pick.nsel ? pick.sel[0] : pick.best);
        e->score = pick.nsel ? pick.sel_score[0] : pick.best_score;
        e->known = 1;
        recover_pick_free(&pick);
    }
out:
    cache_unlock(c);
    return rc;
}

/* Fills every protected VM's ranking: from the memo where its key still
 * holds, else ranked now; the memo is then replaced by these rankings (so
 * VMs no longer protected drop out). Returns 0, or -EAGAIN when the policy
 * changed meanwhile. */
static int status__rank(const struct recover_env *env, struct status_state *st,
                        struct recover_ranker *rk, const char *key, struct status__snap *s)
{
    struct status_policy *sp;
    struct status__memo probe = {0}, *m, *memo;
    size_t *todo = xcalloc(s->nprotected + 1, sizeof(*todo)), ntodo = 0;
    int rc = 0;

    pthread_mutex_lock(&st->lock);
    sp = status__policy(st, key);
    for (size_t i = 0; i < s->nprotected; i++) {
        struct status__vm *e = &s->prot[i];

        probe.vm = status__name_hash(e->name);
        m = sp->nmemo ? bsearch(&probe, sp->memo, sp->nmemo, sizeof(*m), status__memo_cmp) : NULL;
        if (m && m->key == e->key) {
            e->best = xstrdup(m->best);
            e->score = m->score;
            e->eligible = m->eligible;
            e->known = 1;
        } else {
            todo[ntodo++] = i;
        }
    }
    pthread_mutex_unlock(&st->lock);

    for (size_t i = 0; i < ntodo && rc == 0; i += STATUS_CHUNK)
        rc = status__rank_chunk(env, rk, s, todo + i,
                                ntodo - i < STATUS_CHUNK ? ntodo - i : STATUS_CHUNK);
    free(todo);
    if (rc)
        return rc;

    memo = xcalloc(s->nprotected + 1, sizeof(*memo));
    for (size_t i = 0; i < s->nprotected; i++) {
        const struct status__vm *e = &s->prot[i];

        memo[i].vm = status__name_hash(e->name);
        memo[i].key = e->key;
        memo[i].best = xstrdup(e->best);
        memo[i].score = e->score;
        memo[i].eligible = e->eligible;
    }
    qsort(memo, s->nprotected, sizeof(*memo), status__memo_cmp);
    pthread_mutex_lock(&st->lock);
    sp = status__policy(st, key);
    status__memo_clear(sp->memo, sp->nmemo);
    sp->memo = memo;
    sp->nmemo = s->nprotected;
    pthread_mutex_unlock(&st->lock);
    return 0;
}

/* The unprotected VMs and the dashboard's list, from the rankings. */
static void status__protected_view(struct status__snap *s)
{
    cJSON *list = cJSON_AddArrayToObject(s->view, "protected");

    s->unprotected = xcalloc(STATUS_UNPROTECTED_MAX, sizeof(*s->unprotected));
    for (size_t i = 0; i < s->nprotected; i++) {
        const struct status__vm *e = &s->prot[i];

        if (!e->eligible) {
            s->nunprotected++;
            if (s->nunprotected_names < STATUS_UNPROTECTED_MAX)
                s->unprotected[s->nunprotected_names++] = xstrdup(e->name);
        }
        if (i < STATUS_VIEW_MAX) {
            cJSON *o = cJSON_CreateObject();

            cJSON_AddStringToObject(o, "vm", e->name);
            cJSON_AddStringToObject(o, "phase", e->phase);
            cJSON_AddItemToObject(o, "best",
                                  e->best ? cJSON_CreateString(e->best) : cJSON_CreateNull());
            cJSON_AddNumberToObject(o, "score", sim_round6(e->score));
            cJSON_AddBoolToObject(o, "eligible", e->eligible);
            cJSON_AddItemToArray(list, o);
        }
    }
}

/* The replacements that carry this policy's label: durable recoveries. */
static void status__replacements(struct cache *c, const struct cache_policy *p,
                                 struct status__snap *s)
{
    for (struct cache_vm *vm = cache_vm_first(c, p->ns); vm; vm = cache_vm_next(vm, p->ns)) {
        struct recover_decision *d;

        if (!vm->repl || !vm->repl->policy || strcmp(vm->repl->policy, p->name) != 0)
            continue;
        s->nreplacements++;
        s->repl = xreallocarray(s->repl, s->nrepl + 1, sizeof(*s->repl));
        d = &s->repl[s->nrepl++];
        memset(d, 0, sizeof(*d));
        d->failed_vm = xstrdup(vm->repl->replaces ? vm->repl->replaces : "");
        d->failed_uid = xstrdup(vm->repl->failed_uid);
        d->replacement = xstrdup(vm->name);
        d->tmpl = xstrdup(vm->repl->tmpl);
        d->score = vm->repl->score >= 0 ? vm->repl->score : 0;
        if (!vm->repl->decided_at || clock_parse(vm->repl->decided_at, &d->when) != 0)
            d->when = 0;
        d->result = RECOVER_RECOVERED;
    }
}

static int status__incident_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

    return strcmp(cJSON_GetObjectItemCaseSensitive(x, "vm")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(y, "vm")->valuestring);
}

/* The trigger an incident's view names: the one that fired, else the one
 * pending (health waits for NodeLoss only on a lost node, for
 * RestartTimeout otherwise), else NULL. */
static const char *status__trigger(const struct health_verdict *v)
{
    if (v->trigger != HEALTH_NONE)
        return health_trigger_name(v->trigger);
    if (v->trigger_at > 0)
        return health_trigger_name(v->state == HEALTH_NODE_LOST ? HEALTH_NODE_LOSS
                                                                : HEALTH_RESTART_TIMEOUT);
    return NULL;
}

/* The incidents: every VM p protects that is down, restarting, waiting for
 * its trigger, halted by kvrecover without its replacement yet, or blocked;
 * the counts; and the dashboard's list (with the detail, the trigger, the
 * seconds until a pending trigger, and also the VMs already replaced, as
 * Recovered, which status.incidents leaves out), and the storm counts.
 * Cache read lock held. */
static void status__incidents(const struct recover_env *env, struct cache *c,
                              const struct cache_policy *p, struct status__snap *s)
{
    double now = clock_wall();
    cJSON **all = NULL, *view = cJSON_AddArrayToObject(s->view, "incidents");
    cJSON *done = cJSON_CreateArray(); /* Recovered: listed after the others */
    size_t n = 0, nprot = 0, named = 0, nview = 0, ndone = 0;
    struct buf msg = {0};
    char when[CLOCK_TEXT_LEN];

    for (struct cache_vm *vm = cache_vm_first(c, p->ns); vm; vm = cache_vm_next(vm, p->ns)) {
        struct recover_note note;
        struct health_verdict v;
        const char *state = NULL, *reason;
        const char *replacement = NULL;
        cJSON *e;

        if (recover_policy_for(c, p->ns, vm->tlabels, NULL) != p)
            continue;
        nprot++;
        recover_book_note(env->book, vm->ns, vm->name, &note);
        incident_health(c, p, vm, note.down_seen, now, &v);
        reason = health_state_name(v.state);
        if (v.state == HEALTH_REPLACED) {
            struct cache_vm *r = vm->inc ? cache_vm_find(c, p->ns, vm->inc->replaced_by) : NULL;

            replacement = vm->inc ? vm->inc->replaced_by : NULL;
            if (!r)
                state = "Halted";
        } else if (v.down) {
            s->down++;
        }
        if (note.blocked) {
            state = "Blocked";
            reason = note.blocked;
            s->blocked++;
            s->by_reason[status__reason_index(note.blocked)]++;
            if (named < STATUS_BLOCKED_NAMED)
                buf_printf(&msg, "%s%s: %s", named ? "; " : "", vm->name, note.blocked);
            else if (named == STATUS_BLOCKED_NAMED)
                buf_puts(&msg, "; ...");
            named++;
        } else if (!state && v.trigger != HEALTH_NONE) {
            state = "Recovering";
        } else if (!state && v.trigger_at > 0) {
            state = "Waiting";
        } else if (!state && (v.down || v.state == HEALTH_RESTARTING)) {
            state = "Restarting";
        }
        if (!state && replacement && ndone < STATUS_VIEW_MAX) {
            /* replaced and its replacement exists: the dashboard's only */
            e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "vm", vm->name);
            cJSON_AddStringToObject(e, "state", "Recovered");
            cJSON_AddStringToObject(e, "reason", reason);
            if (vm->inc->failed_uid)
                cJSON_AddStringToObject(e, "failedUID", vm->inc->failed_uid);
            cJSON_AddStringToObject(e, "replacement", replacement);
            if (vm->inc->tmpl)
                cJSON_AddStringToObject(e, "template", vm->inc->tmpl);
            cJSON_AddStringToObject(e, "detail", v.reason);
            cJSON_AddItemToArray(done, e);
            ndone++;
        }
        if (!state) {
            recover_note_free(&note);
            continue;
        }
        for (size_t k = 0; k < STATUS__NSTATES; k++)
            if (strcmp(status__states[k], state) == 0)
                s->by_state[k]++;
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "vm", vm->name);
        cJSON_AddStringToObject(e, "state", state);
        cJSON_AddStringToObject(e, "reason", reason);
        if (v.since > 0 || note.down_seen > 0) {
            clock_format(v.since > 0 ? v.since : note.down_seen, when);
            cJSON_AddStringToObject(e, "since", when);
        }
        if (v.trigger_at > 0) {
            clock_format(v.trigger_at, when);
            cJSON_AddStringToObject(e, "triggerAt", when);
        }
        if (v.failed_uid || (vm->inc && vm->inc->failed_uid))
            cJSON_AddStringToObject(e, "failedUID",
                                    v.failed_uid ? v.failed_uid : vm->inc->failed_uid);
        if (replacement)
            cJSON_AddStringToObject(e, "replacement", replacement);
        /* the dashboard also shows the detail and the time left */
        if (nview < STATUS_VIEW_MAX) {
            cJSON *d = cJSON_Duplicate(e, 1);
            const char *trigger = status__trigger(&v);

            cJSON_AddStringToObject(d, "detail", note.blocked_msg ? note.blocked_msg : v.reason);
            if (trigger)
                cJSON_AddStringToObject(d, "trigger", trigger);
            if (v.trigger_at > 0)
                cJSON_AddNumberToObject(d, "triggerInSeconds", ceil(v.trigger_at - now));
            if (note.blocked && note.blocked_since > 0) {
                clock_format(note.blocked_since, when);
                cJSON_AddStringToObject(d, "blockedSince", when);
            }
            if (vm->inc && vm->inc->tmpl)
                cJSON_AddStringToObject(d, "template", vm->inc->tmpl);
            cJSON_AddItemToArray(view, d);
            nview++;
        }
        all = xreallocarray(all, n + 1, sizeof(*all));
        all[n++] = e;
        recover_note_free(&note);
    }
    for (; nview < STATUS_VIEW_MAX && ndone > 0; nview++, ndone--)
        cJSON_AddItemToArray(view, cJSON_DetachItemFromArray(done, 0));
    cJSON_Delete(done);
    if (n > 1)
        qsort(all, n, sizeof(*all), status__incident_cmp);
    s->incidents = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (i < STATUS_INCIDENTS_MAX)
            cJSON_AddItemToArray(s->incidents, all[i]);
        else
            cJSON_Delete(all[i]);
    }
    free(all);
    s->storm_limit = policy_storm_limit(&p->pol, nprot);
    s->blocked_msg = msg.data ? xstrdup(msg.data) : NULL;
    buf_free(&msg);
    /* the StormHold condition's facts, for the dashboard's banner */
    cJSON_AddNumberToObject(s->view, "incidentCount", (double)n);
    cJSON_AddNumberToObject(s->view, "down", (double)s->down);
    cJSON_AddNumberToObject(s->view, "stormLimit", (double)s->storm_limit);
    cJSON_AddBoolToObject(s->view, "stormHold", s->down > s->storm_limit);
    cJSON_AddNumberToObject(s->view, "blocked", (double)s->blocked);
    cJSON_AddNumberToObject(s->view, "protectedCount", (double)nprot);
}

/* Copies the policy's facts; returns 0, or -ENOENT when it is gone. */
static int status__gather(const struct recover_env *env, const char *ns, const char *name,
                          struct status__snap *s)
{
    struct cache *c = env->cache;
    struct cache_policy *p;
    const char *pool;
    int rc = 0;

    cache_rdlock(c);
    p = cache_policy_find(c, ns, name);
    if (!p) {
        rc = -ENOENT;
        goto out;
    }
    s->ns = xstrdup(ns);
    s->name = xstrdup(name);
    s->uid = xstrdup(p->uid);
    s->generation = p->generation;
    s->valid = p->valid;
    s->error = xstrdup(p->error);
    s->old = p->status ? cJSON_Duplicate(p->status, 1) : NULL;
    s->view = cJSON_CreateObject();
    cJSON_AddStringToObject(s->view, "namespace", ns);
    cJSON_AddStringToObject(s->view, "name", name);
    if (!p->valid) {
        cJSON_AddNullToObject(s->view, "pool");
        goto out;
    }
    pool = NULL;
    for (size_t i = 0; i < p->pol.pool_selector.nlabels; i++)
        if (strcmp(p->pol.pool_selector.keys[i], CACHE_POOL_LABEL) == 0)
            pool = p->pol.pool_selector.values[i];
    cJSON_AddItemToObject(s->view, "pool", pool ? cJSON_CreateString(pool) : cJSON_CreateNull());
    cJSON_AddStringToObject(s->view, "mode", policy_mode_name(p->pol.mode));
    cJSON_AddNumberToObject(s->view, "threshold", p->pol.threshold);
    cJSON_AddStringToObject(s->view, "action", policy_action_name(p->pol.action));
    status__pool(c, p, s);
    status__protected(c, p, s);
    status__replacements(c, p, s);
    status__incidents(env, c, p, s);
out:
    cache_unlock(c);
    return rc;
}

/* ---- the reconcile ---------------------------------------------------- */

static void status__gauges(const char *key, const struct status__snap *s, int del)
{
    char *labels = metrics_labels("policy", key, NULL, NULL);

    if (del) {
        metrics_gauge_delete(METRICS_POOL_MEMBERS, labels);
        metrics_gauge_delete(METRICS_PROTECTED_VMS, labels);
        metrics_gauge_delete(METRICS_UNPROTECTED_VMS, labels);
        metrics_gauge_delete(METRICS_STORM_HOLD, labels);
    } else {
        metrics_gauge_set(METRICS_POOL_MEMBERS, labels, (double)s->pool_size);
        metrics_gauge_set(METRICS_PROTECTED_VMS, labels, (double)s->nprotected);
        metrics_gauge_set(METRICS_UNPROTECTED_VMS, labels, (double)s->nunprotected);
        metrics_gauge_set(METRICS_STORM_HOLD, labels, s->down > s->storm_limit ? 1 : 0);
    }
    free(labels);
    /* fixed label sets: every series exists (0 when none), none is stale */
    for (size_t k = 0; k < STATUS__NSTATES; k++) {
        labels = metrics_labels("policy", key, "state", status__states[k]);
        if (del)
            metrics_gauge_delete(METRICS_INCIDENTS, labels);
        else
            metrics_gauge_set(METRICS_INCIDENTS, labels, (double)s->by_state[k]);
        free(labels);
    }
    for (size_t k = 0; k < STATUS__NREASONS; k++) {
        labels = metrics_labels("policy", key, "reason", status__reasons[k]);
        if (del)
            metrics_gauge_delete(METRICS_BLOCKED_INCIDENTS, labels);
        else
            metrics_gauge_set(METRICS_BLOCKED_INCIDENTS, labels, (double)s->by_reason[k]);
        free(labels);
    }
}

/* InvalidPolicy and InvalidPoolMember, each announced once. */
static void status__events(const struct recover_env *env, struct status_state *st, const char *key,
                           const struct status__snap *s)
{
    struct event_ref ref = {"kvrecover.io/v1alpha1", "RecoveryPolicy", s->ns, s->name, s->uid};
    struct status_policy *sp;
    char *what = NULL;
    size_t nnew = 0;
    const char **fresh = xcalloc(s->pool_invalid + 1, sizeof(*fresh));

    pthread_mutex_lock(&st->lock);
    sp = status__policy(st, key);
    if (!s->valid) {
        what = xasprintf("%ld|%s", s->generation, s->error ? s->error : "");
        if (sp->invalid_event && strcmp(sp->invalid_event, what) == 0) {
            free(what);
            what = NULL;
        } else {
            free(sp->invalid_event);
            sp->invalid_event = xstrdup(what);
        }
    }
    for (size_t i = 0; i < s->pool_invalid; i++) {
        uint64_t h = hash_fnv_str(HASH_FNV_INIT, s->invalid[i]);
        size_t k;

        for (k = 0; k < sp->nmember_events && sp->member_events[k] != h; k++)
            ;
        if (k < sp->nmember_events)
            continue;
        sp->member_events =
            xreallocarray(sp->member_events, sp->nmember_events + 1, sizeof(uint64_t));
        sp->member_events[sp->nmember_events++] = h;
        fresh[nnew++] = s->invalid[i];
    }
    pthread_mutex_unlock(&st->lock);

    if (what) {
        log_warn("policy %s is invalid: %s", key, s->error ? s->error : "");
        if (env->event)
            env->event(env->ud, &ref, "Warning", "InvalidPolicy", s->error ? s->error : "invalid");
    }
    for (size_t i = 0; i < nnew; i++) {
        char *msg = xasprintf("pool member skipped: %s", fresh[i]);
        log_warn("policy %s: %s", key, msg);
        if (env->event)
            env->event(env->ud, &ref, "Warning", "InvalidPoolMember", msg);
        free(msg);
    }
    free(what);
    free(fresh);
}

/* Merges the durable replacements with the book's decisions into
 * status.recent entries (newest first) and the dashboard's recoveries. */
static size_t status__recent(const struct status__snap *s, struct recover_decision *book,
                             size_t nbook, struct status_recent *out, cJSON *recoveries)
{
    size_t n = 0, total = s->nrepl + nbook;
    struct status_recent *all = xcalloc(total ? total : 1, sizeof(*all));

    for (size_t i = 0; i < s->nrepl; i++) {
        const struct recover_decision *d = &s->repl[i];
        all[n++] = (struct status_recent){d->failed_vm, d->failed_uid, d->replacement, d->tmpl,
                                          "Recovered",  d->score,      d->when};
    }
    for (size_t i = 0; i < nbook; i++) {
        const struct recover_decision *d = &book[i];
        size_t k;

        for (k = 0; k < s->nrepl && strcmp(s->repl[k].failed_uid, d->failed_uid) != 0; k++)
            ;
        if (k < s->nrepl) {
            /* the replacement's own record wins; it keeps the book's time */
            all[k].when = d->when ? d->when : all[k].when;
            continue;
        }
        all[n++] = (struct status_recent){
            d->failed_vm, d->failed_uid, d->replacement, d->tmpl, recover_result_name(d->result),
            d->score,     d->when};
    }
    qsort(all, n, sizeof(*all), status__recent_newer);
    if (n > RECOVER_RECENT)
        n = RECOVER_RECENT;
    memcpy(out, all, n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        char when[CLOCK_TEXT_LEN];
        const struct recover_decision *known = NULL;

        for (size_t k = 0; k < nbook; k++)
            if (strcmp(book[k].failed_uid, out[i].failed_uid) == 0)
                known = &book[k];
        clock_format(out[i].when, when);
        cJSON_AddStringToObject(e, "failed", out[i].failed_vm ? out[i].failed_vm : "");
        cJSON_AddStringToObject(e, "vmiUid", out[i].failed_uid);
        cJSON_AddStringToObject(e, "replacement", out[i].replacement ? out[i].replacement : "");
        cJSON_AddStringToObject(e, "template", out[i].tmpl ? out[i].tmpl : "");
        cJSON_AddNumberToObject(e, "score", out[i].score);
        cJSON_AddStringToObject(e, "decision", out[i].decision);
        cJSON_AddStringToObject(e, "time", when);
        cJSON_AddItemToObject(e, "ranking",
                              known && known->ranking ? cJSON_Duplicate(known->ranking, 1)
                                                      : cJSON_CreateNull());
        /* what the replacement changes of its member, as this process
         * built it from that member (null: another process did, or none
         * was built) */
        if (!known || !known->changes || !known->tmpl || !out[i].tmpl ||
            strcmp(known->tmpl, out[i].tmpl) != 0)
            known = NULL;
        cJSON_AddItemToObject(e, "changes",
                              known ? cJSON_Duplicate(known->changes, 1) : cJSON_CreateNull());
        cJSON_AddNumberToObject(e, "changesOmitted", known ? (double)known->changes_omitted : 0);
        cJSON_AddItemToArray(recoveries, e);
    }
    free(all);
    return n;
}

static int status__write(const struct recover_env *env, const struct status__snap *s,
                         const cJSON *patch)
{
    struct kube_resource res = {"kvrecover.io", "v1alpha1", "recoverypolicies"};
    struct kube_error kerr = {0};
    char *path = kube_path(&res, s->ns, s->name, "status");
    int rc = kube_patch(env->kube, path, KUBE_PATCH_MERGE, patch, NULL, &kerr);

    if (rc == -ENOENT)
        rc = 0; /* deleted meanwhile: the watch will say so */
    else if (rc)
        log_warn("writing the status of policy %s/%s failed: %d %s", s->ns, s->name, rc,
                 kerr.message);
    free(path);
    return rc;
}

int status_reconcile(const struct recover_env *env, struct status_state *st,
                     struct recover_ranker *rk, const char *ns, const char *name,
                     uint64_t *requeue_ms)
{
    struct status__snap s = {0};
    struct status_policy *sp;
    struct recover_decision *book = NULL;
    struct status_recent recent[RECOVER_RECENT];
    struct status_facts f = {0};
    cJSON *status = NULL, *patch = NULL, *recoveries;
    char *key = xasprintf("%s/%s", ns, name), now[CLOCK_TEXT_LEN];
    double t0 = clock_mono();
    size_t nbook = 0, nrecent;
    int rc = 0, gone;

    *requeue_ms = 0;
    cache_rdlock(env->cache);
    gone = cache_policy_find(env->cache, ns, name) == NULL;
    cache_unlock(env->cache);
    pthread_mutex_lock(&st->lock);
    sp = status__policy(st, key);
    if (!gone && sp->next_mono > t0) {
        *requeue_ms = (uint64_t)((sp->next_mono - t0) * 1000.0) + 1;
        pthread_mutex_unlock(&st->lock);
        goto out;
    }
    pthread_mutex_unlock(&st->lock);

    if (status__gather(env, ns, name, &s) == -ENOENT) {
        pthread_mutex_lock(&st->lock);
        HASH_FIND_STR(st->policies, key, sp);
        if (sp) {
            HASH_DELETE(hh, st->policies, sp);
            status__policy_free(sp);
        }
        pthread_mutex_unlock(&st->lock);
        recover_book_forget(env->book, ns, name);
        status__gauges(key, &s, 1);
        goto out;
    }
    if (s.valid && status__rank(env, st, rk, key, &s) == -EAGAIN) {
        /* the policy changed while its VMs were ranked: again, soon */
        *requeue_ms = 100;
        goto out;
    }
    status__protected_view(&s);
    status__events(env, st, key, &s);
    recover_book_seed(env->book, ns, name, s.old);
    nbook = recover_book_recent(env->book, ns, name, RECOVER_RECENT, 1, &book);
    recoveries = cJSON_AddArrayToObject(s.view, "recoveries");
    nrecent = status__recent(&s, book, nbook, recent, recoveries);

    f.generation = s.generation;
    f.valid = s.valid;
    f.error = s.error;
    f.pool_size = s.pool_size;
    f.pool_invalid = s.pool_invalid;
    f.first_invalid = s.first_invalid;
    f.protected_vms = s.nprotected;
    f.unprotected = s.nunprotected;
    f.unprotected_names = (const char **)s.unprotected;
    f.nunprotected_names = s.nunprotected_names;
    f.recoveries = s.nreplacements + recover_book_count(env->book, ns, name, RECOVER_DRYRUN);
    f.recent = recent;
    f.nrecent = nrecent;
    f.down = s.down;
    f.blocked = s.blocked;
    f.storm_limit = s.storm_limit;
    f.blocked_msg = s.blocked_msg;
    f.incidents = s.incidents;
    clock_format(clock_wall(), now);
    status = status_build(&f, s.old, now);
    {
        const cJSON *c = status__ready(status);
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(c, "status");
        const cJSON *cm = cJSON_GetObjectItemCaseSensitive(c, "message");

        cJSON_AddBoolToObject(s.view, "ready",
                              cJSON_IsString(cs) && !strcmp(cs->valuestring, "True"));
        cJSON_AddStringToObject(s.view, "readyMessage", cJSON_IsString(cm) ? cm->valuestring : "");
        cJSON_AddNumberToObject(s.view, "poolSize", (double)s.pool_size);
    }
    if (s.valid)
        status__gauges(key, &s, 0);
    patch = status_patch(s.old, status);
    if (patch && (!env->leading || env->leading(env->ud)))
        rc = status__write(env, &s, patch);

    pthread_mutex_lock(&st->lock);
    sp = status__policy(st, key);
    cJSON_Delete(sp->view);
    sp->view = s.view;
    s.view = NULL;
    {
        double took = clock_mono() - t0;

        log_debug("status of policy %s: %zu protected, %zu members, %.1f ms", key, s.nprotected,
                  s.pool_size, took * 1000.0);
        sp->next_mono =
            clock_mono() + (2 * took > STATUS_MIN_INTERVAL_S ? 2 * took : STATUS_MIN_INTERVAL_S);
    }
    pthread_mutex_unlock(&st->lock);
out:
    for (size_t i = 0; i < nbook; i++)
        recover_decision_free(&book[i]);
    free(book);
    cJSON_Delete(status);
    cJSON_Delete(patch);
    status__snap_free(&s);
    free(key);
    return rc;
}

static int status__view_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    const cJSON *xn = cJSON_GetObjectItemCaseSensitive(x, "namespace");
    const cJSON *yn = cJSON_GetObjectItemCaseSensitive(y, "namespace");
    int r = strcmp(xn->valuestring, yn->valuestring);

    if (r)
        return r;
    return strcmp(cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(y, "name")->valuestring);
}

cJSON *status_views(struct status_state *s)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON **views;
    struct status_policy *p;
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    views = xcalloc(HASH_COUNT(s->policies) + 1, sizeof(*views));
    for (p = s->policies; p; p = p->hh.next)
        if (p->view)
            views[n++] = cJSON_Duplicate(p->view, 1);
    pthread_mutex_unlock(&s->lock);
    qsort(views, n, sizeof(*views), status__view_cmp);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, views[i]);
    free(views);
    return arr;
}
