/*
 * cli — the offline `kvrecover` command. See cli.h.
 *
 * Files become cJSON through yaml.h, then go through the very parsers the
 * controller uses for API objects, so that the CLI and the controller never
 * disagree about what a policy or a pool member means. Must never: print a
 * diagnostic over two lines (every input byte that reaches the error stream
 * is made printable first), accept a file it only half understood, or exit
 * without freeing what it loaded.
 */
#include "cmd/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/text.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "sim/features.h"
#include "sim/policy.h"
#include "sim/pool.h"
#include "sim/replica.h"
#include "sim/sim.h"

/* The command line of `kvrecover score`. */
struct cli__opts {
    const char *policy; /* --policy FILE */
    const char **pools; /* --pool FILE, in order */
    size_t npools;      /* entries in pools */
    const char *failed; /* --failed FILE */
    int json;           /* --output json */
    int verbose;        /* -v */
};

/* One object found in a file: a document, or an item of a `kind: List`. */
struct cli__obj {
    const cJSON *obj; /* owned by the file's docs */
    char where[64];   /* "document 2: ", "document 1: items[3]: " or "" */
};

/* A YAML file, loaded. */
struct cli__file {
    const char *path;      /* as given on the command line */
    cJSON *docs;           /* yaml_parse()'s array of documents */
    struct cli__obj *objs; /* the objects in it, List items flattened */
    size_t n;              /* entries in objs */
};

static const char cli__usage[] =
    "Usage: kvrecover COMMAND [OPTIONS]\n"
    "\n"
    "kvrecover recovers failed KubeVirt VirtualMachineInstances by creating a\n"
    "replacement VirtualMachine from the most similar member of a spec pool.\n"
    "This command scores a pool offline, without a cluster, exactly as the\n"
    "controller (kvrecover-controller) would.\n"
    "\n"
    "Commands:\n"
    "  score       rank the spec pool against a failed VM (kvrecover score --help)\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "  --version   print the version\n"
    "\n"
    "Exit status: 0 when the command ran, 2 on bad input or usage.\n";

static const char cli__score_usage[] =
    "Usage: kvrecover score --policy FILE --pool FILE [--pool FILE ...] --failed FILE\n"
    "                       [--output table|json] [-v]\n"
    "\n"
    "Scores every member of the spec pool by weighted similarity to the failed VM\n"
    "and shows which one a replacement would be built from.\n"
    "\n"
    "Options:\n"
    "  --policy FILE        the RecoveryPolicy (kvrecover.io/v1alpha1): weights,\n"
    "                       threshold, mode (Jaccard or Coverage), required categories\n"
    "  --pool FILE          spec-pool ConfigMaps (data.features, data.resources,\n"
    "                       data.vm); repeat for several files. Every ConfigMap in\n"
    "                       these files is a member; spec.poolSelector is not applied\n"
    "  --failed FILE        the VM to recover: a VirtualMachineInstance or a\n"
    "                       VirtualMachine (annotation kvrecover.io/features, optional\n"
    "                       kvrecover.io/resources, else cpu and memory from the\n"
    "                       domain), or a pool ConfigMap\n"
    "  -o, --output FORMAT  table (default): aligned columns for people;\n"
    "                       json: one object for scripts\n"
    "  -v, --verbose        table: add each weighted category's contribution to the\n"
    "                       score; json: add \"detail\" to ineligible candidates\n"
    "  -h, --help           show this help\n"
    "\n"
    "FILE is YAML (or JSON); several documents (---) and `kind: List` are accepted.\n"
    "A FILE of - is standard input (for one of the options only).\n"
    "\n"
    "Scoring: every pool member except the failed VM itself (same name, or a\n"
    "kvrecover.io/vm label equal to its name) is a candidate, scored in [0, 1]:\n"
    "  Jaccard   W(A and B) / W(A or B)\n"
    "  Coverage  W(A and B) / W(A)\n"
    "where each feature item weighs its category's weight and cpu, memory and disk\n"
    "add w*min(a,b)/max(a,b) (Coverage: w*min(1, b/a)). Candidates are sorted by\n"
    "score, then name. A candidate is ineligible when a required category differs\n"
    "(RequiredMismatch), its score is below the threshold (BelowThreshold), it has\n"
    "no data.vm (NoTemplate), or its data.vm uses a PVC or DataVolume that none of\n"
    "its own dataVolumeTemplates makes (SharedDisk: two VMs must not share a disk).\n"
    "The first eligible candidate is selected.\n"
    "\n"
    "The replacement: what the controller would create from the selected member's\n"
    "data.vm, named <failed VM>-<10 hex digits of the failed VMI's uid>, with the\n"
    "failed VM's labels and template labels (from a VirtualMachine, from a VMI's\n"
    "labels without KubeVirt's, or from a ConfigMap's data.vm), each\n"
    "dataVolumeTemplate renamed, no firmware uuid or MAC address, and runStrategy\n"
    "Always. A template that cannot be built from is refused as the controller\n"
    "refuses it (NoTemplate, with why) and the next candidate is tried.\n"
    "\n"
    "Table: a summary, then columns RANK NAME SCORE ELIGIBLE REASON (the selected row\n"
    "marked *), then the replacement's name and one line per change to the member.\n"
    "JSON: {\"failed\", \"mode\", \"threshold\", \"selected\" (or null), \"candidates\":\n"
    "[{\"name\", \"score\", \"eligible\", \"reason\", \"contributions\"}], \"replacement\"\n"
    "(or null): {\"name\", \"from\", \"failedUid\" (or null), \"changes\": [{\"op\", \"path\",\n"
    "\"value\", \"old\", \"text\"}], \"notes\"}}; op and path as in a JSON Patch on the\n"
    "member's data.vm, value what the replacement has, old what the member had.\n"
    "\n"
    "Exit status: 0 when scoring ran, whether or not a candidate was selected;\n"
    "2 on bad input (one line on stderr: \"kvrecover: FILE: what is wrong\") or usage.\n"
    "\n"
    "Example:\n"
    "  kvrecover score --policy examples/paper/policy.yaml \\\n"
    "      --pool examples/paper/pool.yaml --failed examples/paper/failed-vmi.yaml\n";

