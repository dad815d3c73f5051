/*
 * capture — pool ConfigMaps kept current for protected VMs. See capture.h.
 *
 * The state remembers, per VM, the fingerprint and pool labels last
 * captured, so that a VM whose spec, labels and annotations did not change
 * costs no request at all; the digest annotation on the ConfigMap makes a
 * restarted controller write nothing either (one GET per VM).
 *
 * Anyone who may write ConfigMaps in the namespace can put one in capture's
 * way, under either name, with any labels: so a ConfigMap is read and its
 * ownership checked (capture_not_ours()) right before every patch, and the
 * patch is pinned to the resourceVersion that was checked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "base/buf.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "kube/event.h"
#include "kube/kube.h"
#include "reconcile/cache.h"
#include "reconcile/capture.h"
#include "sim/quantity.h"

struct capture_seen {
    UT_hash_handle hh;
    char *key;            /* "ns/name" */
    uint64_t fingerprint; /* the VM's, when captured */
    uint64_t labels;      /* hash of the pool labels it was captured with */
};

struct capture_state {
    pthread_mutex_t lock;
    struct capture_seen *seen;
};

void capture_forget(struct capture_state *s, const char *ns, const char *name)
{
    struct capture_seen *e = NULL;
    char *key = xasprintf("%s/%s", ns, name);

    pthread_mutex_lock(&s->lock);
    HASH_FIND_STR(s->seen, key, e);
    if (e) {
        HASH_DELETE(hh, s->seen, e);
        free(e->key);
        free(e);
    }
    pthread_mutex_unlock(&s->lock);
    free(key);
}

