/*
 * features — feature sets from ConfigMaps, VMIs and VMs. See features.h.
 *
 * Every way in ends in features_parse_map() and features_parse_resources(),
 * so a ConfigMap and an annotation are held to the same rules: the same size
 * caps, checked on every text of an object before any of them is parsed, and
 * YAML without aliases. Must never: keep a half-filled set after an error,
 * trust a field's type, or parse a text it has not measured.
 */
#include "sim/features.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "sim/quantity.h"

/* Ends features__get()'s list of keys: a plain NULL may be an int 0 in a
 * variadic call, and reading it as a pointer would be undefined. */
#define FEATURES__END ((const char *)NULL)

static const char *const features__res_names[FEATURES_NRES] = {"cpu", "memory", "disk"};

const char *features_res_name(enum features_res r)
{
    return (unsigned)r < FEATURES_NRES ? features__res_names[r] : "?";
}

int features_res_lookup(const char *name)
{
    for (int i = 0; i < FEATURES_NRES; i++)
        if (strcmp(name, features__res_names[i]) == 0)
            return i;
    return -1;
}

int features_add(struct features *f, const char *category, const char *value, char **err)
{
    char *c = text_norm(category), *v = NULL;
    int rc = 0;

    *err = NULL;
    if (!*c) {
        *err = xstrdup("empty category");
        rc = -EINVAL;
        goto out;
    }
    if (strlen(c) > FEATURES_MAX_LEN) {
        *err = xasprintf("category too long: %zu bytes (at most %u)", strlen(c), FEATURES_MAX_LEN);
        rc = -EINVAL;
        goto out;
    }
    if (features_res_lookup(c) >= 0) {
        *err = xasprintf("%s is a resource, not a feature category (put it in resources)", c);
        rc = -EINVAL;
        goto out;
    }
    v = text_norm(value);
    if (!*v) {
        *err = xstrdup("empty value");
        rc = -EINVAL;
        goto out;
    }
    if (strlen(v) > FEATURES_MAX_LEN) {
        *err = xasprintf("value too long: %zu bytes (at most %u)", strlen(v), FEATURES_MAX_LEN);
        rc = -EINVAL;
        goto out;
    }
    if (f->n >= FEATURES_MAX_ITEMS) {
        *err = xasprintf("more than %u items", FEATURES_MAX_ITEMS);
        rc = -EINVAL;
        goto out;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->items = xreallocarray(f->items, f->cap, sizeof(*f->items));
    }
    f->items[f->n].category = c;
    f->items[f->n].value = v;
    f->n++;
    c = v = NULL;
out:
    free(c);
    free(v);
    return rc;
}

static int features__cmp(const void *a, const void *b)
{
    const struct features_item *x = a, *y = b;
    int c = strcmp(x->category, y->category);

    return c ? c : strcmp(x->value, y->value);
}

void features_sort(struct features *f)
{
    size_t w = 0;

    if (f->n > 1)
        qsort(f->items, f->n, sizeof(*f->items), features__cmp);
    for (size_t r = 0; r < f->n; r++) {
        if (w && features__cmp(&f->items[w - 1], &f->items[r]) == 0) {
            free(f->items[r].category);
            free(f->items[r].value);
            continue;
        }
        f->items[w++] = f->items[r];
    }
    f->n = w;
}

void features_free(struct features *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].category);
        free(f->items[i].value);
    }
    free(f->items);
    memset(f, 0, sizeof(*f));
}

/* The text of a scalar feature value: strings as they are, numbers as they
 * were written (the YAML loader keeps that), booleans as true/false. Writes
 * into tmp when it has to format. NULL for a collection or null. */
static const char *features__scalar(const cJSON *v, char *tmp, size_t n)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsNumber(v)) {
        if (v->valuestring)
            return v->valuestring;
        snprintf(tmp, n, "%.17g", v->valuedouble);
        return tmp;
    }
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    return NULL;
}