/* Writes "kvrecover: <message>\n" to err as one line of printable text. */
static int cli__fail(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cli__fail(FILE *err, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    fprintf(err, "kvrecover: %s\n", msg);
    free(msg);
    return CLI_EXIT_USAGE;
}

/* s for a message: as it is when it is a plain word, else quoted. The
 * caller frees. */
static char *cli__word(const char *s)
{
    const char *p = s;

    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("-_./=", *p)))
            break;
    return *s && !*p && p - s <= TEXT_QUOTE_MAX ? xstrdup(s) : text_quote(s);
}

/* A usage error: one line, ending with where to look; arg, when not NULL,
 * is appended as a word. */
static int cli__usage_error(FILE *err, const char *what, const char *arg)
{
    char *w = arg ? cli__word(arg) : NULL;
    int rc =
        cli__fail(err, "%s%s%s (see 'kvrecover score --help')", what, w ? " " : "", w ? w : "");

    free(w);
    return rc;
}

/* What obj is, for messages: "kind Pod", "a list", "no kind". */
static char *cli__describe(const cJSON *obj)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
    char *q, *s;

    if (cJSON_IsArray(obj))
        return xstrdup("a list");
    if (!cJSON_IsObject(obj))
        return xstrdup(cJSON_IsString(obj) ? "a string" : "a scalar");
    if (!cJSON_IsString(kind))
        return xstrdup("no kind");
    q = cli__word(kind->valuestring);
    s = xasprintf("kind %s", q);
    free(q);
    return s;
}

static void cli__file_free(struct cli__file *f)
{
    cJSON_Delete(f->docs);
    free(f->objs);
    memset(f, 0, sizeof(*f));
}

static void cli__file_add(struct cli__file *f, const cJSON *obj, const char *where)
{
    f->objs = xreallocarray(f->objs, f->n + 1, sizeof(*f->objs));
    f->objs[f->n].obj = obj;
    snprintf(f->objs[f->n].where, sizeof(f->objs[f->n].where), "%s", where);
    f->n++;
}

/* Whether doc is a `kind: List` (apiVersion v1 or none), kubectl's way of
 * putting many objects in one document. */
static int cli__is_list(const cJSON *doc)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(doc, "apiVersion");

    return cJSON_IsObject(doc) && cJSON_IsString(kind) && strcmp(kind->valuestring, "List") == 0 &&
           (!api || (cJSON_IsString(api) && strcmp(api->valuestring, "v1") == 0));
}

/* Reads and parses path into *f, flattening List items. Returns 0, or exit
 * status 2 after writing the diagnostic. */
static int cli__file_load(struct cli__file *f, const char *path, FILE *err)
{
    struct buf b = {0};
    char *msg = NULL, where[32];
    const char *name = strcmp(path, "-") == 0 ? "/dev/stdin" : path;
    struct stat st;
    int rc, ndocs, i = 0;
    const cJSON *doc;

    memset(f, 0, sizeof(*f));
    f->path = path;
    /* a directory opens and then fails to read with EIO: say what it is */
    if (stat(name, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = cli__fail(err, "%s: is a directory, not a YAML file", path);
        goto out;
    }
    rc = buf_read_file(&b, name, CLI_MAX_FILE);
    if (rc == -EFBIG) {
        rc = cli__fail(err, "%s: larger than %u MiB", path, CLI_MAX_FILE >> 20);
        goto out;
    }
    if (rc) {
        rc = cli__fail(err, "%s: cannot read: %s", path, strerror(-rc));
        goto out;
    }
    if (yaml_parse_opts(b.data, b.len, &yaml_opts_file, &f->docs, &msg)) {
        rc = cli__fail(err, "%s: %s", path, msg);
        goto out;
    }
    ndocs = cJSON_GetArraySize(f->docs);
    if (ndocs == 0) {
        rc = cli__fail(err, "%s: no YAML document (empty file)", path);
        goto out;
    }
    cJSON_ArrayForEach(doc, f->docs)
    {
        const cJSON *items, *item;
        int j = 0;

        i++;
        if (ndocs > 1)
            snprintf(where, sizeof(where), "document %d: ", i);
        else
            where[0] = '\0';
        if (!cli__is_list(doc)) {
            cli__file_add(f, doc, where);
            continue;
        }
        items = cJSON_GetObjectItemCaseSensitive(doc, "items");
        if (items && !cJSON_IsNull(items) && !cJSON_IsArray(items)) {
            rc = cli__fail(err, "%s: %sitems: must be a list", path, where);
            goto out;
        }
        cJSON_ArrayForEach(item, items)
        {
            char at[64];

            snprintf(at, sizeof(at), "%sitems[%d]: ", where, j++);
            cli__file_add(f, item, at);
        }
    }
out:
    if (rc)
        cli__file_free(f);
    free(msg);
    buf_free(&b);
    return rc;
}

/* Loads the policy file: exactly one RecoveryPolicy. */
static int cli__load_policy(const char *path, struct policy *pol, FILE *err)
{
    struct cli__file f;
    char *msg = NULL, *what = NULL;
    const cJSON *kind;
    int rc = cli__file_load(&f, path, err);

    if (rc)
        return rc;
    if (f.n != 1) {
        rc = cli__fail(err, "%s: expected one RecoveryPolicy, found %zu objects", path, f.n);
        goto out;
    }
    kind = cJSON_GetObjectItemCaseSensitive(f.objs[0].obj, "kind");
    if (!cJSON_IsObject(f.objs[0].obj) ||
        (kind && (!cJSON_IsString(kind) || strcmp(kind->valuestring, "RecoveryPolicy") != 0))) {
        what = cli__describe(f.objs[0].obj);
        rc = cli__fail(err, "%s: %s%s, not a RecoveryPolicy", path, f.objs[0].where, what);
        goto out;
    }
    if (policy_from_json(f.objs[0].obj, pol, &msg)) {
        rc = cli__fail(err, "%s: %s%s", path, f.objs[0].where, msg);
        goto out;
    }
out:
    free(what);
    free(msg);
    cli__file_free(&f);
    return rc;
}

/* The members' data.vm text, kept from loading to printing and handed to
 * the pool as each member's data. The text as the file has it: copying it
 * costs next to nothing, and only the selected member's is parsed again
 * (cli__template_json()). */
struct cli__templates {
    char **text; /* owned */
    size_t n;    /* entries in text */
    size_t cap;  /* entries allocated */
};

static void cli__templates_free(struct cli__templates *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->text[i]);
    free(t->text);
    memset(t, 0, sizeof(*t));
}