size_t capture_prune(struct capture_state *s, struct cache *c)
{
    struct capture_seen *e = NULL, *tmp = NULL;
    size_t n = 0;

    cache_rdlock(c);
    pthread_mutex_lock(&s->lock);
    HASH_ITER(hh, s->seen, e, tmp)
    {
        /* the key is "ns/name"; a namespace has no '/' */
        char *slash = strchr(e->key, '/');
        int gone;

        if (!slash)
            continue;
        *slash = '\0';
        gone = !cache_vm_find(c, e->key, slash + 1);
        *slash = '/';
        if (gone) {
            HASH_DELETE(hh, s->seen, e);
            free(e->key);
            free(e);
            n++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    cache_unlock(c);
    return n;
}

size_t capture_size(struct capture_state *s)
{
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = HASH_COUNT(s->seen);
    pthread_mutex_unlock(&s->lock);
    return n;
}

struct capture_state *capture_state_new(void)
{
    struct capture_state *s = xcalloc(1, sizeof(*s));

    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void capture_state_free(struct capture_state *s)
{
    struct capture_seen *e, *tmp;

    if (!s)
        return;
    HASH_ITER(hh, s->seen, e, tmp)
    {
        HASH_DELETE(hh, s->seen, e);
        free(e->key);
        free(e);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- building the ConfigMap ------------------------------------------- */

/* Whether s reads back from a plain YAML scalar as the same string: it
 * starts with a letter, holds only letters, digits and . _ / -, and is not a
 * word YAML (1.1 or 1.2) reads as a boolean or null. Anything else (numbers
 * included: "20.04" would read as a number) is quoted. */
static int capture__plain(const char *s)
{
    static const char *const words[] = {"true", "false", "null", "yes", "no",
                                        "on",   "off",   "y",    "n",   NULL};
    char low[8];
    size_t n = strlen(s);

    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == '/'))
            return 0;
    if (n >= sizeof(low))
        return 1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    for (int i = 0; words[i]; i++)
        if (strcmp(low, words[i]) == 0)
            return 0;
    return 1;
}

/* s as a YAML scalar: plain when that reads back as the same string, else
 * a JSON string (which YAML reads as a double-quoted scalar). */
static void capture__scalar(struct buf *b, const char *s)
{
    cJSON *str;
    char *q;

    if (capture__plain(s)) {
        buf_puts(b, s);
        return;
    }
    str = cJSON_CreateString(s);
    q = xcjson_print(str);
    buf_puts(b, q);
    free(q);
    cJSON_Delete(str);
}

char *capture_features_yaml(const struct features *f)
{
    struct buf b = {0};

    /* items are sorted by category: one line per category */
    for (size_t i = 0; i < f->n;) {
        size_t j = i;

        while (j < f->n && strcmp(f->items[j].category, f->items[i].category) == 0)
            j++;
        capture__scalar(&b, f->items[i].category);
        buf_puts(&b, ": ");
        if (j - i > 1)
            buf_puts(&b, "[");
        for (size_t k = i; k < j; k++) {
            if (k > i)
                buf_puts(&b, ", ");
            capture__scalar(&b, f->items[k].value);
        }
        buf_puts(&b, j - i > 1 ? "]\n" : "\n");
        i = j;
    }
    return buf_steal(&b);
}

char *capture_resources_yaml(const struct features *f)
{
    struct buf b = {0};
    char q[64];

    for (int r = 0; r < FEATURES_NRES; r++) {
        if (!(f->has_res & (1u << r)))
            continue;
        quantity_format(f->res[r], q, sizeof(q));
        buf_printf(&b, "%s: %s\n", features_res_name((enum features_res)r), q);
    }
    return buf_steal(&b);
}

static void capture__indent(struct buf *b, int n)
{
    for (int i = 0; i < n; i++)
        buf_puts(b, " ");
}

/* A scalar, or an empty mapping or list, on the current line. */
static void capture__leaf(struct buf *b, const cJSON *v)
{
    char *t;

    if (cJSON_IsString(v)) {
        capture__scalar(b, v->valuestring);
    } else if (cJSON_IsObject(v)) {
        buf_puts(b, "{}");
    } else if (cJSON_IsArray(v)) {
        buf_puts(b, "[]");
    } else if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
        t = xcjson_print(v);
        buf_puts(b, t);
        cJSON_free(t);
    } else {
        buf_puts(b, "null");
    }
}

static int capture__nested(const cJSON *v)
{
    return (cJSON_IsObject(v) || cJSON_IsArray(v)) && v->child;
}

/* v (a non-empty mapping or list) in block style at indent; the first line's
 * indentation is already written when inline is set (a list item). */
static void capture__block(struct buf *b, const cJSON *v, int indent, int inline_first)
{
    const cJSON *it;
    int first = 1;

    cJSON_ArrayForEach(it, v)
    {
        if (!(first && inline_first))
            capture__indent(b, indent);
        first = 0;
        if (cJSON_IsObject(v)) {
            capture__scalar(b, it->string ? it->string : "");
            buf_puts(b, ":");
            if (capture__nested(it)) {
                buf_puts(b, "\n");
                capture__block(b, it, indent + 2, 0);
                continue;
            }
            buf_puts(b, " ");
        } else {
            buf_puts(b, "- ");
            if (capture__nested(it)) {
                capture__block(b, it, indent + 2, 1);
                continue;
            }
        }
        capture__leaf(b, it);
        buf_puts(b, "\n");
    }
}

char *capture_yaml(const cJSON *v)
{
    struct buf b = {0};

    if (capture__nested(v)) {
        capture__block(&b, v, 0, 0);
    } else {
        capture__leaf(&b, v);
        buf_puts(&b, "\n");
    }
    return buf_steal(&b);
}

/* The inline cloud-init fields: user and network data, often credentials.
 * Their Secret references (secretRef, networkDataSecretRef) stay. */
static const char *const capture__inline_fields[] = {"userData", "userDataBase64", "networkData",
                                                     "networkDataBase64"};
#define CAPTURE__NINLINE (sizeof(capture__inline_fields) / sizeof(capture__inline_fields[0]))

/* Appends one omitted field to the note, which stays under
 * CAPTURE_OMITTED_MAX bytes (a VM may name many volumes). */
static void capture__note(struct buf *note, const char *volume, const char *source,
                          const char *field)
{
    char *one = xasprintf("volumes[%s].%s.%s", volume, source, field);

    if (note->len + strlen(one) + 2 < CAPTURE_OMITTED_MAX) {
        buf_puts(note, note->len ? ", " : "");
        buf_puts(note, one);
    } else if (note->len == 0 || note->data[note->len - 1] != '.') {
        buf_puts(note, note->len ? ", ..." : "...");
    }
    free(one);
}

/* Removes inline cloud-init data from the volumes of spec (the copy's
 * spec.template.spec), noting each field removed. */
static void capture__drop_inline(cJSON *spec, struct buf *note)
{
    static const char *const sources[] = {"cloudInitNoCloud", "cloudInitConfigDrive"};
    cJSON *volumes = cJSON_GetObjectItemCaseSensitive(spec, "volumes"), *vol;

    cJSON_ArrayForEach(vol, (cJSON_IsArray(volumes) ? volumes : NULL))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(vol, "name");

        for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
            cJSON *src = cJSON_GetObjectItemCaseSensitive(vol, sources[i]), *d;

            if (!cJSON_IsObject(src))
                continue;
            /* a loop per field: a key may be repeated in the text */
            for (size_t f = 0; f < CAPTURE__NINLINE; f++) {
                while ((d = cJSON_DetachItemFromObjectCaseSensitive(
                            src, capture__inline_fields[f])) != NULL) {
                    capture__note(note, cJSON_IsString(name) ? name->valuestring : "?", sources[i],
                                  capture__inline_fields[f]);
                    cJSON_Delete(d);
                }
            }
        }
    }
}

