/*
 * pool — spec-pool members from ConfigMaps. See pool.h.
 *
 * Must never: keep a member whose template is not a VirtualMachine (the
 * controller would create whatever it holds), report an error without the
 * ConfigMap and key it came from, or parse any of a ConfigMap before every
 * field is measured.
 */
#include "sim/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/xalloc.h"
#include "base/yaml.h"

void pool_member_free(struct pool_member *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->namespace);
    free(m->vm);
    cJSON_Delete(m->labels);
    features_free(&m->features);
    cJSON_Delete(m->vm_template);
    memset(m, 0, sizeof(*m));
}

int pool_is_configmap(const cJSON *obj)
{
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(obj, "apiVersion");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");

    return cJSON_IsObject(obj) && cJSON_IsString(kind) &&
           strcmp(kind->valuestring, "ConfigMap") == 0 &&
           (!api || (cJSON_IsString(api) && strcmp(api->valuestring, "v1") == 0));
}

static int pool__blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* Parses data.vm into *tmpl and checks that it is a VirtualMachine. */
static int pool__template(const char *text, cJSON **tmpl, char **err)
{
    const struct yaml_opts opts = {.max_nodes = POOL_MAX_VM_NODES, .source = "ConfigMap data"};
    const cJSON *api, *kind;
    int rc;

    *tmpl = NULL;
    if (pool__blank(text))
        return 0;
    rc = yaml_parse_one_opts(text, strlen(text), &opts, tmpl, err);
    if (rc)
        return rc;
    if (!cJSON_IsObject(*tmpl)) {
        *err = xstrdup("must be a VirtualMachine mapping");
        rc = -EINVAL;
        goto out;
    }
    api = cJSON_GetObjectItemCaseSensitive(*tmpl, "apiVersion");
    kind = cJSON_GetObjectItemCaseSensitive(*tmpl, "kind");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "VirtualMachine") != 0) {
        *err = xstrdup("kind must be VirtualMachine");
        rc = -EINVAL;
    } else if (!cJSON_IsString(api) || strncmp(api->valuestring, "kubevirt.io/", 12) != 0) {
        *err = xstrdup("apiVersion must be kubevirt.io/v1");
        rc = -EINVAL;
    }
out:
    if (rc) {
        cJSON_Delete(*tmpl);
        *tmpl = NULL;
    }
    return rc;
}

/* Measures labels against the API server's limits on keys and values. */
static int pool__check_labels(const cJSON *labels, char **err)
{
    const cJSON *l;
    char *where, *q;
    int rc = 0;

    cJSON_ArrayForEach(l, labels)
    {
        q = text_name(l->string);
        where = xasprintf("metadata.labels[%s]", q);
        rc = text_check_len(l->string, POOL_MAX_LABEL_KEY, where, err);
        if (!rc && cJSON_IsString(l))
            rc = text_check_len(l->valuestring, POOL_MAX_LABEL_VALUE, where, err);
        free(where);
        free(q);
        if (rc)
            return rc;
    }
    return 0;
}

int pool_member_from_json(const cJSON *cm, struct pool_member *out, char **err)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(cm, "metadata");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "name");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(cm, "data");
    const cJSON *vm = NULL, *vmtext = NULL;
    char *inner = NULL, *who = NULL;
    int rc = 0;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(cm)) {
        *err = xstrdup("ConfigMap: must be a mapping");
        return -EINVAL;
    }
    if (!cJSON_IsString(name) || !*name->valuestring) {
        inner = xstrdup("metadata.name: required");
        who = xstrdup("(unnamed)");
        rc = -EINVAL;
        goto out;
    }
    who = text_name(name->valuestring);
    /* Every field is measured before any is copied or parsed: a ConfigMap
     * with one field over its cap costs no more than its size to refuse. */
    if ((rc = text_check_len(name->valuestring, POOL_MAX_NAME, "metadata.name", &inner)))
        goto out;
    if (ns && !cJSON_IsNull(ns)) {
        if (!cJSON_IsString(ns)) {
            inner = xstrdup("metadata.namespace: must be a string");
            rc = -EINVAL;
            goto out;
        }
        if ((rc =
                 text_check_len(ns->valuestring, POOL_MAX_NAMESPACE, "metadata.namespace", &inner)))
            goto out;
    }
    if (labels && !cJSON_IsNull(labels)) {
        if (!cJSON_IsObject(labels)) {
            inner = xstrdup("metadata.labels: must be a mapping");
            rc = -EINVAL;
            goto out;
        }
        vm = cJSON_GetObjectItemCaseSensitive(labels, POOL_VM_LABEL);
        if (vm && !cJSON_IsString(vm)) {
            inner = xstrdup("metadata.labels[" POOL_VM_LABEL "]: must be a string");
            rc = -EINVAL;
            goto out;
        }
        if ((rc = pool__check_labels(labels, &inner)))
            goto out;
    }
    vmtext = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "vm") : NULL;
    if (vmtext && !cJSON_IsNull(vmtext)) {
        if (!cJSON_IsString(vmtext)) {
            inner = xstrdup("data.vm: must be a string");
            rc = -EINVAL;
            goto out;
        }
        if ((rc = text_check_len(vmtext->valuestring, POOL_MAX_VM_TEXT, "data.vm", &inner)))
            goto out;
    }
    /* measures data.features and data.resources before parsing them */
    rc = features_from_configmap(cm, &out->features, &inner);
    if (rc)
        goto out;
    out->name = xstrdup(name->valuestring);
    if (ns && !cJSON_IsNull(ns))
        out->namespace = xstrdup(ns->valuestring);
    if (labels && !cJSON_IsNull(labels)) {
        out->labels = cJSON_Duplicate(labels, 1);
        if (!out->labels)
            xalloc_oom(0); /* only without xalloc_init(): never keep a member without them */
        if (vm && *vm->valuestring)
            out->vm = xstrdup(vm->valuestring);
    }
    if (vmtext && !cJSON_IsNull(vmtext)) {
        rc = pool__template(vmtext->valuestring, &out->vm_template, &inner);
        if (rc) {
            char *msg = xasprintf("data.vm: %s", inner);

            free(inner);
            inner = msg;
            goto out;
        }
    }
out:
    if (rc) {
        *err = xasprintf("ConfigMap %s: %s", who, inner ? inner : "invalid");
        pool_member_free(out);
    }
    free(inner);
    free(who);
    return rc;
}
