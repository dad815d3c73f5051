/*
 * Shared rig of the controller's reconcile tests (test_recover, test_capture,
 * test_status): a cache filled with the paper's case as the API server sent
 * it (tests/fixtures/ctl-*.json, namespace fx), a small in-memory API server
 * on fakeapi (POST stores, a dry-run POST only answers, GET reads, PATCH is
 * recorded and applied to a stored object as ctl_patch() says, 409
 * AlreadyExists for a name taken, or a forced status for every POST, dry run
 * or PATCH; the identity of every write is recorded, and deny_as refuses
 * a request made as anyone else as kube-apiserver does when impersonation
 * was not granted), an Event sink that records "Reason Kind/name" lines,
 * and the recover_env tying them together.
 */
#ifndef KVR_CTL_TEST_H
#define KVR_CTL_TEST_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "json_patch.h"
#include "kube/kube.h"
#include "reconcile/cache.h"
#include "reconcile/recover.h"

struct ctl_rig {
    struct fake_server *srv;
    struct kube *kube;
    struct cache *cache;
    struct recover_book *book;
    struct recover_ranker *rk;
    struct recover_env env;
    pthread_mutex_t lock;
    cJSON *store;        /* path -> object */
    cJSON *patches;      /* [{"path":..., "body":...}] */
    cJSON *events;       /* ["Reason Kind/name: message"] */
    cJSON *changed;      /* ["ns/policy"] */
    int post_status;     /* answer every POST with this status (0: store) */
    int dry_status;      /* answer every dry-run POST with this status (0: as a POST) */
    int patch_status;    /* answer every PATCH with this status (0: record it) */
    int patch_conflicts; /* answer the next N PATCHes 409 Conflict, calling
                            on_conflict (if set) before each answer */
    void (*on_conflict)(struct ctl_rig *r);
    int posts, gets; /* requests counted (dry runs not in posts) */
    int dry_posts;   /* POSTs with dryRun=All */
    int leading;     /* what env->leading says */
    cJSON *write_as; /* per POST (dry runs too) and PATCH, in order: its
                        Impersonate-* header lines, "" when none */
    int deny_as;     /* answer a request with Impersonate-* headers 403 */
};

/* The 403 kube-apiserver answers when the client may not impersonate. */
#define CTL_DENY_AS_MESSAGE                                                                        \
    "serviceaccounts \\\"x\\\" is forbidden: User \\\"system:serviceaccount:kvrecover-system:"     \
    "kvrecover-controller\\\" cannot impersonate resource \\\"serviceaccounts\\\" in API group "   \
    "\\\"\\\" in the namespace \\\"fx\\\""

static inline cJSON *ctl_load(const char *name)
{
    struct buf b = {0};
    cJSON *o = NULL;

    if (buf_read_file(&b, harness_fixture(name), 1 << 20) == 0)
        o = cJSON_Parse(b.data);
    buf_free(&b);
    return o;
}

/* Applies merge patch (RFC 7386) patch to doc. */
static inline void ctl_merge(cJSON *doc, const cJSON *patch)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, patch)
    {
        cJSON *cur = cJSON_GetObjectItemCaseSensitive(doc, it->string);

        if (cJSON_IsNull(it)) {
            cJSON_DeleteItemFromObjectCaseSensitive(doc, it->string);
        } else if (cJSON_IsObject(it) && cJSON_IsObject(cur)) {
            ctl_merge(cur, it);
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(doc, it->string);
            cJSON_AddItemToObject(doc, it->string, cJSON_Duplicate(it, 1));
        }
    }
}

static inline void ctl_set_str(cJSON *parent, const char *key, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    cJSON_AddStringToObject(parent, key, v);
}

static inline cJSON *ctl_meta(cJSON *o)
{
    return cJSON_GetObjectItemCaseSensitive(o, "metadata");
}

static inline const char *ctl_reason(int code)
{
    switch (code) {
    case 403:
        return "Forbidden";
    case 409:
        return "Conflict";
    case 422:
        return "Invalid";
    default:
        return "InternalError";
    }
}

