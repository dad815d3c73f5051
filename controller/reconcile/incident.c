/*
 * incident — halt first, exactly once, crash-safe. See incident.h.
 *
 * A reconcile copies what it needs out of the cache under the read lock
 * (the VM, its policy, the verdict, the ranking and the replacement objects
 * built from the chosen members), unlocks, and only then talks to the API
 * server. Nothing it decides lives only in memory: the halt patch writes
 * the decision onto the failed VM, so that whoever reconciles it next (this
 * process after a retry, a restarted one, another replica) finishes the
 * same incident with the same name.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "kube/event.h"
#include "reconcile/cache.h"
#include "reconcile/capacity.h"
#include "reconcile/health.h"
#include "reconcile/incident.h"
#include "reconcile/incident_test.h"
#include "reconcile/recover.h"
#include "sim/replica.h"
#include "web/metrics.h"

static const struct kube_resource incident__vms = {"kubevirt.io", "v1", "virtualmachines"};

/* ---- the one write path ------------------------------------------------ */

int incident_write(const struct recover_env *env, const struct incident_actor *as,
                   enum incident_write_kind kind, const char *path, const cJSON *body, cJSON **out,
                   struct kube_error *err)
{
    /* as the policy's ServiceAccount, else the default one, else as the
     * controller: the API server judges the write by that identity's rights,
     * and answers 403 when the namespace did not let the controller act as
     * it (README "Security model") */
    struct kube_as sa;
    const struct kube_as *who = kube_as_sa(
        &sa, as->ns, as->service_account ? as->service_account : env->default_service_account);

    if (kind == INCIDENT_WRITE_MERGE_PATCH)
        return kube_patch_as(env->kube, who, path, KUBE_PATCH_MERGE, body, out, err);
    if (kind == INCIDENT_WRITE_JSON_PATCH)
        return kube_patch_as(env->kube, who, path, KUBE_PATCH_JSON, body, out, err);
    return kube_create_as(env->kube, who, path, body, out, err);
}

/* ---- health from the cache -------------------------------------------- */

void incident_health(struct cache *c, const struct cache_policy *p, const struct cache_vm *vm,
                     double down_seen, double now, struct health_verdict *out)
{
    const struct cache_vmi *vmi = cache_vm_vmi(c, vm);
    const struct cache_node *node = vmi && vmi->node ? cache_node_find(c, vmi->node) : NULL;
    struct health_config cfg = {(int)p->pol.trigger.crash_loop_threshold,
                                p->pol.trigger.restart_timeout_seconds,
                                p->pol.trigger.node_loss_seconds, p->pol.trigger.immediate};
    struct health_vm hv = {0};
    struct health_vmi hi = {0};
    struct health_node hn = {0};

    hv.uid = vm->uid;
    hv.rs = vm->run_strategy;
    hv.printable = vm->printable;
    hv.fail_count = vm->fail_count;
    hv.fail_uid = vm->fail_uid;
    hv.ready = vm->ready;
    hv.ready_since = vm->ready_since;
    hv.deleting = vm->deleting;
    hv.replaced_by = vm->inc ? vm->inc->replaced_by : NULL;
    hv.spent_uid = vm->inc ? vm->inc->failed_uid : NULL;
    hv.last_failed_uid = vm->last_failed_uid;
    hv.down_seen = down_seen;
    if (vmi) {
        hi.exists = 1;
        hi.uid = vmi->uid;
        hi.phase = vmi->phase;
        hi.node = vmi->node;
        hi.deleting = vmi->deleting;
    }
    if (node) {
        hn.exists = 1;
        hn.ready = node->ready;
        hn.ready_since = node->ready_since;
        hn.heartbeat = node->heartbeat;
    }
    health_eval(&cfg, &hv, vmi ? &hi : NULL, node ? &hn : NULL, now, out);
}

void incident_count_down(struct cache *c, const struct cache_policy *p,
                         const struct recover_env *env, double now, size_t *down,
                         size_t *protected_vms)
{
    *down = *protected_vms = 0;
    for (struct cache_vm *vm = cache_vm_first(c, p->ns); vm; vm = cache_vm_next(vm, p->ns)) {
        struct recover_note note;
        struct health_verdict v;

        if (recover_policy_for(c, p->ns, vm->tlabels, NULL) != p)
            continue;
        recover_book_note(env->book, vm->ns, vm->name, &note);
        incident_health(c, p, vm, note.down_seen, now, &v);
        recover_note_free(&note);
        (*protected_vms)++;
        *down += v.down != 0;
    }
}

/* ---- the storm check -------------------------------------------------- */

/*
 * Counting a policy's down VMs walks every VM of its namespace; done for
 * every incident, N VMs failing at once cost N² (10,000 failures did not
 * finish one round in 13 minutes). So the count is remembered per policy
 * with the cache's versions at the time (cache_versions()), and a later
 * check first asks what the count can be now: each VM or VMI change since
 * moves the down count and the protected count by one at most, so with k
 * changes the truth lies within k of what was counted. When every value in
 * that range gives the same answer, that answer is the one a count would
 * give, and no count is made; otherwise the VMs are counted again. What
 * the range cannot cover makes the memo useless: a policy's new spec (its
 * stormLimit, its selector, another policy taking VMs over), a Node's
 * health changing (one node takes many VMs down), and the moment a node's
 * KubeVirt heartbeat turns stale (health's one use of the clock for
 * "down"). So the decision is exactly the one an exact count would make,
 * never a stale one; what a mass failure costs is a count each time the
 * range stops deciding, a handful per storm instead of one per VM.
 */

/* How long a memo is trusted at most. Nothing the memo decides needs it
 * (the versions say what changed); it bounds what nothing reports, a step
 * of the wall clock that the heartbeat arithmetic rests on, and keeps the
 * figures a hold announces at most this old. At most one count a second
 * per policy is nothing: a count of 20,000 VMs takes about 15 ms on a
 * quiet machine (bench-storm). */
#define INCIDENT_STORM_MEMO_MS 1000

struct incident__memo {
    UT_hash_handle hh;
    char *key;                /* "ns/policy" */
    struct cache_versions at; /* the cache when counted */
    size_t down, prot;        /* the count */
    double counted;           /* when (monotonic, s) */
    double stale_at;          /* wall (s): the first time a node's heartbeat turns stale
                                 (health's HEALTH_HEARTBEAT_STALE_S); INFINITY for none */
};

/* Memos of every policy counted in the last INCIDENT_STORM_MEMO_MS, under
 * their lock (workers check storms concurrently). Nothing older is kept:
 * a deleted policy's memo goes within that time of the next count. */
static pthread_mutex_t incident__memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct incident__memo *incident__memos;
static double incident__memo_swept;
static unsigned long incident__walks;

unsigned long incident_storm_walks(void)
{
    unsigned long n;

    pthread_mutex_lock(&incident__memo_lock);
    n = incident__walks;
    pthread_mutex_unlock(&incident__memo_lock);
    return n;
}

static void incident__memo_free(struct incident__memo *m)
{
    free(m->key);
    free(m);
}

/* Drops every memo older than the limit. Memo lock held. */
static void incident__memo_sweep(double mono)
{
    struct incident__memo *m, *tmp;

    if (mono - incident__memo_swept < INCIDENT_STORM_MEMO_MS / 1000.0)
        return;
    incident__memo_swept = mono;
    HASH_ITER(hh, incident__memos, m, tmp)
    {
        /* cppcheck cannot follow HASH_ITER's pointer updates. */
        // cppcheck-suppress uninitvar
        if (mono - m->counted > INCIDENT_STORM_MEMO_MS / 1000.0 || mono < m->counted) {
            HASH_DEL(incident__memos, m);
            incident__memo_free(m);
        }
    }
}