cJSON *capture_clean_vm(const cJSON *vm, char **omitted)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(vm, "metadata");
    const cJSON *v;
    cJSON *out = cJSON_CreateObject(), *m, *ann, *it, *next, *spec;
    struct buf note = {0};

    v = cJSON_GetObjectItemCaseSensitive(vm, "apiVersion");
    cJSON_AddStringToObject(out, "apiVersion",
                            cJSON_IsString(v) ? v->valuestring : "kubevirt.io/v1");
    cJSON_AddStringToObject(out, "kind", "VirtualMachine");
    m = cJSON_AddObjectToObject(out, "metadata");
    v = cJSON_GetObjectItemCaseSensitive(meta, "name");
    if (cJSON_IsString(v))
        cJSON_AddStringToObject(m, "name", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    if (cJSON_IsObject(v) && v->child)
        cJSON_AddItemToObject(m, "labels", cJSON_Duplicate(v, 1));
    v = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
    if (cJSON_IsObject(v)) {
        ann = cJSON_Duplicate(v, 1);
        for (it = ann->child; it; it = next) {
            next = it->next;
            if (!it->string || cache_annotation_is_generated(it->string))
                cJSON_Delete(cJSON_DetachItemViaPointer(ann, it));
        }
        if (ann->child)
            cJSON_AddItemToObject(m, "annotations", ann);
        else
            cJSON_Delete(ann);
    }
    v = cJSON_GetObjectItemCaseSensitive(vm, "spec");
    spec = cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateObject();
    capture__drop_inline(cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(spec, "template"), "spec"),
                         &note);
    cJSON_AddItemToObject(out, "spec", spec);
    *omitted = note.len ? buf_steal(&note) : NULL;
    buf_free(&note);
    return out;
}

/* One field of the digest; NULL hashes as "" (not as hash_fnv_field()'s
 * 0xff), as digests already written into ConfigMaps were made. */
static uint64_t capture__hash_str(uint64_t h, const char *s)
{
    return hash_fnv_field(h, s ? s : "");
}

cJSON *capture_configmap(const cJSON *vm, const char *ns, const char *cm_name, const cJSON *labels,
                         char **digest, char **err)
{
    struct features f = {0};
    cJSON *cm, *meta, *lab, *data, *clean, *ann;
    char *ftext, *rtext, *vtext, *ltext, *omitted, hex[17];
    const cJSON *vmname =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "metadata"), "name");
    uint64_t h = HASH_FNV_INIT;

    *err = NULL;
    if (digest)
        *digest = NULL;
    if (!cJSON_IsString(vmname)) {
        *err = xstrdup("VirtualMachine without metadata.name");
        return NULL;
    }
    if (features_from_vm(vm, &f, err) != 0)
        return NULL;
    ftext = capture_features_yaml(&f);
    rtext = capture_resources_yaml(&f);
    features_free(&f);
    clean = capture_clean_vm(vm, &omitted);
    vtext = capture_yaml(clean);
    cJSON_Delete(clean);

    lab = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(lab, CACHE_VM_LABEL);
    cJSON_AddStringToObject(lab, CACHE_VM_LABEL, vmname->valuestring);
    ltext = xcjson_print(lab);
    h = capture__hash_str(h, ftext);
    h = capture__hash_str(h, rtext);
    h = capture__hash_str(h, vtext);
    h = capture__hash_str(h, ltext);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);

    cm = kube_object_new("v1", "ConfigMap", ns, cm_name, &meta);
    cJSON_AddItemToObject(meta, "labels", lab);
    ann = cJSON_AddObjectToObject(meta, "annotations");
    cJSON_AddStringToObject(ann, CACHE_DIGEST_ANNOTATION, hex);
    if (omitted)
        cJSON_AddStringToObject(ann, CAPTURE_OMITTED_ANNOTATION, omitted);
    data = cJSON_AddObjectToObject(cm, "data");
    if (*ftext)
        cJSON_AddStringToObject(data, "features", ftext);
    if (*rtext)
        cJSON_AddStringToObject(data, "resources", rtext);
    cJSON_AddStringToObject(data, "vm", vtext);
    if (digest)
        *digest = xstrdup(hex);
    free(ftext);
    free(rtext);
    free(vtext);
    free(omitted);
    cJSON_free(ltext);
    return cm;
}