/* Prefixes *err with a field name: "what: <old message>". */
static int features__wrap(int rc, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int features__wrap(int rc, char **err, const char *fmt, ...)
{
    va_list ap;
    char *where, *msg;

    va_start(ap, fmt);
    where = xvasprintf(fmt, ap);
    va_end(ap);
    msg = xasprintf("%s: %s", where, *err ? *err : "invalid");
    free(where);
    free(*err);
    *err = msg;
    return rc;
}

static int features__add_value(struct features *f, const char *cat, const cJSON *v, char **err)
{
    char tmp[64];
    const char *s = features__scalar(v, tmp, sizeof(tmp));

    if (!s) {
        *err = xasprintf("must be a string or a list of strings, not %s", text_json_type(v));
        return -EINVAL;
    }
    return features_add(f, cat, s, err);
}

int features_parse_map(struct features *f, const cJSON *map, char **err)
{
    const cJSON *cat, *v;
    int rc = 0, n;
    char *qc;

    *err = NULL;
    if (cJSON_IsNull(map))
        return 0;
    if (!cJSON_IsObject(map)) {
        *err = xasprintf("must be a mapping of category to values, not %s", text_json_type(map));
        return -EINVAL;
    }
    n = cJSON_GetArraySize(map);
    if (n > (int)FEATURES_MAX_CATEGORIES) {
        *err = xasprintf("too many categories: %d (at most %u)", n, FEATURES_MAX_CATEGORIES);
        return -EINVAL;
    }
    f->has_features = 1;
    cJSON_ArrayForEach(cat, map)
    {
        if (cJSON_IsNull(cat))
            continue;
        if (cJSON_IsArray(cat) && (n = cJSON_GetArraySize(cat)) > (int)FEATURES_MAX_VALUES) {
            *err = xasprintf("too many values: %d (at most %u)", n, FEATURES_MAX_VALUES);
            rc = -EINVAL;
        } else if (cJSON_IsArray(cat)) {
            cJSON_ArrayForEach(v, cat)
            {
                rc = features__add_value(f, cat->string, v, err);
                if (rc)
                    break;
            }
        } else {
            rc = features__add_value(f, cat->string, cat, err);
        }
        if (rc) {
            qc = text_name(cat->string);
            features__wrap(rc, err, "%s", qc);
            free(qc);
            return rc;
        }
    }
    features_sort(f);
    return 0;
}

int features_parse_resources(struct features *f, const cJSON *map, char **err)
{
    const cJSON *r;
    double v;
    int rc, which;

    *err = NULL;
    if (cJSON_IsNull(map))
        return 0;
    if (!cJSON_IsObject(map)) {
        *err = xasprintf("must be a mapping of cpu, memory, disk to quantities, not %s",
                         text_json_type(map));
        return -EINVAL;
    }
    cJSON_ArrayForEach(r, map)
    {
        char *name = text_norm(r->string);

        which = features_res_lookup(name);
        if (which < 0) {
            char *q = text_quote(r->string);

            *err = xasprintf("%s: unknown resource (cpu, memory, disk)", q);
            free(q);
            free(name);
            return -EINVAL;
        }
        free(name);
        if (cJSON_IsNull(r))
            continue;
        rc = quantity_from_json(r, &v, err);
        if (rc)
            return features__wrap(rc, err, "%s", features__res_names[which]);
        f->res[which] = v;
        f->has_res |= 1u << which;
    }
    return 0;
}

/* Parses YAML text (no aliases: source says where it came from, for that
 * error) with one of the two parsers above, naming where in the error. */
static int features__from_text(struct features *f, const char *text, int resources,
                               const char *source, const char *where, char **err)
{
    struct yaml_opts opts = {.source = source};
    cJSON *doc = NULL;
    int rc;

    rc = yaml_parse_one_opts(text, strlen(text), &opts, &doc, err);
    if (rc)
        goto out;
    if (resources)
        rc = features_parse_resources(f, doc, err);
    else
        rc = features_parse_map(f, doc, err);
out:
    cJSON_Delete(doc);
    if (rc)
        features__wrap(rc, err, "%s", where);
    return rc;
}

/* obj[k1][k2]...: NULL when a step is missing or not a mapping. */
static const cJSON *features__get(const cJSON *obj, ...)
{
    va_list ap;
    const char *k;

    va_start(ap, obj);
    while (obj && (k = va_arg(ap, const char *)) != NULL)
        obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, k) : NULL;
    va_end(ap);
    return obj;
}

/* A string field, or -EINVAL naming it when it is there but not a string. */
static int features__string(const cJSON *parent, const char *key, const char **out,
                            const char *where, char **err)
{
    const cJSON *v = features__get(parent, key, FEATURES__END);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        *err = xasprintf("%s: must be a string, not %s", where, text_json_type(v));
        return -EINVAL;
    }
    *out = v->valuestring;
    return 0;
}