void incident_storm_forget(void)
{
    struct incident__memo *m, *tmp;

    pthread_mutex_lock(&incident__memo_lock);
    HASH_ITER(hh, incident__memos, m, tmp)
    {
        HASH_DEL(incident__memos, m);
        incident__memo_free(m);
    }
    incident__walks = 0;
    pthread_mutex_unlock(&incident__memo_lock);
}

static size_t incident__sat_sub(size_t a, size_t b)
{
    return a > b ? a - b : 0;
}

/* What memo m says now, k changes later: 1 a storm, 0 none, -1 it cannot
 * tell. The limit never falls as the protected count grows (a count, or a
 * share rounded up), so the range's ends decide for all of it. */
static int incident__memo_says(const struct incident__memo *m, const struct policy *pol, size_t k)
{
    size_t lo_prot = incident__sat_sub(m->prot, k), hi_prot = m->prot + k;
    size_t hi_down = m->down + k < hi_prot ? m->down + k : hi_prot;

    if (hi_down <= policy_storm_limit(pol, lo_prot))
        return 0;
    if (incident__sat_sub(m->down, k) > policy_storm_limit(pol, hi_prot))
        return 1;
    return -1;
}

/* When the first node whose heartbeat is fresh now turns stale (wall), or
 * INFINITY. Cache read lock held. */
static double incident__stale_at(struct cache *c, double now)
{
    double at = INFINITY;

    for (struct cache_node *n = cache_node_first(c); n; n = cache_node_next(n)) {
        double t = n->heartbeat + HEALTH_HEARTBEAT_STALE_S;

        if (n->heartbeat >= 0 && t >= now && t < at)
            at = t;
    }
    return at;
}

/* Step 3: whether more of policy p's protected VMs are down than its
 * stormLimit allows, exactly as incident_count_down() would say now (see
 * above). *down, *prot and *limit receive the count the answer rests on
 * (those of a memo, when one decided). Cache read lock held. */
static int incident__storm(struct cache *c, const struct cache_policy *p,
                           const struct recover_env *env, double now, size_t *down, size_t *prot,
                           size_t *limit)
{
    struct cache_versions v;
    struct incident__memo *m = NULL;
    char *key;
    double mono = clock_mono();
    int says = -1;

    *down = *prot = *limit = 0;
    /* a share of 100% or more can never be exceeded: no more VMs can be
     * down than are protected */
    if (p->pol.storm.percent && p->pol.storm.value >= 100)
        return 0;
    cache_versions(c, p->ns, &v);
    key = xasprintf("%s/%s", p->ns, p->name);
    pthread_mutex_lock(&incident__memo_lock);
    HASH_FIND_STR(incident__memos, key, m);
    if (m && m->at.policies == v.policies && m->at.nodes == v.nodes &&
        v.vm_changes >= m->at.vm_changes && mono >= m->counted &&
        mono - m->counted <= INCIDENT_STORM_MEMO_MS / 1000.0 && now < m->stale_at) {
        says = incident__memo_says(m, &p->pol, (size_t)(v.vm_changes - m->at.vm_changes));
        *down = m->down;
        *prot = m->prot;
    }
    pthread_mutex_unlock(&incident__memo_lock);
    if (says < 0) {
        double stale_at = incident__stale_at(c, now);

        incident_count_down(c, p, env, now, down, prot);
        says = *down > policy_storm_limit(&p->pol, *prot);
        pthread_mutex_lock(&incident__memo_lock);
        incident__walks++;
        incident__memo_sweep(mono);
        HASH_FIND_STR(incident__memos, key, m);
        if (!m) {
            m = xcalloc(1, sizeof(*m));
            m->key = key;
            key = NULL;
            HASH_ADD_KEYPTR(hh, incident__memos, m->key, strlen(m->key), m);
        }
        m->at = v;
        m->down = *down;
        m->prot = *prot;
        m->counted = mono;
        m->stale_at = stale_at;
        pthread_mutex_unlock(&incident__memo_lock);
    }
    free(key);
    *limit = policy_storm_limit(&p->pol, *prot);
    return says;
}

/* ---- what a reconcile copies out -------------------------------------- */

/* What a replacement built for the job changes of its member, as the
 * decision keeps it (recover.h: bounded). */
struct incident__built {
    char *member;   /* the pool member it was built from */
    cJSON *changes; /* [{"op", "path", "text"}], cut */
    size_t omitted; /* changes cut */
};

struct incident__job {
    const struct recover_env *env;
    struct cache *c; /* for the accept function: read lock held then */
    char *ns, *name, *vm_uid, *rv, *prev_rs;
    long generation;         /* the failed VM's, as read */
    cJSON *labels, *tlabels; /* the failed VM's labels and template labels */
    char *policy, *policy_uid, *sa;
    enum policy_action action;
    enum health_trigger trigger;
    enum health_state state;
    char *failed_uid;
    char reason[HEALTH_REASON_MAX];
    int room;         /* the trigger is about room: check capacity */
    double fail_mono; /* when the cache saw its VMI fail (monotonic), or 0 */
    double start;     /* when the reconcile began (monotonic) */
    /* when each step of an act ended (monotonic), 0 when not reached: the
     * decision's log line splits its latency by them */
    double t_ranked, t_dry, t_halt;
    /* an incident in progress (step 1) */
    char *inc_tmpl; /* the member a halted VM's annotation names */
    /* the decision */
    char *repl_name;
    char decided_at[CLOCK_TEXT_LEN];
    struct recover_pick pick;
    cJSON *ranking;
    char *features_err;
    /* the replacements built, and the changes of the one the decision
     * names (moved into the decision, as the ranking is) */
    struct incident__built *built;
    size_t nbuilt;
    cJSON *changes;
    size_t changes_omitted;
    /* the nodes, for capacity (borrowed from the cache under its lock) */
    struct capacity_node *nodes;
    size_t nnodes;
    int nodes_read;
};

static void incident__job_free(struct incident__job *j)
{
    free(j->ns);
    free(j->name);
    free(j->vm_uid);
    free(j->rv);
    free(j->prev_rs);
    cJSON_Delete(j->labels);
    cJSON_Delete(j->tlabels);
    free(j->policy);
    free(j->policy_uid);
    free(j->sa);
    free(j->failed_uid);
    free(j->inc_tmpl);
    free(j->repl_name);
    recover_pick_free(&j->pick);
    cJSON_Delete(j->ranking);
    free(j->features_err);
    for (size_t i = 0; i < j->nbuilt; i++) {
        free(j->built[i].member);
        cJSON_Delete(j->built[i].changes);
    }
    free(j->built);
    cJSON_Delete(j->changes);
    free(j->nodes);
}

/* The cluster's nodes as capacity reads them. Cache read lock held; the
 * strings stay the cache's, valid until the unlock. */
static void incident__nodes(struct incident__job *j)
{
    if (j->nodes_read)
        return;
    j->nodes_read = 1;
    for (struct cache_node *n = cache_node_first(j->c); n; n = cache_node_next(n)) {
        struct cache_node_use use = cache_node_use(j->c, n->name);
        struct capacity_node *cn;

        j->nodes = xreallocarray(j->nodes, j->nnodes + 1, sizeof(*j->nodes));
        cn = &j->nodes[j->nnodes++];
        cn->name = n->name;
        cn->labels = n->labels;
        cn->taints = n->taints;
        cn->usable = n->ready == CACHE_COND_TRUE && n->kv_schedulable && !n->unschedulable;
        cn->free_cpu = n->alloc_cpu - use.cpu;
        cn->free_mem = n->alloc_mem - use.mem;
        cn->free_pods = n->alloc_pods - (double)use.pods;
    }
}

