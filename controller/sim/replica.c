/*
 * replica — the replacement VirtualMachine. See replica.h.
 *
 * The replacement is assembled into a new object from the parts it may
 * carry, not edited out of the member's copy, so that a field nobody
 * thought of (uid, managedFields, ownerReferences, status, finalizers) can
 * never ride along. Inside spec.template.spec only named identity fields
 * are removed: the rest of the member's machine is what makes it similar.
 * Must never: keep a volume pointing at the member's own disk, or trust a
 * field of the template to have the type KubeVirt documents (a pool
 * ConfigMap is tenant input).
 */
#include "sim/replica.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/hash.h"
#include "base/text.h"
#include "base/xalloc.h"

char *replica_name(const char *vm, const char *uid)
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

void replica_changes_free(struct replica_changes *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->line[i]);
        if (c->item) {
            free(c->item[i].path);
            cJSON_Delete(c->item[i].value);
            cJSON_Delete(c->item[i].old);
        }
    }
    free(c->line);
    free(c->item);
    memset(c, 0, sizeof(*c));
}

/* at with key appended as a JSON Pointer reference token (RFC 6901: '~'
 * is written "~0", '/' "~1"). The caller frees. */
static char *replica__ptr(const char *at, const char *key)
{
    struct buf b = {0};

    buf_puts(&b, at);
    buf_puts(&b, "/");
    for (; *key; key++) {
        if (*key == '~')
            buf_puts(&b, "~0");
        else if (*key == '/')
            buf_puts(&b, "~1");
        else
            buf_append(&b, key, 1);
    }
    return buf_steal(&b);
}

static cJSON *replica__dup(const cJSON *v)
{
    cJSON *d;

    if (!v)
        return NULL;
    d = cJSON_Duplicate(v, 1);
    if (!d)
        abort(); /* cJSON fails only when out of memory; xmalloc aborts too */
    return d;
}

/* Appends one change to c (nothing when c is NULL): op at the JSON Pointer
 * at + "/" + key (key NULL: at itself), value and old copied (NULL: none),
 * and its line. */
static void replica__vnote(struct replica_changes *c, const char *op, const char *at,
                           const char *key, const cJSON *value, const cJSON *old, const char *fmt,
                           va_list ap) __attribute__((format(printf, 7, 0)));
static void replica__vnote(struct replica_changes *c, const char *op, const char *at,
                           const char *key, const cJSON *value, const cJSON *old, const char *fmt,
                           va_list ap)
{
    struct replica_change *it;

    if (!c)
        return;
    c->line = xreallocarray(c->line, c->n + 1, sizeof(*c->line));
    c->item = xreallocarray(c->item, c->n + 1, sizeof(*c->item));
    c->line[c->n] = xvasprintf(fmt, ap);
    it = &c->item[c->n++];
    it->op = op;
    it->path = key ? replica__ptr(at, key) : xstrdup(at);
    it->value = replica__dup(value);
    it->old = replica__dup(old);
}

static void replica__note(struct replica_changes *c, const char *op, const char *at,
                          const char *key, const cJSON *value, const cJSON *old, const char *fmt,
                          ...) __attribute__((format(printf, 7, 8)));
static void replica__note(struct replica_changes *c, const char *op, const char *at,
                          const char *key, const cJSON *value, const cJSON *old, const char *fmt,
                          ...)
{
    va_list ap;

    va_start(ap, fmt);
    replica__vnote(c, op, at, key, value, old, fmt, ap);
    va_end(ap);
}

/* s for a message: as it is when it is a plain Kubernetes name, else
 * quoted (and cut). The caller frees. */
static char *replica__word(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || strchr("-._/", s[n])))
            return text_quote(s);
    return n && n <= REPLICA_MAX_DV_NAME ? xstrdup(s) : text_quote(s);
}

/* Notes a "remove" at at/key for every key of o (an object, or nothing) that
 * is not in keep (NULL-terminated): what of the member's object the
 * replacement leaves out, each said as "dropped <what><key>". */