/* Keeps a copy of the data.vm of ConfigMap cm; returns it (owned by t). */
static const char *cli__templates_add(struct cli__templates *t, const cJSON *cm)
{
    const cJSON *vm =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cm, "data"), "vm");

    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->text = xreallocarray(t->text, t->cap, sizeof(*t->text));
    }
    t->text[t->n++] = xstrdup(cJSON_IsString(vm) ? vm->valuestring : "");
    return t->text[t->n - 1];
}

/* Member's data.vm text as the compact JSON replica_build() reads, parsed
 * by pool_member_from_json() as when it was loaded. Returns it (the caller
 * frees with cJSON_free()), or NULL with *err (the caller frees). */
static char *cli__template_json(const char *member, const char *text, char **err)
{
    cJSON *cm = cJSON_CreateObject(), *meta, *data;
    struct pool_member m = {0};
    char *json = NULL;

    if (!cm)
        abort();
    cJSON_AddStringToObject(cm, "apiVersion", "v1");
    cJSON_AddStringToObject(cm, "kind", "ConfigMap");
    meta = cJSON_AddObjectToObject(cm, "metadata");
    data = cJSON_AddObjectToObject(cm, "data");
    cJSON_AddStringToObject(meta, "name", member);
    cJSON_AddStringToObject(data, "vm", text);
    *err = NULL;
    if (pool_member_from_json(cm, &m, err) == 0 && m.vm_template) {
        json = cJSON_PrintUnformatted(m.vm_template);
        if (!json)
            abort(); /* cJSON only fails to print when out of memory */
    } else if (!*err) {
        *err = xstrdup("no data.vm to build a replacement from");
    }
    pool_member_free(&m);
    cJSON_Delete(cm);
    return json;
}

/* Adds every ConfigMap of one pool file to the pool, keeping each
 * template in t. */
static int cli__load_pool(const char *path, struct sim_pool *pool, struct cli__templates *t,
                          FILE *err)
{
    struct cli__file f;
    struct pool_member m = {0};
    char *msg = NULL, *what = NULL;
    int rc = cli__file_load(&f, path, err);

    if (rc)
        return rc;
    for (size_t i = 0; i < f.n && !rc; i++) {
        const struct cli__obj *o = &f.objs[i];
        struct sim_member mi;
        char *disk = NULL;
        int added;

        if (!pool_is_configmap(o->obj)) {
            what = cli__describe(o->obj);
            rc = cli__fail(err, "%s: %s%s, not a ConfigMap (apiVersion v1)", path, o->where, what);
            break;
        }
        if (pool_member_from_json(o->obj, &m, &msg)) {
            rc = cli__fail(err, "%s: %s%s", path, o->where, msg);
            break;
        }
        mi = (struct sim_member){m.name, m.vm, &m.features, 0, NULL, NULL};
        if (m.vm_template) {
            mi.flags |= SIM_MEMBER_TEMPLATE;
            mi.data = cli__templates_add(t, o->obj);
        }
        if (m.vm_template && replica_shared_disk(m.vm_template, &disk))
            mi.flags |= SIM_MEMBER_SHARED_DISK;
        mi.disk = disk;
        added = sim_pool_put(pool, &mi);
        free(disk);
        disk = NULL;
        if (added == -EEXIST)
            rc = cli__fail(err, "%s: %sConfigMap %s: a pool member of that name is already loaded",
                           path, o->where, m.name);
        else if (added)
            rc = cli__fail(err, "%s: %sConfigMap %s: too large (at most %u feature items)", path,
                           o->where, m.name, FEATURES_MAX_ITEMS);
        /* the pool copied what it scores; the member is not needed any more */
        pool_member_free(&m);
    }
    free(what);
    free(msg);
    cli__file_free(&f);
    return rc;
}