/* c as a decision keeps it (recover.h): [{"op", "path", "text"}] in
 * order, while RECOVER_CHANGES_MAX items and RECOVER_CHANGES_BYTES of
 * compact JSON allow; *omitted receives the count of the rest. The text is
 * short whatever the member holds (replica_build() quotes and cuts what it
 * names); a path holds the member's keys as they are (up to YAML's 1024
 * bytes each), so one longer than RECOVER_CHANGE_PATH_MAX is left out of
 * its item rather than cut into a pointer to nothing. */
static cJSON *incident__changes(const struct replica_changes *c, size_t *omitted)
{
    cJSON *list = cJSON_CreateArray();
    size_t used = 2, kept = 0; /* used: "[]" */

    *omitted = 0;
    for (size_t i = 0; i < c->n; i++) {
        cJSON *it = cJSON_CreateObject();
        char *text;
        size_t len;

        cJSON_AddStringToObject(it, "op", c->item[i].op);
        if (strlen(c->item[i].path) <= RECOVER_CHANGE_PATH_MAX)
            cJSON_AddStringToObject(it, "path", c->item[i].path);
        cJSON_AddStringToObject(it, "text", c->line[i]);
        text = cJSON_PrintUnformatted(it);
        len = strlen(text) + (kept > 0); /* and the comma before it */
        cJSON_free(text);
        if (kept == RECOVER_CHANGES_MAX || used + len > RECOVER_CHANGES_BYTES) {
            cJSON_Delete(it);
            *omitted = c->n - i;
            break;
        }
        used += len;
        kept++;
        cJSON_AddItemToArray(list, it);
    }
    return list;
}

/* The replacement built from member for the job (the decision's name and
 * time), its changes kept in j->built. Cache read lock held. Returns 0 and
 * *out, or -EINVAL with *err. */
static int incident__build(struct incident__job *j, const char *member, double score, cJSON **out,
                           char **err)
{
    struct cache_member *m = cache_member_find(j->c, j->ns, member);
    char *tmpl = m ? cache_member_template(m) : NULL;
    struct replica_spec s = {j->ns,     j->repl_name, j->name, j->labels,     j->tlabels,
                             j->policy, member,       score,   j->failed_uid, j->decided_at};
    struct replica_changes ch = {0};
    int rc;

    *out = NULL;
    *err = NULL;
    if (!tmpl) {
        *err = xasprintf("pool member %s has no template", member);
        return -EINVAL;
    }
    rc = replica_build(tmpl, &s, out, &ch, err);
    free(tmpl);
    if (rc == 0) {
        struct incident__built *b;

        j->built = xreallocarray(j->built, j->nbuilt + 1, sizeof(*j->built));
        b = &j->built[j->nbuilt++];
        b->member = xstrdup(member);
        b->changes = incident__changes(&ch, &b->omitted);
    }
    replica_changes_free(&ch);
    return rc;
}

/* Forgets the replacement built last (refused: it is never created), so
 * that a pool refused for lack of room does not keep a list per member. */
static void incident__unbuild(struct incident__job *j)
{
    if (!j->nbuilt)
        return;
    j->nbuilt--;
    free(j->built[j->nbuilt].member);
    cJSON_Delete(j->built[j->nbuilt].changes);
}

/* recover_accept_fn: build the candidate's replacement; when the trigger
 * is about room, refuse it when it fits no node. */
static enum sim_reason incident__accept(void *ud, const char *member, double score, cJSON **obj,
                                        char **why)
{
    struct incident__job *j = ud;
    struct capacity_need need;
    char buf[512];

    if (incident__build(j, member, score, obj, why) != 0)
        return SIM_NO_TEMPLATE;
    if (!j->room)
        return SIM_ELIGIBLE;
    incident__nodes(j);
    if (capacity_need_of(*obj, &need) != 0)
        return SIM_ELIGIBLE;
    buf[0] = '\0';
    if (capacity_fit(&need, j->nodes, j->nnodes, buf, sizeof(buf)) < 0) {
        *why = xasprintf("its replacement (%.2f CPU, %.0f MiB) fits no Ready, schedulable node%s%s",
                         need.cpu, need.mem / 1048576.0, *buf ? ": " : "", buf);
        capacity_need_free(&need);
        cJSON_Delete(*obj);
        *obj = NULL;
        incident__unbuild(j);
        return SIM_NO_CAPACITY;
    }
    capacity_need_free(&need);
    return SIM_ELIGIBLE;
}

/* Ranks for the job. Cache read lock held; p valid. Returns 0 or
 * recover_rank()'s error. */
static int incident__rank(const struct recover_env *env, struct recover_ranker *rk,
                          struct incident__job *j, const struct cache_policy *p)
{
    const struct cache_vmi *vmi = NULL;
    struct cache_vm *vm = cache_vm_find(j->c, j->ns, j->name);
    struct features f = {0};
    const char *alias = NULL;
    char *err = NULL;
    int rc;

    if (vm)
        vmi = cache_vm_vmi(j->c, vm);
    if (recover_vm_features(j->c, p, j->name, vmi, &f, &alias, &err) != 0) {
        j->features_err = err ? err : xstrdup("features could not be read");
        err = NULL;
        features_free(&f);
    }
    free(err);
    {
        struct sim_query q = {j->name, alias, &f};

        rc = recover_rank(env->book, rk, j->c, p, &q, incident__accept, j, &j->pick, &j->ranking);
    }
    features_free(&f);
    return rc;
}

/* ---- announcing ------------------------------------------------------- */

static void incident__event(const struct recover_env *env, const struct incident__job *j,
                            int on_policy, int on_vm, const char *type, const char *reason,
                            const char *msg)
{
    struct event_ref pol = {"kvrecover.io/v1alpha1", "RecoveryPolicy", j->ns, j->policy,
                            j->policy_uid};
    struct event_ref vm = {"kubevirt.io/v1", "VirtualMachine", j->ns, j->name, j->vm_uid};

    if (!env->event)
        return;
    if (on_policy)
        env->event(env->ud, &pol, type, reason, msg);
    if (on_vm)
        env->event(env->ud, &vm, type, reason, msg);
}

static double incident__round4(double x)
{
    return round(x * 10000.0) / 10000.0;
}

/* The decision line, the metrics and the book entry: the same facts.
 * Returns 1 when the decision is new (announce it), 0 for a repeat. */
/* Milliseconds from from to to (monotonic seconds), to 0.1 ms. */
static double incident__ms(double from, double to)
{
    return round((to - from) * 1e4) / 10.0;
}

/* Where an act's time went, for its decision's log line: waiting in the
 * queue since the failure was seen, reading and ranking under the cache
 * lock, then each API call (each passes virt-api's webhook). */
static void incident__steps(cJSON *f, const struct incident__job *j, double now)
{
    cJSON *s = cJSON_AddObjectToObject(f, "steps_ms");

    if (j->fail_mono > 0)
        cJSON_AddNumberToObject(s, "queued", incident__ms(j->fail_mono, j->start));
    cJSON_AddNumberToObject(s, "ranked", incident__ms(j->start, j->t_ranked));
    cJSON_AddNumberToObject(s, "dryRun", incident__ms(j->t_ranked, j->t_dry));
    cJSON_AddNumberToObject(s, "halt", incident__ms(j->t_dry, j->t_halt));
    cJSON_AddNumberToObject(s, "create", incident__ms(j->t_halt, now));
}