/* ---- the reconcile ---------------------------------------------------- */

/* A write found the ConfigMap's name taken by one capture must not touch. */
#define CAPTURE__TAKEN 1

/* The pool labels of policy p: its poolSelector's matchLabels, and
 * kvrecover.io/pool (the policy's name when matchLabels does not set it). */
static cJSON *capture__labels(const struct cache_policy *p)
{
    cJSON *l = cJSON_CreateObject();

    for (size_t i = 0; i < p->pol.pool_selector.nlabels; i++)
        cJSON_AddStringToObject(l, p->pol.pool_selector.keys[i], p->pol.pool_selector.values[i]);
    if (!cJSON_GetObjectItemCaseSensitive(l, CACHE_POOL_LABEL))
        cJSON_AddStringToObject(l, CACHE_POOL_LABEL, p->name);
    return l;
}

const char *capture_not_ours(const cJSON *cm, const char *vm)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(cm, "metadata");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
    const cJSON *v;

    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(labels, CACHE_POOL_LABEL)))
        return "it is not a pool member (no " CACHE_POOL_LABEL " label)";
    v = cJSON_GetObjectItemCaseSensitive(labels, CACHE_VM_LABEL);
    if (!cJSON_IsString(v))
        return "it describes no VM (no " CACHE_VM_LABEL " label)";
    if (strcmp(v->valuestring, vm) != 0)
        return "its " CACHE_VM_LABEL " label names another VM";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ann, CACHE_DIGEST_ANNOTATION)))
        return "capture did not write it (no " CACHE_DIGEST_ANNOTATION " annotation)";
    return NULL;
}

/* What capture_vm() copies out of the cache. */
struct capture__job {
    cJSON *labels;     /* pool labels */
    uint64_t fp;       /* the VM's fingerprint */
    uint64_t lhash;    /* hash of labels */
    char *uid;         /* the VM's uid, for Events */
    char *target;      /* ConfigMap name */
    char *alt;         /* kvrecover-<vm> */
    int exists;        /* target is a member capture wrote */
    int may_fall_back; /* target is <vm> and finding it taken means: use alt */
    char *digest;      /* the member's digest annotation, or NULL */
    char *taken;       /* a member not ours describes the VM or holds the only
                          name left: the ConfigMap's name, else NULL */
    const char *why;   /* why taken is not ours (static) */
    char *sa;          /* the policy's spec.serviceAccountName, or NULL */
};

static void capture__job_free(struct capture__job *j)
{
    cJSON_Delete(j->labels);
    free(j->uid);
    free(j->target);
    free(j->alt);
    free(j->digest);
    free(j->taken);
    free(j->sa);
}

/* Whether the cached member m is one capture wrote for VM name: a pool
 * member (every cached member is) labelled for it, with our digest. */
static int capture__ours(const struct cache_member *m, const char *name)
{
    return m && m->vm && strcmp(m->vm, name) == 0 && m->digest;
}

/* Chooses the ConfigMap for VM name from the cached members m1 (named
 * <vm>) and m2 (kvrecover-<vm>): ours first; a member not ours that
 * describes the VM, or no name left, makes j->taken. */