static inline char *ctl_status_body(int code, const char *reason)
{
    return xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                     "\"message\":\"%s from the fake\",\"reason\":\"%s\",\"code\":%d}",
                     reason, reason, code);
}

/*
 * A PATCH the rig answers itself: recorded in r->patches as {path, type,
 * body, ops} (body: for a JSON patch, the merge patch it amounts to; ops:
 * the operations as sent). When the store holds the object, the patch is
 * applied to it as kube-apiserver would: a merge patch carrying another
 * resourceVersion is 409 Conflict, a JSON patch whose test fails a bare
 * 422; an applied patch moves the stored resourceVersion on by one.
 */
static inline int ctl_patch(struct ctl_rig *r, const char *path, const struct fake_req *req,
                            char **out)
{
    cJSON *body = cJSON_Parse(req->body),
          *stored = cJSON_GetObjectItemCaseSensitive(r->store, path);
    int json = strstr(req->content_type, "json-patch") != NULL;
    cJSON *p = cJSON_CreateObject(), *view = json ? cJSON_CreateObject() : NULL;
    cJSON *doc = stored ? cJSON_Duplicate(stored, 1) : NULL;
    int status = 200;

    cJSON_AddStringToObject(p, "path", path);
    cJSON_AddStringToObject(p, "type", json ? "json" : "merge");
    if (json) {
        const cJSON *op;

        cJSON_ArrayForEach(op, body)
        {
            if (json_patch_op(doc, view, op) < 0)
                status = 422;
        }
        cJSON_AddItemToObject(p, "body", view);
        cJSON_AddItemToObject(p, "ops", body);
    } else {
        const char *rv = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(ctl_meta(body), "resourceVersion"));
        const char *now = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(ctl_meta(doc), "resourceVersion"));

        if (doc && rv && now && strcmp(rv, now) != 0)
            status = 409;
        else if (doc)
            ctl_merge(doc, body);
        cJSON_AddItemToObject(p, "body", body);
    }
    if (status == 200) {
        cJSON_AddItemToArray(r->patches, p);
        if (doc) {
            const char *now = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(ctl_meta(doc), "resourceVersion"));
            char next[32];

            snprintf(next, sizeof(next), "%ld", now ? strtol(now, NULL, 10) + 1 : 1);
            ctl_set_str(ctl_meta(doc), "resourceVersion", next);
            cJSON_ReplaceItemInObjectCaseSensitive(r->store, path, doc);
            doc = NULL;
        }
        *out = xstrdup(req->body);
    } else {
        cJSON_Delete(p);
        *out = status == 409 ? ctl_status_body(409, "Conflict") : xstrdup(JSON_PATCH_NOT_APPLIED);
    }
    cJSON_Delete(doc);
    return status;
}