static int incident__decide(const struct recover_env *env, struct incident__job *j,
                            enum recover_result res, const char *replacement, const char *tmpl,
                            double score)
{
    struct recover_decision d = {0};
    double now = clock_mono();
    cJSON *f;
    char *pkey, *labels;
    int fresh;

    d.ns = xstrdup(j->ns);
    d.policy = xstrdup(j->policy);
    d.failed_vm = xstrdup(j->name);
    d.failed_uid = xstrdup(j->failed_uid);
    d.trigger = j->trigger != HEALTH_NONE ? xstrdup(health_trigger_name(j->trigger)) : NULL;
    d.replacement = xstrdup(replacement);
    d.tmpl = xstrdup(tmpl);
    d.score = tmpl ? incident__round4(score) : 0;
    d.when = clock_wall();
    d.result = res;
    d.ranking = j->ranking;
    j->ranking = NULL;
    d.changes = j->changes;
    d.changes_omitted = j->changes_omitted;
    j->changes = NULL;
    fresh = recover_book_add(env->book, &d);
    if (!fresh)
        return 0;

    pkey = xasprintf("%s/%s", j->ns, j->policy);
    f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "policy", pkey);
    {
        char *vkey = xasprintf("%s/%s", j->ns, j->name);
        cJSON_AddStringToObject(f, "vm", vkey);
        free(vkey);
    }
    cJSON_AddStringToObject(f, "uid", j->failed_uid);
    cJSON_AddStringToObject(f, "trigger", health_trigger_name(j->trigger));
    cJSON_AddStringToObject(f, "signal", j->reason);
    cJSON_AddStringToObject(f, "decision", recover_result_name(res));
    cJSON_AddItemToObject(f, "selected", tmpl ? cJSON_CreateString(tmpl) : cJSON_CreateNull());
    cJSON_AddItemToObject(f, "score",
                          tmpl ? cJSON_CreateNumber(incident__round4(score)) : cJSON_CreateNull());
    cJSON_AddItemToObject(f, "replacement",
                          replacement ? cJSON_CreateString(replacement) : cJSON_CreateNull());
    /* from the failure seen (else from this reconcile's start: a trigger
     * that fired on time, not on an event) to the decision made */
    cJSON_AddNumberToObject(f, "latency_ms",
                            incident__ms(j->fail_mono > 0 ? j->fail_mono : j->start, now));
    if (j->t_halt > 0)
        incident__steps(f, j, now);
    if (j->pick.best && (!tmpl || strcmp(j->pick.best, tmpl) != 0)) {
        cJSON_AddStringToObject(f, "best", j->pick.best);
        cJSON_AddNumberToObject(f, "bestScore", incident__round4(j->pick.best_score));
        cJSON_AddStringToObject(f, "reason", j->pick.best_reason ? j->pick.best_reason : "");
    }
    log_fields(res == RECOVER_NO_CANDIDATE ? LOG_LVL_WARN : LOG_LVL_INFO, "decision", f);

    labels = metrics_labels("policy", pkey, "result", recover_result_name(res));
    metrics_counter_add(METRICS_RECOVERIES, labels, 1);
    free(labels);
    if (res == RECOVER_RECOVERED && j->fail_mono > 0) {
        labels = metrics_labels("policy", pkey, NULL, NULL);
        metrics_histogram_observe(METRICS_RECOVERY_DURATION, labels, now - j->fail_mono);
        free(labels);
    }
    free(pkey);
    return 1;
}

static void incident__changed(const struct recover_env *env, const struct incident__job *j)
{
    if (env->changed && j->policy)
        env->changed(env->ud, j->ns, j->policy);
}

/* Marks the incident blocked for reason; an Event once per change. Returns
 * rc (the error to retry with). */
static int incident__block(const struct recover_env *env, struct incident__job *j,
                           const char *reason, const char *event_reason, const char *msg, int rc)
{
    unsigned tries = 0;

    if (recover_book_block(env->book, j->ns, j->name, j->failed_uid, reason, msg, clock_wall(),
                           &tries)) {
        char *text = xasprintf(
            "VM %s%s%s%s: recovery blocked, %s: %s", j->name, j->trigger != HEALTH_NONE ? " (" : "",
            health_trigger_name(j->trigger), j->trigger != HEALTH_NONE ? ")" : "", reason, msg);

        log_warn("%s", text);
        incident__event(env, j, 1, 1, "Warning", event_reason ? event_reason : "RecoveryBlocked",
                        text);
        free(text);
        incident__changed(env, j);
    } else {
        log_debug("VM %s/%s still blocked (%s), retry %u", j->ns, j->name, reason, tries);
    }
    return rc;
}

/* The Status reason of a refusal, as a blocked reason: QuotaExceeded for
 * a quota, else Forbidden (403) or the API's reason. */
static const char *incident__refusal(int rc, const struct kube_error *err)
{
    if (strstr(err->message, "exceeded quota") || strstr(err->message, "quota"))
        return "QuotaExceeded";
    if (rc == -EACCES)
        return "Forbidden";
    if (rc == -EINVAL)
        return "Invalid";
    return *err->reason ? err->reason : "Unavailable";
}

/* ---- the writes -------------------------------------------------------- */

/* The failed-uid annotation of o, or NULL (borrowed). */
static const char *incident__failed_uid_of(const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "metadata"),
                                         "annotations"),
        CACHE_FAILED_UID_ANNOTATION);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* POSTs obj (a dry run when dry). 409 AlreadyExists is checked: the VM of
 * that name must replace j's failed uid (then 0), else -EEXIST. */
static int incident__create(const struct recover_env *env, struct incident__job *j,
                            const cJSON *obj, int dry, struct kube_error *err)
{
    struct incident_actor as = {j->ns, j->policy, j->sa};
    struct buf path = {0};
    char *p = kube_path(&incident__vms, j->ns, NULL, NULL);
    int rc;

    buf_puts(&path, p);
    free(p);
    if (dry)
        kube_query_add(&path, "dryRun", "All");
    rc = incident_write(env, &as, INCIDENT_WRITE_CREATE, path.data, obj, NULL, err);
    buf_free(&path);
    if (rc == -EEXIST && kube_error_is(err, "AlreadyExists")) {
        cJSON *existing = NULL;
        const char *uid;

        p = kube_path(&incident__vms, j->ns, j->repl_name, NULL);
        rc = kube_get(env->kube, p, &existing, err);
        free(p);
        if (rc == 0) {
            uid = incident__failed_uid_of(existing);
            rc = uid && strcmp(uid, j->failed_uid) == 0 ? 0 : -EEXIST;
            if (rc)
                snprintf(err->message, sizeof(err->message),
                         "VirtualMachine %s exists and is not the replacement for failed uid %s",
                         j->repl_name, j->failed_uid);
        }
        cJSON_Delete(existing);
    }
    return rc;
}

/* The annotations a halt writes: what step 1 finishes the incident from. */
static cJSON *incident__halt_annotations(const struct incident__job *j, const char *member,
                                         double score)
{
    cJSON *ann = cJSON_CreateObject();
    char num[32];

    cJSON_AddStringToObject(ann, CACHE_PREVIOUS_RS_ANNOTATION, j->prev_rs);
    cJSON_AddStringToObject(ann, CACHE_REPLACED_BY_ANNOTATION, j->repl_name);
    cJSON_AddStringToObject(ann, CACHE_FAILED_UID_ANNOTATION, j->failed_uid);
    cJSON_AddStringToObject(ann, CACHE_POLICY_ANNOTATION, j->policy);
    cJSON_AddStringToObject(ann, CACHE_TEMPLATE_ANNOTATION, member);
    snprintf(num, sizeof(num), "%.4f", score);
    cJSON_AddStringToObject(ann, CACHE_SCORE_ANNOTATION, num);
    return ann;
}

/* Appends the JSON patch operation {op, path, value} to ops; value (taken)
 * NULL is JSON null, which a "test" passes for a member that is absent. */
static void incident__op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddItemToObject(o, "value", value ? value : cJSON_CreateNull());
    cJSON_AddItemToArray(ops, o);
}

/* "/metadata/annotations/<key>" as a JSON pointer (RFC 6901: "~" is "~0",
 * "/" is "~1"), into dst of cap bytes (ours are short constants). */