static void capture__choose(struct capture__job *j, const char *name, const struct cache_member *m1,
                            const struct cache_member *m2)
{
    if (capture__ours(m1, name) || capture__ours(m2, name)) {
        const struct cache_member *m = capture__ours(m1, name) ? m1 : m2;
        j->target = xstrdup(m->name);
        j->exists = 1;
        j->digest = xstrdup(m->digest);
    } else if ((m1 && m1->vm && strcmp(m1->vm, name) == 0) ||
               (m2 && m2->vm && strcmp(m2->vm, name) == 0)) {
        /* someone wrote a member for this VM by hand: it is theirs */
        j->taken = xstrdup(m1 && m1->vm && strcmp(m1->vm, name) == 0 ? m1->name : m2->name);
        j->why = "capture did not write it (no " CACHE_DIGEST_ANNOTATION " annotation)";
    } else if (m1 && m2) {
        j->taken = xstrdup(m2->name);
        j->why = m2->vm ? "its " CACHE_VM_LABEL " label names another VM"
                        : "it describes no VM (no " CACHE_VM_LABEL " label)";
    } else if (m1) {
        /* <vm> describes something else: keep out of its way */
        j->target = xstrdup(j->alt);
    } else {
        j->target = xstrdup(name);
        j->may_fall_back = 1;
    }
}

/* Returns 1 when the VM needs capturing, with *j filled. */
static int capture__prepare(const struct recover_env *env, struct capture_state *st, const char *ns,
                            const char *name, const char *key, struct capture__job *j)
{
    struct cache *c = env->cache;
    struct cache_vm *vm;
    struct cache_policy *best = NULL;
    struct capture_seen *seen = NULL;
    char *ltext;
    int ret = 0;

    cache_rdlock(c);
    vm = cache_vm_find(c, ns, name);
    if (!vm)
        goto out;
    for (struct cache_policy *p = cache_policy_first(c, ns); p; p = cache_policy_next(p, ns)) {
        if (!p->valid || !p->pol.capture || !cache_selector_matches(&p->pol.selector, vm->tlabels))
            continue;
        if (!best || strcmp(p->name, best->name) < 0)
            best = p;
    }
    if (!best)
        goto out;
    j->labels = capture__labels(best);
    j->sa = best->pol.service_account ? xstrdup(best->pol.service_account) : NULL;
    ltext = xcjson_print(j->labels);
    j->lhash = hash_fnv_str(HASH_FNV_INIT, ltext);
    cJSON_free(ltext);
    j->fp = vm->fingerprint;
    pthread_mutex_lock(&st->lock);
    HASH_FIND_STR(st->seen, key, seen);
    if (seen && seen->fingerprint == j->fp && seen->labels == j->lhash) {
        pthread_mutex_unlock(&st->lock);
        goto out;
    }
    pthread_mutex_unlock(&st->lock);

    j->uid = xstrdup(vm->uid);
    j->alt = xasprintf("kvrecover-%s", name);
    capture__choose(j, name, cache_member_find(c, ns, name), cache_member_find(c, ns, j->alt));
    ret = 1;
out:
    cache_unlock(c);
    return ret;
}

static void capture__remember(struct capture_state *st, const char *key,
                              const struct capture__job *j)
{
    struct capture_seen *seen = NULL;

    pthread_mutex_lock(&st->lock);
    HASH_FIND_STR(st->seen, key, seen);
    if (!seen) {
        seen = xcalloc(1, sizeof(*seen));
        seen->key = xstrdup(key);
        HASH_ADD_KEYPTR(hh, st->seen, seen->key, strlen(seen->key), seen);
    }
    seen->fingerprint = j->fp;
    seen->labels = j->lhash;
    pthread_mutex_unlock(&st->lock);
}

/* Merge-patches the ConfigMap live (as just read) with cm's labels,
 * annotations and data. The patch carries live's resourceVersion, so that
 * it applies only to the version whose ownership was checked: a ConfigMap
 * replaced meanwhile gives 409 Conflict (-EAGAIN: checked again next
 * time). */