/* The features and resources texts of one object, measured before either
 * is parsed. */
struct features__texts {
    const char *features, *resources; /* the texts, or NULL when absent */
    char *fwhere, *rwhere;            /* their fields, for messages */
};

/* Finds parent's features and resources texts (keys fkey and rkey), checks
 * their types and sizes, and names them base[key] or base.key. */
static int features__texts_get(struct features__texts *t, const cJSON *parent, const char *base,
                               int brackets, const char *fkey, const char *rkey, char **err)
{
    int rc;

    memset(t, 0, sizeof(*t));
    t->fwhere = xasprintf(brackets ? "%s[%s]" : "%s.%s", base, fkey);
    t->rwhere = xasprintf(brackets ? "%s[%s]" : "%s.%s", base, rkey);
    if ((rc = features__string(parent, fkey, &t->features, t->fwhere, err)) ||
        (rc = features__string(parent, rkey, &t->resources, t->rwhere, err)) ||
        (rc = text_check_len(t->features, FEATURES_MAX_TEXT, t->fwhere, err)) ||
        (rc = text_check_len(t->resources, FEATURES_MAX_RES_TEXT, t->rwhere, err)))
        return rc;
    return 0;
}

static void features__texts_free(struct features__texts *t)
{
    free(t->fwhere);
    free(t->rwhere);
}

int features_from_configmap(const cJSON *cm, struct features *out, char **err)
{
    const cJSON *data = features__get(cm, "data", FEATURES__END);
    struct features__texts t = {0};
    int rc = 0;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (data && !cJSON_IsNull(data) && !cJSON_IsObject(data)) {
        *err = xasprintf("data: must be a mapping, not %s", text_json_type(data));
        rc = -EINVAL;
        goto out;
    }
    rc = features__texts_get(&t, data, "data", 0, "features", "resources", err);
    if (!rc && t.features)
        rc = features__from_text(out, t.features, 0, "ConfigMap data", t.fwhere, err);
    if (!rc && t.resources)
        rc = features__from_text(out, t.resources, 1, "ConfigMap data", t.rwhere, err);
out:
    features__texts_free(&t);
    if (rc)
        features_free(out);
    return rc;
}

/* A positive integer count from domain.cpu, 1 when absent. */
static int features__count(const cJSON *cpu, const char *key, const char *base, double *out,
                           char **err)
{
    const cJSON *v = features__get(cpu, key, FEATURES__END);

    *out = 1;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1) || v->valuedouble > 4294967295.0 ||
        v->valuedouble != floor(v->valuedouble)) {
        *err = xasprintf("%s.cpu.%s: must be a positive integer", base, key);
        return -EINVAL;
    }
    *out = v->valuedouble;
    return 0;
}

/* cpu and memory from a domain (spec.domain of a VMI, spec.template.spec.
 * domain of a VM); base is its path for messages. */
static int features__domain(struct features *f, const cJSON *domain, const char *base, char **err)
{
    const cJSON *cpu = features__get(domain, "cpu", FEATURES__END);
    const cJSON *requests = features__get(domain, "resources", "requests", FEATURES__END);
    const cJSON *mem = features__get(domain, "memory", "guest", FEATURES__END);
    const cJSON *v_cpu;
    const char *mem_path = "memory.guest";
    double cores, sockets, threads, v;
    int rc;

    if (cpu && !cJSON_IsNull(cpu) && !cJSON_IsObject(cpu)) {
        *err = xasprintf("%s.cpu: must be a mapping, not %s", base, text_json_type(cpu));
        return -EINVAL;
    }
    /* KubeVirt takes the vCPU count from the topology when one is given
     * (cpu: {model: host-passthrough} alone is no topology), else from the
     * cpu request */
    if (features__get(cpu, "cores", FEATURES__END) ||
        features__get(cpu, "sockets", FEATURES__END) ||
        features__get(cpu, "threads", FEATURES__END)) {
        if ((rc = features__count(cpu, "cores", base, &cores, err)) ||
            (rc = features__count(cpu, "sockets", base, &sockets, err)) ||
            (rc = features__count(cpu, "threads", base, &threads, err)))
            return rc;
        f->res[FEATURES_CPU] = cores * sockets * threads;
        f->has_res |= 1u << FEATURES_CPU;
    } else if ((v_cpu = features__get(requests, "cpu", FEATURES__END)) && !cJSON_IsNull(v_cpu)) {
        rc = quantity_from_json(v_cpu, &v, err);
        if (rc)
            return features__wrap(rc, err, "%s.resources.requests.cpu", base);
        f->res[FEATURES_CPU] = v;
        f->has_res |= 1u << FEATURES_CPU;
    }
    if (!mem || cJSON_IsNull(mem)) {
        mem = features__get(requests, "memory", FEATURES__END);
        mem_path = "resources.requests.memory";
    }
    if (mem && !cJSON_IsNull(mem)) {
        rc = quantity_from_json(mem, &v, err);
        if (rc)
            return features__wrap(rc, err, "%s.%s", base, mem_path);
        f->res[FEATURES_MEMORY] = v;
        f->has_res |= 1u << FEATURES_MEMORY;
    }
    return 0;
}