static void incident__annotation_pointer(char *dst, size_t cap, const char *key)
{
    size_t n = (size_t)snprintf(dst, cap, "/metadata/annotations/");

    for (; *key && n + 3 < cap; key++) {
        if (*key == '~' || *key == '/') {
            dst[n++] = '~';
            dst[n++] = *key == '~' ? '0' : '1';
        } else {
            dst[n++] = *key;
        }
    }
    dst[n] = '\0';
}

/* A label map for a "test": the map, or null when it was empty (absent). */
static cJSON *incident__labels_value(const cJSON *labels)
{
    return labels && labels->child ? cJSON_Duplicate(labels, 1) : NULL;
}

/*
 * The halt as a JSON patch whose "test" operations hold exactly what the
 * decision rests on, for a trigger whose evidence is the failed VMI itself
 * (see incident__halt()): the same VM (uid) and spec (generation: the
 * template ranked, the runStrategy, the template labels the replacement
 * copies), not being deleted, not halted by another incident, the labels
 * the replacement copies. The VM's status is not tested: KubeVirt writes it
 * at the moment its VMI fails, which made 8 in 10 halts of the
 * resourceVersion-conditional kind fail with Conflict and cost a round trip.
 * The runStrategy is tested too (a VM on spec.running has none: the patch
 * does not apply) and the annotation map must exist (KubeVirt annotates
 * every VM it has seen); when they are not so, the halt falls back.
 */
static cJSON *incident__halt_json(const struct incident__job *j, const char *member, double score)
{
    cJSON *ops = cJSON_CreateArray(), *ann = incident__halt_annotations(j, member, score);
    const cJSON *a;
    char path[128];

    incident__op(ops, "test", "/metadata/uid", cJSON_CreateString(j->vm_uid));
    incident__op(ops, "test", "/metadata/generation",
                 j->generation > 0 ? cJSON_CreateNumber((double)j->generation) : NULL);
    incident__op(ops, "test", "/metadata/deletionTimestamp", NULL);
    incident__annotation_pointer(path, sizeof(path), CACHE_REPLACED_BY_ANNOTATION);
    incident__op(ops, "test", path, NULL);
    incident__op(ops, "test", "/metadata/labels", incident__labels_value(j->labels));
    incident__op(ops, "test", "/spec/runStrategy", cJSON_CreateString(j->prev_rs));
    cJSON_ArrayForEach(a, ann)
    {
        incident__annotation_pointer(path, sizeof(path), a->string);
        incident__op(ops, "add", path, cJSON_CreateString(a->valuestring));
    }
    incident__op(ops, "replace", "/spec/runStrategy", cJSON_CreateString("Halted"));
    cJSON_Delete(ann);
    return ops;
}

/* Whether the halt may be conditional on what the decision read rather
 * than on the whole resourceVersion: only when the failed VMI is the
 * evidence, which no later write can take back. A crash loop, a restart
 * timeout or a lost node is read from the VM's status or the node's, and a
 * status write may be KubeVirt bringing the VM back: those halt only at the
 * resourceVersion the decision read. */
static int incident__halt_by_test(const struct incident__job *j)
{
    return j->trigger == HEALTH_IMMEDIATE || j->trigger == HEALTH_FAILED_NOT_RESTARTED;
}

/*
 * Halts the failed VM, writing the decision onto it: by_test, as
 * incident__halt_json() says, else as a merge patch conditional on the
 * resourceVersion read. Returns 0, -EEXIST when the VM changed since it was
 * read (409 Conflict), -ESTALE when a by_test patch did not apply (a "test"
 * failed, or the VM's shape is not the one assumed), or another kube errno.
 */
static int incident__halt(const struct recover_env *env, struct incident__job *j, int by_test,
                          const char *member, double score, struct kube_error *err)
{
    struct incident_actor as = {j->ns, j->policy, j->sa};
    char *path = kube_path(&incident__vms, j->ns, j->name, NULL);
    cJSON *patch;
    int rc;

    if (by_test) {
        patch = incident__halt_json(j, member, score);
        rc = incident_write(env, &as, INCIDENT_WRITE_JSON_PATCH, path, patch, NULL, err);
        /* kube-apiserver answers a patch it could not apply with a bare 422:
         * no kind, no name, no causes (an admission refusal names them) */
        if (rc == -EINVAL && err->http_code == 422 && !err->detailed)
            rc = -ESTALE;
    } else {
        cJSON *meta, *spec;

        patch = cJSON_CreateObject();
        meta = cJSON_AddObjectToObject(patch, "metadata");
        spec = cJSON_AddObjectToObject(patch, "spec");
        /* optimistic concurrency: a merge patch carrying the resourceVersion
         * fails with 409 Conflict when the VM changed since it was read */
        cJSON_AddStringToObject(meta, "resourceVersion", j->rv);
        cJSON_AddItemToObject(meta, "annotations", incident__halt_annotations(j, member, score));
        cJSON_AddStringToObject(spec, "runStrategy", "Halted");
        cJSON_AddNullToObject(spec, "running");
        rc = incident_write(env, &as, INCIDENT_WRITE_MERGE_PATCH, path, patch, NULL, err);
    }
    free(path);
    cJSON_Delete(patch);
    return rc;
}

/* The decision about to be recorded carries what the replacement changes
 * of member, when this pass built it (the last build: a second ranking may
 * have built it again). */
static void incident__take_changes(struct incident__job *j, const char *member)
{
    for (size_t i = j->nbuilt; i-- > 0;)
        if (strcmp(j->built[i].member, member) == 0) {
            cJSON_Delete(j->changes);
            j->changes = j->built[i].changes;
            j->changes_omitted = j->built[i].omitted;
            j->built[i].changes = NULL;
            return;
        }
}

/* The replacement exists now: announce it. */
static void incident__recovered(const struct recover_env *env, struct incident__job *j,
                                const char *member, double score)
{
    recover_book_unblock(env->book, j->ns, j->name);
    incident__take_changes(j, member);
    if (incident__decide(env, j, RECOVER_RECOVERED, j->repl_name, member, score)) {
        /* a better-scoring member passed over says why (SharedDisk,
         * NoCapacity, RequiredMismatch...), so nobody wonders */
        int passed_over = j->pick.best && j->pick.best_reason && *j->pick.best_reason &&
                          strcmp(j->pick.best, member) != 0;
        char *msg = xasprintf("VM %s (%s: %s): halted and replaced by VirtualMachine %s from "
                              "pool member %s (score %.4f)%s%s%s%s",
                              j->name, health_trigger_name(j->trigger), j->reason, j->repl_name,
                              member, score, passed_over ? "; ranked higher, " : "",
                              passed_over ? j->pick.best : "", passed_over ? ": " : "",
                              passed_over ? j->pick.best_reason : "");

        incident__event(env, j, 1, 1, "Normal", "Recovered", msg);
        free(msg);
    }
    incident__changed(env, j);
}

/* ---- step 1: an incident in progress ---------------------------------- */

static int incident__finish(const struct recover_env *env, struct incident__job *j,
                            const cJSON *obj, const char *member, double score)
{
    struct kube_error err = {0};
    int rc;

    if (env->leading && !env->leading(env->ud))
        return 0;
    rc = incident__create(env, j, obj, 0, &err);
    if (rc == 0) {
        log_info("created VirtualMachine %s/%s for halted VM %s (failed uid %s)", j->ns,
                 j->repl_name, j->name, j->failed_uid);
        incident__recovered(env, j, member, score);
        return 0;
    }
    if (rc == -EEXIST)
        return incident__block(env, j, "NameTaken", NULL, err.message, rc);
    if (rc == -EACCES || rc == -EINVAL)
        return incident__block(env, j, incident__refusal(rc, &err), NULL, err.message, rc);
    return rc;
}