static int capture__patch(const struct recover_env *env, const struct kube_as *who, const char *ns,
                          const char *name, const cJSON *live, const cJSON *cm,
                          struct kube_error *kerr)
{
    struct kube_resource res = {"", "v1", "configmaps"};
    cJSON *patch = cJSON_CreateObject(), *meta, *data, *ann;
    const cJSON *cmeta = cJSON_GetObjectItemCaseSensitive(cm, "metadata");
    const cJSON *cdata = cJSON_GetObjectItemCaseSensitive(cm, "data");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(live, "metadata"), "resourceVersion");
    char *path = kube_path(&res, ns, name, NULL);
    int rc;

    meta = cJSON_AddObjectToObject(patch, "metadata");
    if (cJSON_IsString(rv))
        cJSON_AddStringToObject(meta, "resourceVersion", rv->valuestring);
    cJSON_AddItemToObject(meta, "labels",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cmeta, "labels"), 1));
    ann = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cmeta, "annotations"), 1);
    if (!cJSON_GetObjectItemCaseSensitive(ann, CAPTURE_OMITTED_ANNOTATION))
        cJSON_AddNullToObject(ann, CAPTURE_OMITTED_ANNOTATION);
    cJSON_AddItemToObject(meta, "annotations", ann);
    data = cJSON_Duplicate(cdata, 1);
    if (!cJSON_GetObjectItemCaseSensitive(data, "features"))
        cJSON_AddNullToObject(data, "features");
    if (!cJSON_GetObjectItemCaseSensitive(data, "resources"))
        cJSON_AddNullToObject(data, "resources");
    cJSON_AddItemToObject(patch, "data", data);
    rc = kube_patch_as(env->kube, who, path, KUBE_PATCH_MERGE, patch, NULL, kerr);
    free(path);
    cJSON_Delete(patch);
    if (rc == -EEXIST)
        rc = -EAGAIN; /* changed since we read it */
    return rc;
}

/* Reads ConfigMap name and patches it when capture wrote it for VM vm.
 * Returns 0, CAPTURE__TAKEN with *why when it is not ours (nothing
 * written), or a negative errno (-ENOENT: it is gone). */
static int capture__update(const struct recover_env *env, const struct kube_as *who, const char *ns,
                           const char *name, const char *vm, const cJSON *cm, const char **why,
                           struct kube_error *kerr)
{
    struct kube_resource res = {"", "v1", "configmaps"};
    char *path = kube_path(&res, ns, name, NULL);
    cJSON *live = NULL;
    int rc = kube_get(env->kube, path, &live, NULL);

    free(path);
    if (rc == 0) {
        *why = capture_not_ours(live, vm);
        rc = *why ? CAPTURE__TAKEN : capture__patch(env, who, ns, name, live, cm, kerr);
    }
    cJSON_Delete(live);
    return rc;
}

/* Creates ConfigMap name from cm as who (NULL: as the controller); when the
 * name is taken, updates it if it is ours. Returns as capture__update();
 * a refusal's Status in *kerr. */
static int capture__write(const struct recover_env *env, const struct kube_as *who, const char *ns,
                          cJSON *cm, const char *name, const char *vm, const char **why,
                          struct kube_error *kerr)
{
    struct kube_resource res = {"", "v1", "configmaps"};
    char *path = kube_path(&res, ns, NULL, NULL);
    int rc;

    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(cm, "metadata"), "name",
                                           cJSON_CreateString(name));
    rc = kube_create_as(env->kube, who, path, cm, NULL, kerr);
    free(path);
    if (rc == -EEXIST && kube_error_is(kerr, "AlreadyExists")) {
        rc = capture__update(env, who, ns, name, vm, cm, why, kerr);
        if (rc == -ENOENT)
            rc = -EAGAIN; /* deleted meanwhile: create it next time */
    } else if (rc == -EEXIST) {
        rc = -EAGAIN;
    }
    return rc;
}

/* Reports that capture left ConfigMap cm alone for VM key (Event on the VM
 * and a log line). */
static void capture__skip(const struct recover_env *env, const char *ns, const char *name,
                          const char *uid, const char *cm, const char *why)
{
    struct event_ref ref = {"kubevirt.io/v1", "VirtualMachine", ns, name, uid};
    char *msg = xasprintf("not capturing into ConfigMap %s: %s; capture writes only ConfigMaps "
                          "it created",
                          cm, why);

    log_warn("VirtualMachine %s/%s: %s", ns, name, msg);
    if (env->event)
        env->event(env->ud, &ref, "Warning", "CaptureSkipped", msg);
    free(msg);
}