static inline void ctl_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct ctl_rig *r = ud;
    char path[2048], *q, *out = NULL;
    int status = 200, dry;

    snprintf(path, sizeof(path), "%s", req->path);
    q = strchr(path, '?');
    dry = q && strstr(q, "dryRun=All") != NULL;
    if (q)
        *q = '\0';
    pthread_mutex_lock(&r->lock);
    if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PATCH") == 0)
        cJSON_AddItemToArray(r->write_as, cJSON_CreateString(req->impersonate));
    if (r->deny_as && req->impersonate[0]) {
        status = 403;
        out = xstrdup("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                      "\"message\":\"" CTL_DENY_AS_MESSAGE "\",\"reason\":\"Forbidden\","
                      "\"code\":403}");
    } else if (strcmp(req->method, "POST") == 0) {
        cJSON *body = cJSON_Parse(req->body);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ctl_meta(body), "name");
        char *key = xasprintf("%s/%s", path, cJSON_IsString(name) ? name->valuestring : "?");
        int forced = dry ? r->dry_status : r->post_status;

        if (dry)
            r->dry_posts++;
        else
            r->posts++;
        if (forced) {
            status = forced;
            out = ctl_status_body(status, ctl_reason(status));
            cJSON_Delete(body);
        } else if (dry && !cJSON_GetObjectItemCaseSensitive(r->store, key)) {
            status = 201;
            out = cJSON_PrintUnformatted(body);
            cJSON_Delete(body);
        } else if (cJSON_GetObjectItemCaseSensitive(r->store, key)) {
            status = 409;
            out = ctl_status_body(409, "AlreadyExists");
            cJSON_Delete(body);
        } else {
            status = 201;
            out = cJSON_PrintUnformatted(body);
            cJSON_AddItemToObject(r->store, key, body);
        }
        free(key);
    } else if (strcmp(req->method, "GET") == 0) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->store, path);

        r->gets++;
        if (o) {
            out = cJSON_PrintUnformatted(o);
        } else {
            status = 404;
            out = ctl_status_body(404, "NotFound");
        }
    } else if (strcmp(req->method, "PATCH") == 0 && r->patch_conflicts > 0) {
        /* what changed the VM meanwhile, as the watch would deliver it */
        r->patch_conflicts--;
        if (r->on_conflict) {
            pthread_mutex_unlock(&r->lock);
            r->on_conflict(r);
            pthread_mutex_lock(&r->lock);
        }
        status = 409;
        out = ctl_status_body(status, ctl_reason(status));
    } else if (strcmp(req->method, "PATCH") == 0 && r->patch_status) {
        status = r->patch_status;
        out = ctl_status_body(status, ctl_reason(status));
    } else if (strcmp(req->method, "PATCH") == 0) {
        status = ctl_patch(r, path, req, &out);
    } else {
        status = 405;
        out = ctl_status_body(405, "MethodNotAllowed");
    }
    pthread_mutex_unlock(&r->lock);
    fake_reply(c, status, NULL, out);
    free(out);
}

static inline void ctl_event(void *ud, const struct event_ref *obj, const char *type,
                             const char *reason, const char *message)
{
    struct ctl_rig *r = ud;
    char *line = xasprintf("%s %s %s/%s: %s", type, reason, obj->kind, obj->name, message);

    pthread_mutex_lock(&r->lock);
    cJSON_AddItemToArray(r->events, cJSON_CreateString(line));
    pthread_mutex_unlock(&r->lock);
    free(line);
}

static inline int ctl_leading(void *ud)
{
    return ((struct ctl_rig *)ud)->leading;
}

static inline void ctl_changed(void *ud, const char *ns, const char *policy)
{
    struct ctl_rig *r = ud;
    char *k = xasprintf("%s/%s", ns, policy);

    pthread_mutex_lock(&r->lock);
    cJSON_AddItemToArray(r->changed, cJSON_CreateString(k));
    pthread_mutex_unlock(&r->lock);
    free(k);
}

/* Puts every item of a List fixture into the cache with put(). */
static inline int ctl_put_list(struct ctl_rig *r, const char *fixture,
                               int (*put)(struct cache *, const cJSON *))
{
    cJSON *list = ctl_load(fixture), *it;
    int n = 0;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
    {
        if (put(r->cache, it) >= 0)
            n++;
    }
    cJSON_Delete(list);
    return n;
}

/* vm-001's uid in ctl-vm-list.json */
#define CTL_VM001_UID "070c05da-2d06-4519-9bfa-5ab4d9c66026"

/* Makes VMI o controlled by VM name/uid, as KubeVirt writes it. */
static inline void ctl_own(cJSON *o, const char *name, const char *uid)
{
    cJSON *refs, *ref;

    if (!o)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(ctl_meta(o), "ownerReferences");
    refs = cJSON_AddArrayToObject(ctl_meta(o), "ownerReferences");
    ref = cJSON_CreateObject();
    cJSON_AddStringToObject(ref, "apiVersion", "kubevirt.io/v1");
    cJSON_AddStringToObject(ref, "kind", "VirtualMachine");
    cJSON_AddStringToObject(ref, "name", name);
    cJSON_AddStringToObject(ref, "uid", uid);
    cJSON_AddTrueToObject(ref, "controller");
    cJSON_AddTrueToObject(ref, "blockOwnerDeletion");
    cJSON_AddItemToArray(refs, ref);
}

/* The paper's case in namespace fx: policy paper, five members, five VMs,
 * and vm-001's VMI in phase Failed. Returns 0, or -1 when a fixture is
 * missing or the fake server does not start. */