/* How often a halt refused 409 Conflict is tried again with the VM read
 * anew, and how long each try waits for the cache to see the change. At
 * the moment a VMI fails, KubeVirt writes the VM's status (printableStatus,
 * conditions, startFailure) and so its resourceVersion, usually between
 * kvrecover's read and its halt: starting the reconcile over would repeat
 * the dry run and double the latency (measured: 8 of 10 immediate
 * recoveries hit it on the test cluster). */
#define INCIDENT_HALT_TRIES 3
#define INCIDENT_HALT_WAIT_MS 250

/* Whether the decision still holds for the VM as the cache has it now, at a
 * newer resourceVersion: the same VM (uid) and spec (generation), the same
 * policy protecting it, the same runStrategy and labels (the replacement
 * copies them), and its health still fires for the same failed uid. A
 * status write by KubeVirt
 * passes; an edit, another replica's halt or a deletion does not. After a
 * Conflict (wait_ms > 0) it waits that long at most for the cache to move
 * past the resourceVersion the halt was refused at. Returns 1 (j->rv
 * updated), 0 (the cache has nothing newer), or -1 (the decision no longer
 * holds: reconcile again). */
static int incident__revalidate(const struct recover_env *env, struct incident__job *j,
                                unsigned wait_ms)
{
    struct cache *c = env->cache;
    struct recover_note note;
    int rc = -1;

    for (unsigned waited = 0;; waited += 5) {
        const struct cache_vm *vm;
        int moved;

        cache_rdlock(c);
        vm = cache_vm_find(c, j->ns, j->name);
        moved = !vm || strcmp(vm->resource_version, j->rv) != 0;
        cache_unlock(c);
        if (moved)
            break;
        if (waited >= wait_ms)
            return 0;
        clock_sleep_ms(5);
    }
    recover_book_note(env->book, j->ns, j->name, &note);
    cache_rdlock(c);
    {
        const struct cache_vm *vm = cache_vm_find(c, j->ns, j->name);
        const struct cache_policy *p = vm ? recover_policy_for(c, j->ns, vm->tlabels, NULL) : NULL;
        cJSON *labels = NULL, *tlabels = NULL;
        struct health_verdict v;

        if (!vm || strcmp(vm->uid, j->vm_uid) != 0 || vm->generation != j->generation || vm->inc ||
            !p || !p->valid || strcmp(p->uid, j->policy_uid) != 0 || p->pol.action != j->action ||
            strcmp(cache_run_strategy_name(vm->run_strategy), j->prev_rs) != 0)
            goto unlock;
        labels = cache_labels_json(vm->labels);
        tlabels = cache_labels_json(vm->tlabels);
        if (cJSON_Compare(labels, j->labels, 1) && cJSON_Compare(tlabels, j->tlabels, 1)) {
            incident_health(c, p, vm, note.down_seen, clock_wall(), &v);
            if (v.trigger == j->trigger && v.failed_uid &&
                strcmp(v.failed_uid, j->failed_uid) == 0) {
                free(j->rv);
                j->rv = xstrdup(vm->resource_version);
                rc = 1;
            }
        }
        cJSON_Delete(labels);
        cJSON_Delete(tlabels);
    }
unlock:
    cache_unlock(c);
    recover_note_free(&note);
    if (rc < 0)
        log_info("VM %s/%s changed while being halted: reconciling again", j->ns, j->name);
    return rc;
}

/* What step 1 finds at the API server, not in the cache, which lags. */
enum incident__live {
    INCIDENT_LIVE_GONE,    /* the halted VM is gone or changed: create nothing */
    INCIDENT_LIVE_MISSING, /* it is still the halted one, and has no replacement */
    INCIDENT_LIVE_MADE,    /* its replacement exists already */
};

/* Step 1 decides from the cache: a halted VM whose replacement it does not
 * hold. Usually the replacement's ADDED has not arrived yet (the halt's
 * MODIFIED queued the VM again); when the VM and its replacement were
 * deleted since, a create would make a replacement for a VM that no longer
 * exists, which nothing ever deletes (bench_soak's 2,001 for 2,000). So
 * read the replacement first (there: done, without a create), then the
 * halted VM: the create is made only while it has the same uid, is not
 * being deleted, is still Halted, and its annotations name this replacement
 * for this failed uid. Reading in that order, a deletion of both at any
 * moment creates nothing. Returns an incident__live or negative errno. */
static int incident__live(const struct recover_env *env, const struct incident__job *j)
{
    struct kube_error err = {0};
    cJSON *o = NULL;
    const cJSON *meta, *ann, *rb, *uid, *rs;
    const char *why = NULL, *fu;
    char *path = kube_path(&incident__vms, j->ns, j->repl_name, NULL);
    int rc = kube_get(env->kube, path, &o, &err);

    free(path);
    fu = rc == 0 ? incident__failed_uid_of(o) : NULL;
    if (fu && strcmp(fu, j->failed_uid) == 0) {
        cJSON_Delete(o);
        return INCIDENT_LIVE_MADE;
    }
    cJSON_Delete(o);
    o = NULL;
    if (rc && rc != -ENOENT)
        return rc;
    /* absent, or a VM of another's (the create says NameTaken) */
    path = kube_path(&incident__vms, j->ns, j->name, NULL);
    rc = kube_get(env->kube, path, &o, &err);
    free(path);
    if (rc == -ENOENT) {
        why = "was deleted";
    } else if (rc == 0) {
        meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
        uid = cJSON_GetObjectItemCaseSensitive(meta, "uid");
        rb = cJSON_GetObjectItemCaseSensitive(ann, CACHE_REPLACED_BY_ANNOTATION);
        fu = incident__failed_uid_of(o);
        rs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spec"),
                                              "runStrategy");
        if (!cJSON_IsString(uid) || strcmp(uid->valuestring, j->vm_uid) != 0)
            why = "was deleted (a VM of its name has another uid)";
        else if (cJSON_GetObjectItemCaseSensitive(meta, "deletionTimestamp"))
            why = "is being deleted";
        else if (!cJSON_IsString(rs) || strcmp(rs->valuestring, "Halted") != 0)
            why = "is no longer halted";
        else if (!cJSON_IsString(rb) || strcmp(rb->valuestring, j->repl_name) != 0 || !fu ||
                 strcmp(fu, j->failed_uid) != 0)
            why = "no longer names this replacement";
    }
    cJSON_Delete(o);
    if (rc && rc != -ENOENT)
        return rc;
    if (!why)
        return INCIDENT_LIVE_MISSING;
    log_info("VM %s/%s %s: its replacement %s (failed uid %s) is not created", j->ns, j->name, why,
             j->repl_name, j->failed_uid);
    return INCIDENT_LIVE_GONE;
}

/* ---- the reconcile ---------------------------------------------------- */

/* Whether a halted VM's annotations are ours: the replacement's name is the
 * one its failed uid gives. Anyone who may patch a VM may write these
 * annotations; a forged replaced-by must not make kvrecover create a VM of
 * a name the tenant chose. */
static int incident__ours(const struct cache_vm *vm)
{
    char *name = recover_replacement_name(vm->name, vm->inc->failed_uid);
    int ours = strcmp(name, vm->inc->replaced_by) == 0;

    if (!ours)
        log_debug("VM %s/%s: kvrecover.io/replaced-by %s is not the name failed uid %s gives: "
                  "not an incident of kvrecover's",
                  vm->ns, vm->name, vm->inc->replaced_by, vm->inc->failed_uid);
    free(name);
    return ours;
}