static void replica__note_rest(struct replica_changes *c, const cJSON *o, const char *const *keep,
                               const char *at, const char *what)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, (cJSON_IsObject(o) ? o : NULL))
    {
        const char *const *k = keep;
        char *w;

        while (*k && strcmp(*k, it->string) != 0)
            k++;
        if (*k)
            continue;
        w = replica__word(it->string);
        replica__note(c, "remove", at, it->string, NULL, it, "dropped %s%s", what, w);
        free(w);
    }
}

static cJSON *replica__get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *replica__str(const cJSON *o, const char *key)
{
    const cJSON *v = replica__get(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Removes o[key] when it is there; returns whether it was. */
static int replica__drop(cJSON *o, const char *key)
{
    cJSON *v = replica__get(o, key);

    if (!v)
        return 0;
    cJSON_Delete(cJSON_DetachItemViaPointer(o, v));
    return 1;
}

/* replica__drop(), noted as a "remove" of at/key with the line fmt. */
static int replica__drop_noted(struct replica_changes *c, cJSON *o, const char *at, const char *key,
                               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int replica__drop_noted(struct replica_changes *c, cJSON *o, const char *at, const char *key,
                               const char *fmt, ...)
{
    cJSON *v = replica__get(o, key);
    va_list ap;

    if (!v)
        return 0;
    va_start(ap, fmt);
    replica__vnote(c, "remove", at, key, NULL, v, fmt, ap);
    va_end(ap);
    cJSON_Delete(cJSON_DetachItemViaPointer(o, v));
    return 1;
}

/* Entries shown of a mapping in a change's line; the rest are counted. */
#define REPLICA__KV_MAX 8

/* The string entries of map for a line: "k=v, k=v" (values 0: "k, k"),
 * keys and values as replica__word() writes them, the first
 * REPLICA__KV_MAX then "and N more"; keys in skip (NULL-terminated, or
 * NULL) left out; "none" when nothing is left. The caller frees. */
static char *replica__kv(const cJSON *map, const char *const *skip, int values)
{
    struct buf b = {0};
    const cJSON *it;
    size_t n = 0;

    cJSON_ArrayForEach(it, (cJSON_IsObject(map) ? map : NULL))
    {
        const char *const *k = skip;
        char *kw, *vw;

        while (k && *k && strcmp(*k, it->string) != 0)
            k++;
        if (!cJSON_IsString(it) || (k && *k))
            continue;
        if (n++ >= REPLICA__KV_MAX)
            continue;
        kw = replica__word(it->string);
        vw = values ? replica__word(it->valuestring) : NULL;
        buf_printf(&b, "%s%s%s%s", n > 1 ? ", " : "", kw, vw ? "=" : "", vw ? vw : "");
        free(kw);
        free(vw);
    }
    if (n > REPLICA__KV_MAX)
        buf_printf(&b, " and %zu more", n - REPLICA__KV_MAX);
    if (!n)
        buf_puts(&b, "none");
    return buf_steal(&b);
}

static int replica__strcmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of vm's dataVolumeTemplates that are strings, sorted, in a new
 * array of borrowed pointers (*n entries); NULL when there are none. */
static const char **replica__dv_names(const cJSON *vm, size_t *n)
{
    const cJSON *dvts = replica__get(replica__get(vm, "spec"), "dataVolumeTemplates"), *it;
    const char **names;

    *n = 0;
    if (!cJSON_IsArray(dvts) || !dvts->child)
        return NULL;
    names = xcalloc((size_t)cJSON_GetArraySize(dvts), sizeof(*names));
    cJSON_ArrayForEach(it, dvts)
    {
        const char *name = replica__str(replica__get(it, "metadata"), "name");

        if (name)
            names[(*n)++] = name;
    }
    qsort(names, *n, sizeof(*names), replica__strcmp);
    return names;
}

static int replica__has(const char **names, size_t n, const char *name)
{
    return n && bsearch(&name, names, n, sizeof(*names), replica__strcmp) != NULL;
}

int replica_shared_disk(const cJSON *vm, char **detail)
{
    const cJSON *vols = replica__get(
        replica__get(replica__get(replica__get(vm, "spec"), "template"), "spec"), "volumes");
    const cJSON *v;
    size_t n;
    const char **names;
    int shared = 0;

    *detail = NULL;
    if (!cJSON_IsArray(vols))
        return 0;
    names = replica__dv_names(vm, &n);
    cJSON_ArrayForEach(v, vols)
    {
        static const struct {
            const char *source, *field;
        } disks[] = {{"persistentVolumeClaim", "claimName"}, {"dataVolume", "name"}};
        const char *vname = replica__str(v, "name");

        for (size_t d = 0; d < 2 && !shared; d++) {
            const cJSON *src = replica__get(v, disks[d].source);
            const char *claim = replica__str(src, disks[d].field);
            char *vw, *cw;

            if (!src || (claim && replica__has(names, n, claim)))
                continue;
            /* a source without a name names no disk of its own either */
            vw = vname ? replica__word(vname) : xstrdup("(unnamed)");
            cw = claim ? replica__word(claim) : xasprintf("without a %s", disks[d].field);
            *detail = xasprintf("volume %s uses %s %s, not one of its own dataVolumeTemplates", vw,
                                disks[d].source, cw);
            free(vw);
            free(cw);
            shared = 1;
        }
        if (shared)
            break;
    }
    free(names);
    return shared;
}

/* A copy of the string entries of a labels or annotations mapping, or an
 * empty mapping. */
static cJSON *replica__strings(const cJSON *m)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *map = cJSON_IsObject(m) ? m : NULL, *it;

    if (!out)
        abort();
    cJSON_ArrayForEach(it, map) if (cJSON_IsString(it) && it->string)
        cJSON_AddStringToObject(out, it->string, it->valuestring);
    return out;
}

/* Sets o[key] to a string, replacing what is there. */
static void replica__set(cJSON *o, const char *key, const char *value)
{
    replica__drop(o, key);
    cJSON_AddStringToObject(o, key, value);
}

/* Whether an annotation is KubeVirt's or kubectl's bookkeeping, which
 * describes the member's object and not the replacement. */
static int replica__generated(const char *key)
{
    const char *slash = strchr(key, '/');
    size_t n = slash ? (size_t)(slash - key) : 0;

    if (!slash)
        return 0;
    if (n == 11 && strncmp(key, "kubevirt.io", 11) == 0)
        return 1;
    if (n > 12 && strncmp(slash - 12, ".kubevirt.io", 12) == 0)
        return 1;
    return strncmp(key, "kubectl.kubernetes.io/", 22) == 0;
}

/* Notes at/key (in the member) becoming value: nothing when they are
 * equal, else an add, a replace or (value NULL) a remove. */
static void replica__became(struct replica_changes *c, const char *at, const char *key,
                            const cJSON *old, const cJSON *value, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void replica__became(struct replica_changes *c, const char *at, const char *key,
                            const cJSON *old, const cJSON *value, const char *fmt, ...)
{
    va_list ap;

    if (!c || (!old && !value) || (old && value && cJSON_Compare(old, value, 1)))
        return;
    va_start(ap, fmt);
    replica__vnote(c, !old ? "add" : !value ? "remove" : "replace", at, key, value, old, fmt, ap);
    va_end(ap);
}

/* The replacement's metadata. */
static cJSON *replica__metadata(const cJSON *member_meta, const struct replica_spec *s,
                                struct replica_changes *ch)
{
    static const char *const kept[] = {"kvrecover.io/features", "kvrecover.io/resources", NULL};
    static const char *const ours[] = {REPLICA_REPLACES_LABEL, REPLICA_POLICY_LABEL,
                                       REPLICA_TEMPLATE_LABEL, NULL};
    static const char *const built[] = {"name", "namespace", "labels", "annotations", NULL};
    cJSON *meta = cJSON_CreateObject(), *labels, *ann;
    const cJSON *mann = replica__get(member_meta, "annotations");
    char score[32];

    if (!meta)
        abort();
    cJSON_AddStringToObject(meta, "name", s->name);
    replica__became(ch, "/metadata", "name", replica__get(member_meta, "name"),
                    replica__get(meta, "name"), "set metadata.name %s", s->name);
    if (s->namespace) {
        cJSON_AddStringToObject(meta, "namespace", s->namespace);
        replica__became(ch, "/metadata", "namespace", replica__get(member_meta, "namespace"),
                        replica__get(meta, "namespace"), "set metadata.namespace %s", s->namespace);
    }
    labels = replica__strings(s->labels);
    replica__set(labels, REPLICA_REPLACES_LABEL, s->failed_vm);
    replica__set(labels, REPLICA_POLICY_LABEL, s->policy);
    replica__set(labels, REPLICA_TEMPLATE_LABEL, s->member);
    cJSON_AddItemToObject(meta, "labels", labels);
    if (ch) {
        char *failed = replica__kv(s->labels, ours, 1);
        char *mine = replica__kv(replica__get(member_meta, "labels"), NULL, 1);
        char *w[3];
        /* the member's are worth naming when they are not the same */
        int differ = strcmp(mine, "none") != 0 && strcmp(mine, failed) != 0;

        for (size_t i = 0; i < 3; i++)
            w[i] = replica__word(replica__str(labels, ours[i]));
        replica__became(ch, "/metadata", "labels", replica__get(member_meta, "labels"), labels,
                        "set metadata.labels: the failed VM's (%s) plus %s=%s, %s=%s, %s=%s%s%s%s",
                        failed, ours[0], w[0], ours[1], w[1], ours[2], w[2],
                        differ ? "; not the member's (" : "", differ ? mine : "",
                        differ ? ")" : "");
        for (size_t i = 0; i < 3; i++)
            free(w[i]);
        free(failed);
        free(mine);
    }
    ann = cJSON_AddObjectToObject(meta, "annotations");
    if (!ann)
        abort();
    for (size_t i = 0; kept[i]; i++) {
        const char *v = replica__str(mann, kept[i]);

        if (v)
            cJSON_AddStringToObject(ann, kept[i], v);
    }
    snprintf(score, sizeof(score), "%.4f", s->score);
    cJSON_AddStringToObject(ann, REPLICA_SCORE_ANNOTATION, score);
    if (s->failed_uid)
        cJSON_AddStringToObject(ann, REPLICA_FAILED_UID_ANNOTATION, s->failed_uid);
    if (s->decided_at)
        cJSON_AddStringToObject(ann, REPLICA_DECIDED_AT_ANNOTATION, s->decided_at);
    if (ch) {
        char *set = replica__kv(ann, kept, 1), *from = NULL;
        char *left = replica__kv(mann, kept, 0);

        for (size_t i = 0; kept[i]; i++)
            if (replica__str(ann, kept[i])) {
                char *k = from;

                from = xasprintf("%s%s%s", k ? k : "", k ? ", " : "", kept[i]);
                free(k);
            }
        replica__became(ch, "/metadata", "annotations", mann, ann,
                        "set metadata.annotations: %s%s%s%s%s", set,
                        from ? "; kept the member's " : "", from ? from : "",
                        strcmp(left, "none") ? "; dropped the member's " : "",
                        strcmp(left, "none") ? left : "");
        free(set);
        free(from);
        free(left);
    }
    /* whatever else the member's metadata says belongs to its object */
    replica__note_rest(ch, member_meta, built, "/metadata", "metadata.");
    return meta;
}

/* spec.template.metadata: the failed VM's template labels, the member's
 * template annotations without the generated ones. */
static cJSON *replica__template_metadata(const cJSON *member_tmeta, const struct replica_spec *s,
                                         struct replica_changes *ch)
{
    cJSON *meta = cJSON_CreateObject(), *labels, *ann;
    const cJSON *mlabels = replica__get(member_tmeta, "labels"), *it;

    if (!meta)
        abort();
    labels = replica__strings(s->template_labels);
    if (ch) {
        /* an empty mapping and none are the same labels */
        const cJSON *old = cJSON_IsObject(mlabels) && !mlabels->child ? NULL : mlabels;
        char *failed = replica__kv(labels, NULL, 1), *mine = replica__kv(mlabels, NULL, 1);

        replica__became(ch, "/spec/template/metadata", "labels", old, labels->child ? labels : NULL,
                        "set the template's labels to the failed VM's (%s), not the member's (%s)",
                        failed, mine);
        free(failed);
        free(mine);
    }
    if (labels->child)
        cJSON_AddItemToObject(meta, "labels", labels);
    else
        cJSON_Delete(labels);
    ann = cJSON_CreateObject();
    if (!ann)
        abort();
    cJSON_ArrayForEach(it, replica__get(member_tmeta, "annotations"))
    {
        char *w;

        if (!cJSON_IsString(it) || !it->string)
            continue;
        if (!replica__generated(it->string)) {
            cJSON_AddStringToObject(ann, it->string, it->valuestring);
            continue;
        }
        w = replica__word(it->string);
        replica__note(ch, "remove", "/spec/template/metadata/annotations", it->string, NULL, it,
                      "dropped template annotation %s", w);
        free(w);
    }
    if (ann->child)
        cJSON_AddItemToObject(meta, "annotations", ann);
    else
        cJSON_Delete(ann);
    /* the rest describes the member's VMIs (a name, kubectl's
     * creationTimestamp: null) */
    if (member_tmeta && !cJSON_IsObject(member_tmeta))
        replica__note(ch, "remove", "/spec/template/metadata", NULL, NULL, member_tmeta,
                      "dropped spec.template.metadata (%s, not a mapping)",
                      text_json_type(member_tmeta));
    cJSON_ArrayForEach(it, (cJSON_IsObject(member_tmeta) ? member_tmeta : NULL))
    {
        char *w;

        if (strcmp(it->string, "labels") == 0 || strcmp(it->string, "annotations") == 0)
            continue;
        w = replica__word(it->string);
        replica__note(ch, "remove", "/spec/template/metadata", it->string, NULL, it,
                      "dropped spec.template.metadata.%s", w);
        free(w);
    }
    return meta;
}

/* Removes what identifies the member's machine from a template spec. */
static void replica__clean_template_spec(cJSON *tspec, struct replica_changes *ch)
{
    static const char at[] = "/spec/template/spec";
    cJSON *domain = replica__get(tspec, "domain");
    cJSON *fw = replica__get(domain, "firmware");
    cJSON *ifaces = replica__get(replica__get(domain, "devices"), "interfaces"), *it;
    size_t i = 0;

    if (!cJSON_IsArray(ifaces))
        ifaces = NULL;

    replica__drop_noted(ch, fw, "/spec/template/spec/domain/firmware", "uuid",
                        "dropped domain.firmware.uuid");
    replica__drop_noted(ch, fw, "/spec/template/spec/domain/firmware", "serial",
                        "dropped domain.firmware.serial");
    if (cJSON_IsObject(fw) && !fw->child)
        replica__drop(domain, "firmware");
    cJSON_ArrayForEach(it, ifaces)
    {
        const char *name = replica__str(it, "name");
        char *w = name ? replica__word(name) : xasprintf("%zu", i);
        char *ifat = xasprintf("%s/domain/devices/interfaces/%zu", at, i);

        replica__drop_noted(ch, it, ifat, "macAddress", "dropped macAddress of interface %s", w);
        free(ifat);
        free(w);
        i++;
    }
    replica__drop_noted(ch, tspec, at, "hostname", "dropped hostname");
    replica__drop_noted(ch, tspec, at, "subdomain", "dropped subdomain");
}

static int replica__fail(char **err, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int replica__fail(char **err, const char *member, const char *fmt, ...)
{
    va_list ap;
    char *msg, *w = replica__word(member);

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    *err = xasprintf("pool member %s: data.vm: %s", w, msg);
    free(msg);
    free(w);
    return -EINVAL;
}

/* One renamed DataVolume: the member's name and the replacement's. */
struct replica__rename {
    const char *from; /* borrowed from the member's template */
    char *to;         /* owned */
};

static int replica__rename_cmp(const void *a, const void *b)
{
    return strcmp(((const struct replica__rename *)a)->from,
                  ((const struct replica__rename *)b)->from);
}

static const char *replica__renamed(const struct replica__rename *r, size_t n, const char *from)
{
    const struct replica__rename key = {from, NULL}, *hit;

    if (!n)
        return NULL;
    hit = bsearch(&key, r, n, sizeof(*r), replica__rename_cmp);
    return hit ? hit->to : NULL;
}

/* Renames every dataVolumeTemplate of spec to "<name>-<its name>" and points
 * the volumes that use one at its new name. */
static int replica__disks(cJSON *spec, const struct replica_spec *s, struct replica_changes *ch,
                          char **err)
{
    cJSON *dvts = replica__get(spec, "dataVolumeTemplates"), *it;
    cJSON *vols = replica__get(replica__get(replica__get(spec, "template"), "spec"), "volumes");
    struct replica__rename *r = NULL;
    size_t n = 0, i = 0;
    int rc = 0;

    if (!cJSON_IsArray(vols))
        vols = NULL;

    if (dvts && !cJSON_IsArray(dvts))
        return replica__fail(err, s->member, "spec.dataVolumeTemplates: must be a list, not %s",
                             text_json_type(dvts));
    r = xcalloc((size_t)cJSON_GetArraySize(dvts) + 1, sizeof(*r));
    cJSON_ArrayForEach(it, dvts)
    {
        cJSON *meta = replica__get(it, "metadata");
        const char *old = replica__str(meta, "name");
        char *w;

        if (!old || !*old) {
            rc = replica__fail(err, s->member,
                               "spec.dataVolumeTemplates[%zu].metadata.name: required", i);
            goto out;
        }
        if (strlen(s->name) + 1 + strlen(old) > REPLICA_MAX_DV_NAME) {
            w = replica__word(old);
            rc = replica__fail(err, s->member,
                               "spec.dataVolumeTemplates[%zu]: renamed for the replacement, "
                               "%s-%s would be longer than %d characters",
                               i, s->name, w, REPLICA_MAX_DV_NAME);
            free(w);
            goto out;
        }
        r[n].from = old;
        r[n].to = xasprintf("%s-%s", s->name, old);
        if (ch) {
            cJSON *to = cJSON_CreateString(r[n].to);
            char *dat = xasprintf("/spec/dataVolumeTemplates/%zu/metadata", i);

            w = replica__word(old);
            replica__note(ch, "replace", dat, "name", to, replica__get(meta, "name"),
                          "renamed dataVolumeTemplate %s to %s", w, r[n].to);
            free(w);
            free(dat);
            cJSON_Delete(to);
        }
        n++;
        i++;
    }
    qsort(r, n, sizeof(*r), replica__rename_cmp);
    i = 0;
    cJSON_ArrayForEach(it, vols)
    {
        static const struct {
            const char *source, *field;
        } uses[] = {{"dataVolume", "name"}, {"persistentVolumeClaim", "claimName"}};
        const char *vname = replica__str(it, "name");

        for (size_t u = 0; u < 2; u++) {
            cJSON *src = replica__get(it, uses[u].source);
            const char *from = replica__str(src, uses[u].field);
            const char *to = from ? replica__renamed(r, n, from) : NULL;

            if (!to)
                continue;
            if (ch) {
                cJSON *nv = cJSON_CreateString(to);
                char *w = vname ? replica__word(vname) : xstrdup("(unnamed)");
                char *vat = xasprintf("/spec/template/spec/volumes/%zu/%s", i, uses[u].source);

                replica__note(ch, "replace", vat, uses[u].field, nv,
                              replica__get(src, uses[u].field), "pointed volume %s at %s %s", w,
                              uses[u].source, to);
                cJSON_Delete(nv);
                free(vat);
                free(w);
            }
            replica__set(src, uses[u].field, to);
        }
        i++;
    }
    /* the names change last: r borrows the old ones */
    cJSON_ArrayForEach(it, dvts)
    {
        cJSON *meta = replica__get(it, "metadata");
        char *to = xasprintf("%s-%s", s->name, replica__str(meta, "name"));

        replica__set(meta, "name", to);
        free(to);
    }
out:
    for (size_t k = 0; k < n; k++)
        free(r[k].to);
    free(r);
    return rc;
}

int replica_build(const char *vm_json, const struct replica_spec *s, cJSON **out,
                  struct replica_changes *changes_out, char **err)
{
    cJSON *vm = cJSON_Parse(vm_json), *spec, *tmpl, *tspec, *tmeta, *meta = NULL, *always;
    struct replica_changes mine = {0}, *changes = changes_out ? &mine : NULL;
    const char *kind = replica__str(vm, "kind"), *api = replica__str(vm, "apiVersion");
    const cJSON *rs_item;
    char *disk = NULL;
    int rc = 0;

    *out = NULL;
    *err = NULL;
    if (!kind || strcmp(kind, "VirtualMachine") != 0 || !api ||
        strncmp(api, "kubevirt.io/", 12) != 0) {
        rc = replica__fail(err, s->member, "not a VirtualMachine (kubevirt.io)");
        goto out;
    }
    spec = replica__get(vm, "spec");
    tmpl = replica__get(spec, "template");
    if (!cJSON_IsObject(spec) || !cJSON_IsObject(tmpl)) {
        rc = replica__fail(err, s->member, "spec.template: required");
        goto out;
    }
    if (replica_shared_disk(vm, &disk)) {
        rc = replica__fail(err, s->member, "%s", disk);
        goto out;
    }
    /* the metadata's changes first: a reader meets the name first */
    meta = replica__metadata(replica__get(vm, "metadata"), s, changes);
    /* the rest of the member's object (status) is not the replacement's */
    {
        static const char *const built[] = {"apiVersion", "kind", "metadata", "spec", NULL};

        replica__note_rest(changes, vm, built, "", "");
    }
    /* spec, changed in place, then moved into the new object */
    rs_item = replica__get(spec, "runStrategy");
    always = cJSON_CreateString("Always");
    if (!always)
        abort();
    if (!cJSON_IsString(rs_item)) {
        replica__note(changes, rs_item ? "replace" : "add", "/spec", "runStrategy", always, rs_item,
                      "set runStrategy Always");
    } else if (strcmp(rs_item->valuestring, "Always") != 0) {
        char *w = replica__word(rs_item->valuestring);

        replica__note(changes, "replace", "/spec", "runStrategy", always, rs_item,
                      "set runStrategy Always (was %s)", w);
        free(w);
    }
    cJSON_Delete(always);
    replica__drop_noted(changes, spec, "/spec", "running", "dropped running (runStrategy says it)");
    replica__set(spec, "runStrategy", "Always");
    replica__drop_noted(changes, replica__get(spec, "instancetype"), "/spec/instancetype",
                        "revisionName", "dropped instancetype.revisionName");
    replica__drop_noted(changes, replica__get(spec, "preference"), "/spec/preference",
                        "revisionName", "dropped preference.revisionName");
    tmeta = replica__template_metadata(replica__get(tmpl, "metadata"), s, changes);
    replica__drop(tmpl, "metadata");
    cJSON_AddItemToObject(tmpl, "metadata", tmeta);
    tspec = replica__get(tmpl, "spec");
    if (cJSON_IsObject(tspec))
        replica__clean_template_spec(tspec, changes);
    if ((rc = replica__disks(spec, s, changes, err)))
        goto out;

    *out = cJSON_CreateObject();
    if (!*out)
        abort();
    cJSON_AddStringToObject(*out, "apiVersion", api);
    cJSON_AddStringToObject(*out, "kind", "VirtualMachine");
    cJSON_AddItemToObject(*out, "metadata", meta);
    meta = NULL;
    cJSON_AddItemToObject(*out, "spec", cJSON_DetachItemViaPointer(vm, spec));
    if (changes) {
        size_t n = changes_out->n + mine.n;

        changes_out->line = xreallocarray(changes_out->line, n, sizeof(*changes_out->line));
        changes_out->item = xreallocarray(changes_out->item, n, sizeof(*changes_out->item));
        memcpy(changes_out->line + changes_out->n, mine.line, mine.n * sizeof(*mine.line));
        memcpy(changes_out->item + changes_out->n, mine.item, mine.n * sizeof(*mine.item));
        changes_out->n = n;
        free(mine.line);
        free(mine.item);
        memset(&mine, 0, sizeof(mine));
    }
out:
    replica_changes_free(&mine);
    cJSON_Delete(meta);
    free(disk);
    cJSON_Delete(vm);
    return rc;
}