/* Shared by VMI and VM: annotations from the first of metas that has the
 * features annotation (or from the last one), domain for the fallback. */
static int features__instance(const cJSON *meta, const char *meta_path, const cJSON *domain,
                              const char *domain_path, struct features *out, char **err)
{
    const cJSON *ann = features__get(meta, "annotations", FEATURES__END);
    struct features__texts t = {0};
    char *base = xasprintf("%s.annotations", meta_path);
    int rc = 0;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (ann && !cJSON_IsNull(ann) && !cJSON_IsObject(ann)) {
        *err = xasprintf("%s: must be a mapping, not %s", base, text_json_type(ann));
        rc = -EINVAL;
        goto out;
    }
    rc = features__texts_get(&t, ann, base, 1, FEATURES_ANNOTATION, FEATURES_RES_ANNOTATION, err);
    if (!rc && t.features)
        rc = features__from_text(out, t.features, 0, "annotations", t.fwhere, err);
    if (!rc && t.resources)
        rc = features__from_text(out, t.resources, 1, "annotations", t.rwhere, err);
    if (rc)
        goto out;
    if (!t.resources) {
        if (domain && !cJSON_IsNull(domain) && !cJSON_IsObject(domain)) {
            *err = xasprintf("%s: must be a mapping, not %s", domain_path, text_json_type(domain));
            rc = -EINVAL;
            goto out;
        }
        rc = features__domain(out, domain, domain_path, err);
    }
out:
    features__texts_free(&t);
    free(base);
    if (rc)
        features_free(out);
    return rc;
}

int features_from_vmi(const cJSON *vmi, struct features *out, char **err)
{
    return features__instance(features__get(vmi, "metadata", FEATURES__END), "metadata",
                              features__get(vmi, "spec", "domain", FEATURES__END), "spec.domain",
                              out, err);
}

int features_from_vm(const cJSON *vm, struct features *out, char **err)
{
    const cJSON *tmeta = features__get(vm, "spec", "template", "metadata", FEATURES__END);
    const cJSON *domain = features__get(vm, "spec", "template", "spec", "domain", FEATURES__END);
    const char *dpath = "spec.template.spec.domain";

    /* The template's annotations are the ones its VMIs get; the VM's own
     * are the fallback for users who annotate the object they apply. */
    if (features__get(tmeta, "annotations", FEATURES_ANNOTATION, FEATURES__END))
        return features__instance(tmeta, "spec.template.metadata", domain, dpath, out, err);
    return features__instance(features__get(vm, "metadata", FEATURES__END), "metadata", domain,
                              dpath, out, err);
}

int features_from_object(const cJSON *obj, struct features *out, char **err)
{
    const cJSON *kind = features__get(obj, "kind", FEATURES__END);
    const char *k = cJSON_IsString(kind) ? kind->valuestring : NULL;
    char *q;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (k && strcmp(k, "ConfigMap") == 0)
        return features_from_configmap(obj, out, err);
    if (k && strcmp(k, "VirtualMachineInstance") == 0)
        return features_from_vmi(obj, out, err);
    if (k && strcmp(k, "VirtualMachine") == 0)
        return features_from_vm(obj, out, err);
    q = text_quote(k);
    *err = xasprintf("kind %s is not a VirtualMachineInstance, VirtualMachine or ConfigMap",
                     k ? q : "(missing)");
    free(q);
    return -EINVAL;
}