/* What the reconcile does after the unlock. */
enum incident__next {
    INCIDENT_NOTHING,
    INCIDENT_FINISH,    /* step 1: create the replacement of a halted VM */
    INCIDENT_DONE,      /* step 1: the replacement exists */
    INCIDENT_NAMETAKEN, /* step 1: its name belongs to another VM */
    INCIDENT_NOMEMBER,  /* step 1: no member to build it from any more */
    INCIDENT_STORM,     /* hold */
    INCIDENT_ACT,       /* a trigger, ranked */
};

int incident_reconcile(const struct recover_env *env, struct recover_ranker *rk, const char *ns,
                       const char *name, uint64_t *requeue_ms)
{
    struct cache *c = env->cache;
    struct incident__job j = {0};
    struct cache_vm *vm;
    struct cache_policy *p = NULL;
    struct recover_note note;
    struct health_verdict v;
    enum incident__next next = INCIDENT_NOTHING;
    cJSON *finish_obj = NULL;
    char *finish_member = NULL, *msg = NULL, *err = NULL;
    double now = clock_wall(), finish_score = 0;
    size_t down = 0, prot = 0, limit = 0;
    int rc = 0, was_down;

    *requeue_ms = 0;
    j.start = clock_mono();
    j.env = env;
    j.c = c;
    j.ns = xstrdup(ns);
    j.name = xstrdup(name);
    clock_format(now, j.decided_at);
    was_down = recover_book_note(env->book, ns, name, &note);

    cache_rdlock(c);
    vm = cache_vm_find(c, ns, name);
    if (!vm) {
        /* deleted: forget it (the controller's delete handler does too) */
        cache_unlock(c);
        recover_note_free(&note);
        if (was_down)
            recover_book_forget_vm(env->book, ns, name);
        incident__job_free(&j);
        return 0;
    }
    j.vm_uid = xstrdup(vm->uid);
    j.rv = xstrdup(vm->resource_version);
    j.generation = vm->generation;
    j.prev_rs = xstrdup(cache_run_strategy_name(vm->run_strategy));
    j.labels = cache_labels_json(vm->labels);
    j.tlabels = cache_labels_json(vm->tlabels);

    if (vm->run_strategy == CACHE_RS_HALTED && vm->inc && vm->inc->replaced_by &&
        vm->inc->failed_uid && incident__ours(vm)) {
        /* step 1: halted by us */
        struct cache_vm *r = cache_vm_find(c, ns, vm->inc->replaced_by);

        /* the policy protecting it now: never one an annotation names */
        p = recover_policy_for(c, ns, vm->tlabels, NULL);
        j.failed_uid = xstrdup(vm->inc->failed_uid);
        j.repl_name = xstrdup(vm->inc->replaced_by);
        j.inc_tmpl = xstrdup(vm->inc->tmpl);
        j.policy = xstrdup(p ? p->name : vm->inc->policy);
        j.policy_uid = xstrdup(p ? p->uid : NULL);
        j.sa = xstrdup(p ? p->pol.service_account : NULL);
        snprintf(j.reason, sizeof(j.reason), "halted by kvrecover, replaced by %s",
                 vm->inc->replaced_by);
        if (r && r->repl && r->repl->failed_uid &&
            strcmp(r->repl->failed_uid, vm->inc->failed_uid) == 0) {
            next = INCIDENT_DONE;
            finish_member = xstrdup(r->repl->tmpl ? r->repl->tmpl : vm->inc->tmpl);
            finish_score = r->repl->score >= 0 ? r->repl->score : 0;
        } else if (r) {
            next = INCIDENT_NAMETAKEN;
        } else if (p && p->valid) {
            next = INCIDENT_FINISH;
            finish_score = vm->inc->score >= 0 ? vm->inc->score : 0;
            if (vm->inc->tmpl &&
                incident__build(&j, vm->inc->tmpl, finish_score, &finish_obj, &err) == 0) {
                finish_member = xstrdup(vm->inc->tmpl);
            } else {
                /* the member chosen at halt time is gone: rank again */
                free(err);
                err = NULL;
                if (incident__rank(env, rk, &j, p) == 0 && j.pick.nsel > 0) {
                    finish_member = xstrdup(j.pick.sel[0]);
                    finish_score = j.pick.sel_score[0];
                    finish_obj = j.pick.sel_obj[0];
                    j.pick.sel_obj[0] = NULL;
                } else {
                    next = INCIDENT_NOMEMBER;
                }
            }
        }
        /* Finishing an incident this process has not announced yet (its
         * first create timed out, or the process restarted): the decision
         * it records carries the failure's time and, when the member
         * chosen at halt time still ranks first, the ranking, as if the
         * whole incident had run in one pass. */
        if (vm->last_failed_uid && strcmp(vm->last_failed_uid, j.failed_uid) == 0)
            j.fail_mono = vm->last_failed_mono;
        if (finish_member && !j.ranking && p && p->valid &&
            !(note.decided_uid && strcmp(note.decided_uid, j.failed_uid) == 0) &&
            (incident__rank(env, rk, &j, p) != 0 || j.pick.nsel == 0 ||
             strcmp(j.pick.sel[0], finish_member) != 0)) {
            cJSON_Delete(j.ranking);
            j.ranking = NULL;
        }
        goto unlock;
    }

    p = recover_policy_for(c, ns, vm->tlabels, NULL);
    if (!p)
        goto unlock;
    j.policy = xstrdup(p->name);
    j.policy_uid = xstrdup(p->uid);
    j.sa = xstrdup(p->pol.service_account);
    j.action = p->pol.action;
    incident_health(c, p, vm, note.down_seen, now, &v);
    j.trigger = v.trigger;
    j.state = v.state;
    memcpy(j.reason, v.reason, sizeof(j.reason));
    if (v.not_running && note.down_seen <= 0)
        recover_book_set_down(env->book, ns, name, now);
    else if (!v.not_running && note.down_seen > 0)
        recover_book_set_down(env->book, ns, name, 0);
    if (v.trigger == HEALTH_NONE) {
        *requeue_ms = v.wait_ms;
        goto unlock;
    }
    j.failed_uid = xstrdup(v.failed_uid);
    j.room =
        v.trigger == HEALTH_NODE_LOSS || (v.trigger == HEALTH_RESTART_TIMEOUT && vm->printable &&
                                          strcmp(vm->printable, "ErrorUnschedulable") == 0);
    /* when this process saw the failure: the latency of the decision */
    if (vm->last_failed_uid && strcmp(vm->last_failed_uid, j.failed_uid) == 0)
        j.fail_mono = vm->last_failed_mono;
    /* step 3: the storm check */
    if (incident__storm(c, p, env, now, &down, &prot, &limit)) {
        next = INCIDENT_STORM;
        goto unlock;
    }
    j.repl_name = recover_replacement_name(j.name, j.failed_uid);
    if (incident__rank(env, rk, &j, p) != 0) {
        rc = -EAGAIN;
        goto unlock;
    }
    next = INCIDENT_ACT;
unlock:
    cache_unlock(c);
    recover_note_free(&note);

    switch (next) {
    case INCIDENT_NOTHING:
        if (rc == 0 && j.trigger == HEALTH_NONE && j.policy &&
            recover_book_unblock(env->book, ns, name))
            incident__changed(env, &j);
        goto out;
    case INCIDENT_DONE:
        if (finish_member)
            incident__recovered(env, &j, finish_member, finish_score);
        goto out;
    case INCIDENT_NAMETAKEN:
        msg = xasprintf("VirtualMachine %s exists and is not the replacement for failed uid %s",
                        j.repl_name, j.failed_uid);
        rc = incident__block(env, &j, "NameTaken", NULL, msg, -EEXIST);
        goto out;
    case INCIDENT_FINISH:
        rc = incident__live(env, &j);
        if (rc == INCIDENT_LIVE_MADE)
            incident__recovered(env, &j, finish_member, finish_score);
        else if (rc == INCIDENT_LIVE_MISSING)
            rc = incident__finish(env, &j, finish_obj, finish_member, finish_score);
        if (rc > 0)
            rc = 0;
        goto out;
    case INCIDENT_NOMEMBER:
        /* halted already: retried until a member can build it */
        msg = xasprintf("halted, but no pool member is left to build its replacement %s from "
                        "(the one chosen, %s, is gone or invalid)",
                        j.repl_name, j.inc_tmpl ? j.inc_tmpl : "none");
        rc = incident__block(env, &j, "NoEligibleCandidate", "NoEligibleCandidate", msg, -EAGAIN);
        goto out;
    case INCIDENT_STORM:
        if (recover_book_storm(env->book, ns, j.policy, 1)) {
            msg = xasprintf("%zu of %zu protected VMs are down, more than stormLimit allows "
                            "(%zu): kvrecover acts on none of them until fewer are down or an "
                            "admin raises spec.stormLimit",
                            down, prot, limit);
            log_warn("policy %s/%s: %s", ns, j.policy, msg);
            incident__event(env, &j, 1, 0, "Warning", "StormHold", msg);
            free(msg);
        }
        msg = xasprintf("%zu of %zu protected VMs down, stormLimit allows %zu", down, prot, limit);
        recover_book_block(env->book, ns, name, j.failed_uid, "StormHold", msg, now, NULL);
        incident__changed(env, &j);
        *requeue_ms = INCIDENT_STORM_RECHECK_MS;
        goto out;
    case INCIDENT_ACT:
        break;
    }
    (void)recover_book_storm(env->book, ns, j.policy, 0); /* no storm now */
    j.t_ranked = clock_mono();

    /* step 5: no eligible candidate: do not halt */
    if (j.pick.nsel == 0) {
        msg = xasprintf("no eligible pool member (best: %s%s%s)%s%s%s%s",
                        j.pick.best ? j.pick.best : "none, the pool is empty",
                        j.pick.best_reason && *j.pick.best_reason ? ", " : "",
                        j.pick.best_reason ? j.pick.best_reason : "",
                        j.pick.refused ? "; refused: " : "", j.pick.refused ? j.pick.refused : "",
                        j.features_err ? "; features: " : "", j.features_err ? j.features_err : "");
        incident__decide(env, &j, RECOVER_NO_CANDIDATE, NULL, NULL, 0);
        rc = incident__block(env, &j, "NoEligibleCandidate", "NoEligibleCandidate", msg, -EAGAIN);
        goto out;
    }
    /* step 6: DryRun */
    if (j.action == POLICY_DRYRUN) {
        incident__take_changes(&j, j.pick.sel[0]);
        if (incident__decide(env, &j, RECOVER_DRYRUN, j.repl_name, j.pick.sel[0],
                             j.pick.sel_score[0])) {
            msg = xasprintf("VM %s (%s: %s): would halt it and create VirtualMachine %s from pool "
                            "member %s (score %.4f); action is DryRun, nothing written",
                            j.name, health_trigger_name(j.trigger), j.reason, j.repl_name,
                            j.pick.sel[0], j.pick.sel_score[0]);
            incident__event(env, &j, 1, 1, "Normal", "DryRun", msg);
        }
        recover_book_unblock(env->book, ns, name);
        incident__changed(env, &j);
        goto out;
    }
    if (env->leading && !env->leading(env->ud)) {
        log_warn("not leading: VM %s/%s left to the leader", ns, name);
        goto out;
    }
    /* step 7: dry-run create, halt, create */
    for (size_t i = 0; i < j.pick.nsel; i++) {
        struct kube_error kerr = {0};
        const cJSON *obj = j.pick.sel_obj[i];
        unsigned wait_ms;
        int by_test;

        if (!obj)
            continue;
        rc = incident__create(env, &j, obj, 1, &kerr);
        if (rc == -EINVAL) {
            /* admission refuses this member's replacement: the next one */
            free(msg);
            msg = xasprintf("pool member %s: the API server refuses its replacement: %s",
                            j.pick.sel[i], kerr.message);
            log_warn("%s", msg);
            incident__event(env, &j, 1, 0, "Warning", "InvalidPoolMember", msg);
            continue;
        }
        if (rc == -EEXIST) {
            rc = incident__block(env, &j, "NameTaken", NULL, kerr.message, rc);
            goto out;
        }
        if (rc == -EACCES) {
            rc = incident__block(env, &j, incident__refusal(rc, &kerr), NULL, kerr.message, rc);
            goto out;
        }
        if (rc)
            goto out; /* the API server: retried with backoff */
        /* admitted (or made already for this failed uid) */
        j.t_dry = clock_mono();
        /* the halt is conditional on what the decision read (see
         * incident__halt()); after a Conflict, at a newer resourceVersion
         * (KubeVirt wrote the status meanwhile) when the decision still
         * holds at it, else the reconcile starts over */
        by_test = incident__halt_by_test(&j);
        wait_ms = 0;
        for (int t = 0;; t++) {
            int fresh = incident__revalidate(env, &j, wait_ms);

            if (fresh < 0) {
                rc = -EAGAIN; /* the decision no longer holds */
                break;
            }
            if (wait_ms && !fresh) {
                rc = -EEXIST; /* refused, and the cache has nothing newer */
                break;
            }
            rc = incident__halt(env, &j, by_test, j.pick.sel[i], j.pick.sel_score[i], &kerr);
            if (t + 1 == INCIDENT_HALT_TRIES)
                break;
            if (rc == -ESTALE) {
                /* a "test" failed or the VM is not shaped as assumed: the
                 * resourceVersion-conditional halt now, at once (a change
                 * the cache has not seen yet gets Conflict there) */
                log_debug("VM %s/%s: halt not applied (try %d): conditional on the "
                          "resourceVersion now",
                          ns, name, t + 1);
                by_test = 0;
                continue;
            }
            if (rc != -EEXIST)
                break;
            log_debug("VM %s/%s: halt refused, Conflict (try %d): reading it again", ns, name,
                      t + 1);
            wait_ms = INCIDENT_HALT_WAIT_MS;
        }
        if (rc == -EEXIST || rc == -ESTALE) {
            /* Conflict (or a patch that did not apply) on the last try,
             * or the cache shows nothing newer: read it again and start
             * over */
            log_info("VM %s/%s changed while being halted: reconciling again", ns, name);
            rc = -EAGAIN;
            goto out;
        }
        if (rc == -EAGAIN)
            goto out;
        if (rc == -ENOENT) {
            rc = 0;
            goto out;
        }
        if (rc == -EACCES || rc == -EINVAL) {
            rc = incident__block(env, &j, incident__refusal(rc, &kerr), NULL, kerr.message, rc);
            goto out;
        }
        if (rc)
            goto out;
        j.t_halt = clock_mono();
        if (recover_book_once(env->book, ns, name, j.failed_uid)) {
            free(msg);
            msg =
                xasprintf("VM %s (%s: %s): halted (runStrategy %s -> Halted) to be replaced by "
                          "%s",
                          j.name, health_trigger_name(j.trigger), j.reason, j.prev_rs, j.repl_name);
            log_info("%s", msg);
            incident__event(env, &j, 0, 1, "Normal", "Halted", msg);
        }
        rc = incident__finish(env, &j, obj, j.pick.sel[i], j.pick.sel_score[i]);
        goto out;
    }
    /* every candidate refused by admission */
    incident__decide(env, &j, RECOVER_NO_CANDIDATE, NULL, NULL, 0);
    rc = incident__block(env, &j, "NoEligibleCandidate", "NoEligibleCandidate",
                         "the API server refuses the replacement of every eligible pool member",
                         -EAGAIN);
out:
    free(msg);
    free(err);
    free(finish_member);
    cJSON_Delete(finish_obj);
    incident__job_free(&j);
    return rc;
}