/* Reports that writing ConfigMap cm for VM ns/name was forbidden (Event on
 * the VM with the API server's message, and a log line). */
static void capture__forbidden(const struct recover_env *env, const char *ns, const char *name,
                               const char *uid, const char *cm, const char *msg)
{
    struct event_ref ref = {"kubevirt.io/v1", "VirtualMachine", ns, name, uid};
    char *text = xasprintf("capturing into ConfigMap %s is forbidden: %s", cm, msg);

    log_warn("VirtualMachine %s/%s: %s", ns, name, text);
    if (env->event)
        env->event(env->ud, &ref, "Warning", "CaptureForbidden", text);
    free(text);
}

int capture_vm(const struct recover_env *env, struct capture_state *st, const char *ns,
               const char *name)
{
    struct kube_resource vmres = {"kubevirt.io", "v1", "virtualmachines"};
    struct capture__job j = {0};
    struct kube_error kerr = {0};
    struct kube_as sa;
    const struct kube_as *who;
    char *key = xasprintf("%s/%s", ns, name), *path = NULL, *digest = NULL, *err = NULL;
    const char *why = NULL;
    cJSON *vm = NULL, *cm = NULL;
    const cJSON *d;
    int rc = 0;

    if (!capture__prepare(env, st, ns, name, key, &j))
        goto out;
    if (env->leading && !env->leading(env->ud))
        goto out;
    if (j.taken) {
        capture__skip(env, ns, name, j.uid, j.taken, j.why);
        capture__remember(st, key, &j); /* until it changes */
        goto out;
    }
    path = kube_path(&vmres, ns, name, NULL);
    rc = kube_get(env->kube, path, &vm, NULL);
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc)
        goto out;
    cm = capture_configmap(vm, ns, j.target, j.labels, &digest, &err);
    if (!cm) {
        log_warn("not capturing VirtualMachine %s: %s", key, err ? err : "?");
        capture__remember(st, key, &j); /* until it changes */
        goto out;
    }
    if (j.exists && j.digest && strcmp(j.digest, digest) == 0) {
        capture__remember(st, key, &j);
        goto out;
    }
    /* written as the policy's ServiceAccount, else the default one, else
     * as the controller (README "Security model"); read as the controller */
    who = kube_as_sa(&sa, ns, j.sa ? j.sa : env->default_service_account);
    if (j.exists) {
        rc = capture__update(env, who, ns, j.target, name, cm, &why, &kerr);
        if (rc == -ENOENT) /* gone since the cache saw it: create it */
            rc = capture__write(env, who, ns, cm, j.target, name, &why, &kerr);
    } else {
        rc = capture__write(env, who, ns, cm, j.target, name, &why, &kerr);
        if (rc == CAPTURE__TAKEN && j.may_fall_back) {
            /* a ConfigMap named <vm> that is not ours: use the other name */
            free(j.target);
            j.target = xstrdup(j.alt);
            rc = capture__write(env, who, ns, cm, j.target, name, &why, &kerr);
        }
    }
    if (rc == CAPTURE__TAKEN) {
        capture__skip(env, ns, name, j.uid, j.target, why);
        capture__remember(st, key, &j); /* until it changes */
        rc = 0;
    } else if (rc == 0) {
        d = cJSON_GetObjectItemCaseSensitive(cm, "data");
        log_info("captured VirtualMachine %s into ConfigMap %s/%s%s", key, ns, j.target,
                 cJSON_GetObjectItemCaseSensitive(d, "features") ? "" : " (no features)");
        capture__remember(st, key, &j);
    } else if (rc == -EACCES) {
        /* the API server refused the identity: say so where the tenant
         * looks, and retry with backoff (a grant may come) */
        capture__forbidden(env, ns, name, j.uid, j.target, kerr.message);
    } else {
        log_warn("capturing VirtualMachine %s into ConfigMap %s/%s failed: %s", key, ns, j.target,
                 strerror(-rc));
    }
out:
    free(key);
    free(path);
    free(digest);
    free(err);
    cJSON_Delete(vm);
    cJSON_Delete(cm);
    capture__job_free(&j);
    return rc;
}