static inline int ctl_up(struct ctl_rig *r)
{
    static const struct kube_options fast = {
        .qps = -1, .max_retries = 1, .backoff_ms = 10, .max_backoff_ms = 20, .timeout_ms = 5000};
    struct kubeconfig *cfg;
    cJSON *pol, *vmi;
    char *err = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->store = cJSON_CreateObject();
    r->patches = cJSON_CreateArray();
    r->events = cJSON_CreateArray();
    r->changed = cJSON_CreateArray();
    r->write_as = cJSON_CreateArray();
    r->leading = 1;
    r->srv = fake_start(ctl_handler, r);
    if (!r->srv)
        return -1;
    cfg = fake_kubeconfig(r->srv, NULL);
    rc = kube_new(cfg, &fast, &r->kube, &err);
    kubeconfig_free(cfg);
    free(err);
    if (rc)
        return -1;
    r->cache = cache_new();
    r->book = recover_book_new();
    r->rk = recover_ranker_new();
    r->env = (struct recover_env){r->cache,    r->kube,     r->book, ctl_event,
                                  ctl_leading, ctl_changed, r,       NULL};
    pol = ctl_load("ctl-policy.json");
    vmi = ctl_load("ctl-vmi-failed.json");
    /* as KubeVirt makes it: controlled by VM vm-001 of the VM fixture */
    ctl_own(vmi, "vm-001", CTL_VM001_UID);
    if (!pol || !vmi || cache_policy_put(r->cache, pol) < 0 ||
        cache_vmi_put(r->cache, vmi, clock_wall(), clock_mono()) < 0 ||
        ctl_put_list(r, "ctl-pool-list.json", cache_member_put) != 5 ||
        ctl_put_list(r, "ctl-vm-list.json", cache_vm_put) != 5)
        rc = -1;
    cJSON_Delete(pol);
    cJSON_Delete(vmi);
    return rc;
}

static inline void ctl_down(struct ctl_rig *r)
{
    kube_free(r->kube);
    fake_stop(r->srv);
    recover_ranker_free(r->rk);
    recover_book_free(r->book);
    cache_free(r->cache);
    cJSON_Delete(r->store);
    cJSON_Delete(r->patches);
    cJSON_Delete(r->events);
    cJSON_Delete(r->changed);
    cJSON_Delete(r->write_as);
    pthread_mutex_destroy(&r->lock);
}

/* How many recorded Events start with prefix ("Normal Recovered"). */
static inline int ctl_events(struct ctl_rig *r, const char *prefix)
{
    const cJSON *it;
    int n = 0;

    pthread_mutex_lock(&r->lock);
    cJSON_ArrayForEach(it, r->events)
    {
        n += strncmp(it->valuestring, prefix, strlen(prefix)) == 0;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* How many writes were made, and whether every one was made exactly as
 * the headers say ("" : as the client itself). */
static inline int ctl_writes_all_as(struct ctl_rig *r, const char *headers, int *n)
{
    const cJSON *it;
    int ok = 1;

    *n = 0;
    pthread_mutex_lock(&r->lock);
    cJSON_ArrayForEach(it, r->write_as)
    {
        ok &= strcmp(it->valuestring, headers) == 0;
        ++*n;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* How many recorded Events contain needle. */
static inline int ctl_events_with(struct ctl_rig *r, const char *needle)
{
    const cJSON *it;
    int n = 0;

    pthread_mutex_lock(&r->lock);
    cJSON_ArrayForEach(it, r->events)
    {
        n += strstr(it->valuestring, needle) != NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Changes the cached policy fx/paper: applies edit to a copy of the
 * fixture's spec, with a new generation. */
static inline void ctl_edit_policy(struct ctl_rig *r, const char *field, cJSON *value)
{
    cJSON *pol = ctl_load("ctl-policy.json");
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(pol, "spec");

    cJSON_DeleteItemFromObjectCaseSensitive(spec, field);
    cJSON_AddItemToObject(spec, field, value);
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(pol), "generation", cJSON_CreateNumber(7));
    cache_policy_put(r->cache, pol);
    cJSON_Delete(pol);
}

#endif