/* The failed VM as sim_rank() wants it, and what of it a replacement
 * carries, as far as the file says; everything owned by the struct. */
struct cli__failed {
    char *kind;  /* VirtualMachineInstance, VirtualMachine or ConfigMap */
    char *name;  /* the VM's name (a ConfigMap's kvrecover.io/vm label) */
    char *alias; /* a ConfigMap's own name, or NULL */
    struct features features;
    char *ns;              /* metadata.namespace, or NULL */
    char *uid;             /* the uid the controller would name the replacement by, or NULL */
    cJSON *labels;         /* the VM's metadata.labels, or NULL (none, or not in the file) */
    cJSON *tlabels;        /* its template's labels, or NULL */
    const char *no_labels; /* static: why the VM's own labels are unknown, or NULL */
};

static void cli__failed_free(struct cli__failed *fv)
{
    free(fv->kind);
    free(fv->name);
    free(fv->alias);
    features_free(&fv->features);
    free(fv->ns);
    free(fv->uid);
    cJSON_Delete(fv->labels);
    cJSON_Delete(fv->tlabels);
    memset(fv, 0, sizeof(*fv));
}

static const cJSON *cli__get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* o[key] when it is a non-empty string, else NULL. */
static const char *cli__str(const cJSON *o, const char *key)
{
    const cJSON *v = cli__get(o, key);

    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static char *cli__dup(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* A copy of a labels mapping, or NULL when it is not one. */
static cJSON *cli__labels(const cJSON *m)
{
    cJSON *c;

    if (!cJSON_IsObject(m))
        return NULL;
    c = cJSON_Duplicate(m, 1);
    if (!c)
        abort(); /* cJSON fails only when out of memory; xmalloc would abort too */
    return c;
}

/* What a VirtualMachine vm says of the failed VM's identity: its labels,
 * its template's, and the uid the controller names a replacement by (a
 * crash loop's last failed VMI, else the VM's own, as the controller does
 * when there is no VMI). */
static void cli__identity_of_vm(const cJSON *vm, struct cli__failed *fv)
{
    const cJSON *meta = cli__get(vm, "metadata");
    const char *uid =
        cli__str(cli__get(cli__get(vm, "status"), "startFailure"), "lastFailedVMIUID");

    fv->labels = cli__labels(cli__get(meta, "labels"));
    fv->tlabels = cli__labels(
        cli__get(cli__get(cli__get(cli__get(vm, "spec"), "template"), "metadata"), "labels"));
    fv->uid = cli__dup(uid ? uid : cli__str(meta, "uid"));
}

/* What a VirtualMachineInstance says: KubeVirt gives a VMI its template's
 * labels (SetupVMIFromVM) and adds its own, which are dropped here; the
 * VM's own labels are not in it. */
static void cli__identity_of_vmi(const cJSON *vmi, struct cli__failed *fv)
{
    /* KubeVirt v1.8.4's labels on a VMI: virt-controller's lifecycle and
     * migration code, virt-handler's */
    static const char *const kubevirts[] = {
        "kubevirt.io/nodeName",
        "kubevirt.io/migrationTargetNodeName",
        "kubevirt.io/outdatedLauncherImage",
        "kubevirt.io/vmi-pod-cpu-resource-limits",
        "kubevirt.io/vmi-pod-memory-resource-requests",
        "kubevirt.io/memory-hotplug-overhead-ratio",
    };
    const cJSON *meta = cli__get(vmi, "metadata");

    fv->tlabels = cli__labels(cli__get(meta, "labels"));
    for (size_t i = 0; fv->tlabels && i < sizeof(kubevirts) / sizeof(kubevirts[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(fv->tlabels, kubevirts[i]);
    fv->uid = cli__dup(cli__str(meta, "uid"));
    fv->no_labels = "the failed VM's own labels are not in a VirtualMachineInstance; the "
                    "controller gives the replacement the VM's (give the VirtualMachine to see "
                    "them)";
}

/* What a pool ConfigMap says: its data.vm is the VM; its own labels are
 * the pool's. Returns 0, or exit status 2 after the diagnostic. */
static int cli__identity_of_configmap(const char *path, const struct cli__obj *o,
                                      struct cli__failed *fv, FILE *err)
{
    struct pool_member m = {0};
    char *msg = NULL;
    int rc = 0;

    if (pool_member_from_json(o->obj, &m, &msg)) {
        rc = cli__fail(err, "%s: %s%s", path, o->where, msg);
        goto out;
    }
    if (m.vm_template)
        cli__identity_of_vm(m.vm_template, fv);
    else
        fv->no_labels = "the failed VM's labels are not in a ConfigMap without data.vm; the "
                        "controller gives the replacement the VM's";
out:
    free(msg);
    pool_member_free(&m);
    return rc;
}

/* Loads the failed VM: one VirtualMachineInstance, VirtualMachine or pool
 * ConfigMap with a name and something to compare. */
static int cli__load_failed(const char *path, struct cli__failed *fv, FILE *err)
{
    struct cli__file f;
    const cJSON *obj, *meta, *name, *kind, *label;
    char *msg = NULL, *what = NULL;
    int rc = cli__file_load(&f, path, err);

    memset(fv, 0, sizeof(*fv));
    if (rc)
        return rc;
    if (f.n != 1) {
        rc = cli__fail(err,
                       "%s: expected one VirtualMachineInstance, VirtualMachine or ConfigMap, "
                       "found %zu objects",
                       path, f.n);
        goto out;
    }
    obj = f.objs[0].obj;
    if (!cJSON_IsObject(obj)) {
        what = cli__describe(obj);
        rc = cli__fail(err, "%s: %s%s, not a VirtualMachineInstance, VirtualMachine or ConfigMap",
                       path, f.objs[0].where, what);
        goto out;
    }
    kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
    meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    name = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "name") : NULL;
    if (features_from_object(obj, &fv->features, &msg)) {
        /* name the object when it is one of ours; a wrong kind says so itself */
        if (cJSON_IsString(name) && *name->valuestring && cJSON_IsString(kind) &&
            strncmp(msg, "kind ", 5) != 0) {
            what = cli__word(name->valuestring);
            rc = cli__fail(err, "%s: %s%s %s: %s", path, f.objs[0].where, kind->valuestring, what,
                           msg);
        } else {
            rc = cli__fail(err, "%s: %s%s", path, f.objs[0].where, msg);
        }
        goto out;
    }
    fv->kind = xstrdup(kind->valuestring); /* features_from_object() checked it */
    if (!cJSON_IsString(name) || !*name->valuestring) {
        rc = cli__fail(err, "%s: %s%s: metadata.name: required", path, f.objs[0].where, fv->kind);
        goto out;
    }
    fv->name = xstrdup(name->valuestring);
    fv->ns = cli__dup(cli__str(meta, "namespace"));
    if (strcmp(fv->kind, "ConfigMap") == 0) {
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");

        label =
            cJSON_IsObject(labels) ? cJSON_GetObjectItemCaseSensitive(labels, POOL_VM_LABEL) : NULL;
        if (cJSON_IsString(label) && *label->valuestring) {
            fv->alias = fv->name;
            fv->name = xstrdup(label->valuestring);
        }
    }
    if (!fv->features.has_features && !fv->features.has_res) {
        what = cli__word(name->valuestring);
        rc = cli__fail(err, "%s: %s%s %s: nothing to compare: %s", path, f.objs[0].where, fv->kind,
                       what,
                       strcmp(fv->kind, "ConfigMap") == 0 ? "no data.features or data.resources"
                                                          : "no " FEATURES_ANNOTATION
                                                            " annotation, cpu or memory");
        goto out;
    }
    if (strcmp(fv->kind, "VirtualMachine") == 0)
        cli__identity_of_vm(obj, fv);
    else if (strcmp(fv->kind, "VirtualMachineInstance") == 0)
        cli__identity_of_vmi(obj, fv);
    else
        rc = cli__identity_of_configmap(path, &f.objs[0], fv, err);
out:
    if (rc)
        cli__failed_free(fv);
    free(what);
    free(msg);
    cli__file_free(&f);
    return rc;
}

/* The replacement `score` shows, built as the controller builds it
 * (reconcile/incident.c): replica_build() of the first eligible candidate,
 * and when a template does not build, that candidate refused (NoTemplate)
 * and the next one tried. */
struct cli__repl {
    long cand;                 /* index in the result of the member built from, or -1 */
    char *name;                /* the replacement's name (replica_name()), or NULL */
    struct replica_changes ch; /* what it changes of the member's data.vm */
    char **why;                /* per candidate: why its template did not build, or NULL */
    size_t nwhy;               /* entries in why */
    const char *note[2];       /* static: what the file does not say */
    size_t nnotes;             /* entries in note */
};

static void cli__repl_free(struct cli__repl *rp)
{
    free(rp->name);
    replica_changes_free(&rp->ch);
    for (size_t i = 0; i < rp->nwhy; i++)
        free(rp->why[i]);
    free(rp->why);
    memset(rp, 0, sizeof(*rp));
}

/* Builds the replacement of fv from res's selection into *rp, refusing in
 * res the candidates whose template does not build. */
static void cli__repl_build(const struct sim_pool *pool, const struct policy *pol,
                            const struct cli__failed *fv, struct sim_result *res,
                            struct cli__repl *rp)
{
    memset(rp, 0, sizeof(*rp));
    rp->cand = -1;
    rp->nwhy = res->n;
    rp->why = xcalloc(res->n ? res->n : 1, sizeof(*rp->why));
    /* the controller hashes the failed VMI's uid; without one the name is
     * shown as an empty uid makes it */
    rp->name = replica_name(fv->name, fv->uid ? fv->uid : "");
    while (res->selected >= 0) {
        size_t i = (size_t)res->selected;
        const struct sim_candidate *c = &res->cand[i];
        const char *member = sim_pool_name(pool, c->member);
        const char *text = sim_pool_data(pool, c->member);
        struct replica_spec s = {pol->namespace ? pol->namespace : fv->ns,
                                 rp->name,
                                 fv->name,
                                 fv->labels,
                                 fv->tlabels,
                                 pol->name ? pol->name : "",
                                 member,
                                 c->score,
                                 fv->uid,
                                 NULL};
        cJSON *vm = NULL;
        char *err = NULL, *prefix, *tmpl = NULL;
        int built;

        if (text)
            tmpl = cli__template_json(member, text, &err);
        built = tmpl && replica_build(tmpl, &s, &vm, &rp->ch, &err) == 0;
        cJSON_free(tmpl);
        cJSON_Delete(vm);
        if (built) {
            rp->cand = (long)i;
            break;
        }
        /* the row names the member already */
        prefix = xasprintf("pool member %s: ", member);
        if (err && strncmp(err, prefix, strlen(prefix)) == 0)
            memmove(err, err + strlen(prefix), strlen(err + strlen(prefix)) + 1);
        free(prefix);
        rp->why[i] = err ? err : xstrdup("no data.vm to build a replacement from");
        sim_result_refuse(res, i, SIM_NO_TEMPLATE);
    }
    if (rp->cand < 0) {
        free(rp->name);
        rp->name = NULL;
        return;
    }
    if (fv->no_labels)
        rp->note[rp->nnotes++] = fv->no_labels;
    if (!fv->uid)
        rp->note[rp->nnotes++] = "the file has no uid: the controller's name ends in 10 hex digits "
                                 "of the failed VMI's uid, not these";
}

/* The replacement as JSON: null, or {"name", "from", "failedUid",
 * "changes": [{"op", "path", "value", "old", "text"}], "notes"}. */
static cJSON *cli__repl_json(const struct sim_pool *pool, const struct sim_result *res,
                             const struct cli__failed *fv, const struct cli__repl *rp)
{
    cJSON *o, *changes, *notes;

    if (rp->cand < 0)
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    if (!o)
        abort();
    cJSON_AddStringToObject(o, "name", rp->name);
    cJSON_AddStringToObject(o, "from", sim_pool_name(pool, res->cand[rp->cand].member));
    if (fv->uid)
        cJSON_AddStringToObject(o, "failedUid", fv->uid);
    else
        cJSON_AddNullToObject(o, "failedUid");
    changes = cJSON_AddArrayToObject(o, "changes");
    for (size_t i = 0; i < rp->ch.n; i++) {
        const struct replica_change *it = &rp->ch.item[i];
        cJSON *c = cJSON_CreateObject();

        if (!c)
            abort();
        cJSON_AddItemToArray(changes, c);
        cJSON_AddStringToObject(c, "op", it->op);
        cJSON_AddStringToObject(c, "path", it->path);
        if (it->value)
            cJSON_AddItemToObject(c, "value", cJSON_Duplicate(it->value, 1));
        if (it->old)
            cJSON_AddItemToObject(c, "old", cJSON_Duplicate(it->old, 1));
        cJSON_AddStringToObject(c, "text", rp->ch.line[i]);
    }
    notes = cJSON_AddArrayToObject(o, "notes");
    for (size_t i = 0; i < rp->nnotes; i++)
        cJSON_AddItemToArray(notes, cJSON_CreateString(rp->note[i]));
    return o;
}

/* A copy of s with control bytes made visible as '?', for the terminal. */
static char *cli__printable(const char *s)
{
    char *c = xstrdup(s ? s : "");

    for (unsigned char *p = (unsigned char *)c; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

/* A table of strings printed with aligned columns; the last column is not
 * padded. */
struct cli__table {
    char **cell;   /* rows * cols cells, row-major, owned */
    size_t rows;   /* rows filled */
    size_t cols;   /* columns per row */
    size_t *width; /* widest cell per column */
};

static void cli__table_init(struct cli__table *t, size_t cols)
{
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->width = xcalloc(cols, sizeof(*t->width));
}

/* Takes ownership of the cols strings in row. */
static void cli__table_row(struct cli__table *t, char **row)
{
    t->cell = xreallocarray(t->cell, (t->rows + 1) * t->cols, sizeof(*t->cell));
    for (size_t c = 0; c < t->cols; c++) {
        size_t w = strlen(row[c]);

        t->cell[t->rows * t->cols + c] = row[c];
        if (w > t->width[c])
            t->width[c] = w;
    }
    t->rows++;
}

static void cli__table_print(const struct cli__table *t, FILE *out)
{
    for (size_t r = 0; r < t->rows; r++) {
        struct buf line = {0};

        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cell[r * t->cols + c];

            buf_puts(&line, s);
            if (c + 1 < t->cols)
                buf_printf(&line, "%*s", (int)(t->width[c] - strlen(s) + 2), "");
        }
        while (line.len && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        fprintf(out, "%s\n", line.data ? line.data : "");
        buf_free(&line);
    }
}

static void cli__table_free(struct cli__table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cell[i]);
    free(t->cell);
    free(t->width);
    memset(t, 0, sizeof(*t));
}

/* After the ranking: the replacement's name and what it changes. */
static void cli__print_repl(const struct sim_pool *pool, const struct sim_result *res,
                            const struct cli__repl *rp, FILE *out)
{
    char *name, *from;

    if (rp->cand < 0)
        return;
    name = cli__printable(rp->name);
    from = cli__printable(sim_pool_name(pool, res->cand[rp->cand].member));
    fprintf(out, "\nreplacement %s, built from %s's data.vm:\n", name, from);
    for (size_t i = 0; i < rp->ch.n; i++) {
        char *line = cli__printable(rp->ch.line[i]);

        fprintf(out, "  - %s\n", line);
        free(line);
    }
    if (!rp->ch.n)
        fputs("  (nothing: the member's VirtualMachine is used as it is)\n", out);
    for (size_t i = 0; i < rp->nnotes; i++)
        fprintf(out, "note: %s\n", rp->note[i]);
    free(name);
    free(from);
}

/* The ranking for people: a summary line, then one row per candidate. */
static void cli__print_table(const struct cli__opts *o, const struct sim_ranker *r,
                             const struct sim_pool *pool, const struct policy *pol,
                             const struct cli__failed *fv, const struct sim_result *res,
                             const struct cli__repl *rp, FILE *out)
{
    struct cli__table t;
    size_t ncat = 0, cols;
    size_t *cat = xcalloc(pol->nweights + 1, sizeof(*cat));
    double *contrib = xcalloc(pol->nweights + 1, sizeof(*contrib));
    unsigned char *present = xcalloc(pol->nweights + 1, 1);
    char **row;
    char *failed = cli__printable(fv->name), *pname = cli__printable(pol->name);

    /* -v: one column per category that can contribute */
    for (size_t k = 0; o->verbose && k < pol->nweights; k++)
        if (pol->weights[k].weight > 0)
            cat[ncat++] = k;
    cols = 5 + ncat;
    row = xcalloc(cols, sizeof(*row));

    fprintf(out, "failed %s (%s), policy %s: %s, threshold %g", failed, fv->kind,
            pol->name ? pname : "(unnamed)", policy_mode_name(pol->mode), pol->threshold);
    for (size_t k = 0; k < pol->nrequired; k++) {
        char *req = cli__printable(pol->required[k]);

        fprintf(out, "%s%s", k ? ", " : ", required ", req);
        free(req);
    }
    if (res->selected >= 0) {
        const struct sim_candidate *c = &res->cand[res->selected];
        char *sel = cli__printable(sim_pool_name(pool, c->member));

        fprintf(out, "\nselected %s, score %.4f\n", sel, c->score);
        free(sel);
    } else {
        fprintf(out, "\nselected none: %s\n",
                res->n ? "no eligible candidate" : "no candidates (the pool holds no other VM)");
    }
    if (!res->n)
        goto out;
    fputc('\n', out);

    cli__table_init(&t, cols);
    row[0] = xstrdup("  RANK");
    row[1] = xstrdup("NAME");
    row[2] = xstrdup("SCORE");
    row[3] = xstrdup("ELIGIBLE");
    for (size_t k = 0; k < ncat; k++) {
        char *up = cli__printable(pol->weights[cat[k]].category);

        for (char *p = up; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        row[4 + k] = up;
    }
    row[cols - 1] = xstrdup("REASON");
    cli__table_row(&t, row);

    for (size_t i = 0; i < res->n; i++) {
        const struct sim_candidate *c = &res->cand[i];
        char *detail = rp->why[i] ? xstrdup(rp->why[i]) : sim_candidate_detail(c, pol);

        row[0] = xasprintf("%c %zu", (long)i == res->selected ? '*' : ' ', i + 1);
        row[1] = cli__printable(sim_pool_name(pool, c->member));
        row[2] = xasprintf("%.4f", c->score);
        row[3] = xstrdup(c->reason == SIM_ELIGIBLE ? "yes" : "no");
        if (ncat)
            sim_explain(r, pool, pol, c->member, contrib, present);
        for (size_t k = 0; k < ncat; k++)
            row[4 + k] = present[cat[k]] ? xasprintf("%.4f", contrib[cat[k]]) : xstrdup("-");
        if (c->reason == SIM_ELIGIBLE) {
            row[cols - 1] = xstrdup("");
        } else {
            char *d = cli__printable(detail);

            row[cols - 1] = *d ? xasprintf("%s: %s", sim_reason_name(c->reason), d)
                               : xstrdup(sim_reason_name(c->reason));
            free(d);
        }
        free(detail);
        cli__table_row(&t, row);
    }
    cli__table_print(&t, out);
    cli__table_free(&t);
    cli__print_repl(pool, res, rp, out);
out:
    free(row);
    free(cat);
    free(contrib);
    free(present);
    free(failed);
    free(pname);
}

static int cli__print_json(const struct cli__opts *o, const struct sim_ranker *r,
                           const struct sim_pool *pool, const struct policy *pol,
                           const struct sim_query *q, const struct cli__failed *fv,
                           const struct sim_result *res, const struct cli__repl *rp, FILE *out)
{
    cJSON *j = sim_result_json(r, pool, pol, q, res, o->verbose ? SIM_JSON_DETAIL : 0);
    cJSON *cands = cJSON_GetObjectItemCaseSensitive(j, "candidates");
    char *s;

    /* a template that did not build says why, not "no data.vm" */
    for (size_t i = 0; o->verbose && i < rp->nwhy; i++) {
        cJSON *c = cJSON_GetArrayItem(cands, (int)i);

        if (rp->why[i] && cJSON_GetObjectItemCaseSensitive(c, "detail"))
            cJSON_ReplaceItemInObjectCaseSensitive(c, "detail", cJSON_CreateString(rp->why[i]));
    }
    cJSON_AddItemToObject(j, "replacement", cli__repl_json(pool, res, fv, rp));
    s = cJSON_PrintUnformatted(j);

    cJSON_Delete(j);
    if (!s)
        abort(); /* cJSON only fails to print when out of memory; xmalloc would abort too */
    fprintf(out, "%s\n", s);
    cJSON_free(s);
    return 0;
}

/* Loads the three inputs, ranks and prints. */
static int cli__score_run(const struct cli__opts *o, FILE *out, FILE *err)
{
    struct policy pol = {0};
    struct cli__failed fv = {0};
    struct sim_pool *pool = sim_pool_new();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct sim_query q;
    struct cli__templates tmpl = {0};
    struct cli__repl rp = {0};
    int rc;

    /* the policy first: its errors are the most likely and the cheapest */
    rc = cli__load_policy(o->policy, &pol, err);
    for (size_t i = 0; !rc && i < o->npools; i++)
        rc = cli__load_pool(o->pools[i], pool, &tmpl, err);
    if (!rc)
        rc = cli__load_failed(o->failed, &fv, err);
    if (rc)
        goto out;
    sim_pool_finish(pool);
    q.name = fv.name;
    q.alias = fv.alias;
    q.features = &fv.features;
    /* the whole ranking is shown: all of it in exact order */
    if (sim_rank(r, pool, &pol, &q, &res) || sim_rank_exact(r, pool, &res)) {
        rc = cli__fail(err, "%s: %s %s: too many feature items (at most %u)", o->failed, fv.kind,
                       fv.name, FEATURES_MAX_ITEMS);
        goto out;
    }
    cli__repl_build(pool, &pol, &fv, &res, &rp);
    if (o->json)
        cli__print_json(o, r, pool, &pol, &q, &fv, &res, &rp, out);
    else
        cli__print_table(o, r, pool, &pol, &fv, &res, &rp, out);
    if (fflush(out) != 0 || ferror(out)) {
        cli__fail(err, "cannot write the output: %s", strerror(errno));
        rc = CLI_EXIT_IO;
    }
out:
    cli__repl_free(&rp);
    cli__templates_free(&tmpl);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(pool);
    cli__failed_free(&fv);
    policy_free(&pol);
    return rc;
}

/* The value of option argv[*i] (--opt VALUE or --opt=VALUE), or NULL after a
 * usage error. */
static const char *cli__value(int argc, char **argv, int *i, const char *opt, FILE *err)
{
    const char *a = argv[*i];
    size_t n = strlen(opt);
    const char *v;

    if (a[n] == '=')
        v = a + n + 1;
    else if (*i + 1 < argc)
        v = argv[++*i];
    else
        v = NULL;
    if (!v) {
        cli__usage_error(err, "a value is needed after", opt);
        return NULL;
    }
    if (!*v) {
        cli__usage_error(err, "an empty value is not allowed for", opt);
        return NULL;
    }
    return v;
}

/* Whether argv element a is option opt, alone or as opt=VALUE. */
static int cli__is_opt(const char *a, const char *opt)
{
    size_t n = strlen(opt);

    return strncmp(a, opt, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

static int cli__score(int argc, char **argv, FILE *out, FILE *err)
{
    struct cli__opts o = {0};
    const char *v;
    int rc = CLI_EXIT_USAGE, stdin_uses = 0;

    o.pools = xcalloc((size_t)argc, sizeof(*o.pools));
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(cli__score_usage, out);
            rc = CLI_EXIT_OK;
            goto out;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o.verbose = 1;
        } else if (cli__is_opt(a, "--policy") || cli__is_opt(a, "--failed")) {
            const char **slot = a[2] == 'p' ? &o.policy : &o.failed;
            const char *opt = a[2] == 'p' ? "--policy" : "--failed";

            if (!(v = cli__value(argc, argv, &i, opt, err)))
                goto out;
            if (*slot) {
                cli__usage_error(err, "repeated option", opt);
                goto out;
            }
            *slot = v;
            stdin_uses += strcmp(v, "-") == 0;
        } else if (cli__is_opt(a, "--pool")) {
            if (!(v = cli__value(argc, argv, &i, "--pool", err)))
                goto out;
            o.pools[o.npools++] = v;
            stdin_uses += strcmp(v, "-") == 0;
        } else if (cli__is_opt(a, "--output") || cli__is_opt(a, "-o")) {
            if (!(v = cli__value(argc, argv, &i, a[1] == 'o' ? "-o" : "--output", err)))
                goto out;
            if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0) {
                cli__usage_error(err, "--output must be json or table, not", v);
                goto out;
            }
            o.json = strcmp(v, "json") == 0;
        } else if (a[0] == '-' && a[1]) {
            cli__usage_error(err, "unknown option", a);
            goto out;
        } else {
            cli__usage_error(err, "unexpected argument", a);
            goto out;
        }
    }
    if (!o.policy || !o.npools || !o.failed) {
        cli__usage_error(err,
                         !o.policy   ? "--policy FILE is required"
                         : !o.npools ? "--pool FILE is required"
                                     : "--failed FILE is required",
                         NULL);
        goto out;
    }
    if (stdin_uses > 1) {
        cli__usage_error(err, "only one FILE may be - (standard input)", NULL);
        goto out;
    }
    rc = cli__score_run(&o, out, err);
out:
    free(o.pools);
    return rc;
}

int cli_main(int argc, char **argv, FILE *out, FILE *err)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    char *q;
    int rc;

    if (!cmd) {
        fputs(cli__usage, err);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(cli__usage, out);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        fprintf(out, "kvrecover %s\n", CLI_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "score") == 0)
        return cli__score(argc, argv, out, err);
    q = cli__word(cmd);
    rc = cli__fail(err, "unknown %s %s (see 'kvrecover --help')",
                   cmd[0] == '-' ? "option" : "command", q);
    free(q);
    return rc;
}
