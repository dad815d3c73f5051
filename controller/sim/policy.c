/*
 * policy — RecoveryPolicy validation and label selectors. See policy.h.
 *
 * Validation is strict on purpose: the CRD schema can refuse most bad specs,
 * but the CLI reads files no API server has seen, and a typo such as
 * "treshold" silently falling back to a default would pick the wrong VM.
 * Must never: accept a NaN or infinite number, or act on a half-read spec.
 */
#include "sim/policy.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/xalloc.h"
#include "sim/exact.h"

static int policy__fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int policy__fail(char **err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *err = xvasprintf(fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A mapping key as it appears in a field path: as it is when it is a plain
 * name, quoted when it holds anything that could confuse the message. The
 * caller frees. */
static char *policy__key(const char *k)
{
    if (*k && !strpbrk(k, " \t\r\n\"\\:[]"))
        return xstrdup(k);
    return text_quote(k);
}

/* Absent and null are the same thing for an optional field. */
static const cJSON *policy__field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsNull(v) ? NULL : v;
}

/* Refuses any key of obj not in known (NULL-terminated). */
static int policy__known(const cJSON *obj, const char *path, const char *const *known, char **err)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, obj)
    {
        const char *const *k;

        for (k = known; *k; k++)
            if (strcmp(*k, it->string) == 0)
                break;
        if (!*k) {
            char *key = policy__key(it->string);
            int rc = policy__fail(err, "%s.%s: unknown field", path, key);

            free(key);
            return rc;
        }
    }
    return 0;
}

void policy_selector_free(struct policy_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->nlabels; i++) {
        free(sel->keys[i]);
        free(sel->values[i]);
    }
    free(sel->keys);
    free(sel->values);
    for (size_t i = 0; i < sel->nexprs; i++) {
        free(sel->exprs[i].key);
        for (size_t j = 0; j < sel->exprs[i].nvalues; j++)
            free(sel->exprs[i].values[j]);
        free(sel->exprs[i].values);
    }
    free(sel->exprs);
    memset(sel, 0, sizeof(*sel));
}

static int policy__expr(const cJSON *e, const char *path, struct policy_requirement *r, char **err)
{
    static const char *const known[] = {"key", "operator", "values", NULL};
    static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    const cJSON *key, *op, *values, *v;
    size_t i;
    int rc;

    if (!cJSON_IsObject(e))
        return policy__fail(err, "%s: must be a mapping, not %s", path, text_json_type(e));
    if ((rc = policy__known(e, path, known, err)))
        return rc;
    key = policy__field(e, "key");
    op = policy__field(e, "operator");
    values = policy__field(e, "values");
    if (!key)
        return policy__fail(err, "%s.key: required", path);
    if (!cJSON_IsString(key) || !*key->valuestring)
        return policy__fail(err, "%s.key: must be a non-empty string", path);
    if (!op)
        return policy__fail(err, "%s.operator: required", path);
    for (i = 0; i < 4; i++)
        if (cJSON_IsString(op) && strcmp(op->valuestring, ops[i]) == 0)
            break;
    if (i == 4)
        return policy__fail(err, "%s.operator: must be In, NotIn, Exists or DoesNotExist", path);
    r->op = (enum policy_op)i;
    r->key = xstrdup(key->valuestring);
    if (values && !cJSON_IsArray(values))
        return policy__fail(err, "%s.values: must be a list of strings, not %s", path,
                            text_json_type(values));
    if (r->op == POLICY_OP_IN || r->op == POLICY_OP_NOTIN) {
        if (!values || cJSON_GetArraySize(values) == 0)
            return policy__fail(err, "%s.values: required (non-empty) for %s", path, ops[r->op]);
    } else if (values && cJSON_GetArraySize(values) > 0) {
        return policy__fail(err, "%s.values: must be empty for %s", path, ops[r->op]);
    }
    r->values = xcalloc((size_t)cJSON_GetArraySize(values), sizeof(char *));
    i = 0;
    cJSON_ArrayForEach(v, values)
    {
        if (!cJSON_IsString(v))
            return policy__fail(err, "%s.values[%zu]: must be a string, not %s", path, i,
                                text_json_type(v));
        r->values[r->nvalues++] = xstrdup(v->valuestring);
        i++;
    }
    return 0;
}

int policy_parse_selector(const cJSON *sel, const char *path, struct policy_selector *out,
                          char **err)
{
    static const char *const known[] = {"matchLabels", "matchExpressions", NULL};
    const cJSON *labels, *exprs, *it;
    char *p = NULL;
    int rc = 0;
    size_t i;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(sel)) {
        rc = policy__fail(err, "%s: must be a mapping, not %s", path, text_json_type(sel));
        goto out;
    }
    if ((rc = policy__known(sel, path, known, err)))
        goto out;
    labels = policy__field(sel, "matchLabels");
    exprs = policy__field(sel, "matchExpressions");
    if (labels && !cJSON_IsObject(labels)) {
        rc = policy__fail(err, "%s.matchLabels: must be a mapping, not %s", path,
                          text_json_type(labels));
        goto out;
    }
    if (exprs && !cJSON_IsArray(exprs)) {
        rc = policy__fail(err, "%s.matchExpressions: must be a list, not %s", path,
                          text_json_type(exprs));
        goto out;
    }
    out->keys = xcalloc((size_t)cJSON_GetArraySize(labels), sizeof(char *));
    out->values = xcalloc((size_t)cJSON_GetArraySize(labels), sizeof(char *));
    cJSON_ArrayForEach(it, labels)
    {
        if (!cJSON_IsString(it)) {
            char *key = policy__key(it->string);

            rc = policy__fail(err, "%s.matchLabels.%s: must be a string, not %s", path, key,
                              text_json_type(it));
            free(key);
            goto out;
        }
        out->keys[out->nlabels] = xstrdup(it->string);
        out->values[out->nlabels++] = xstrdup(it->valuestring);
    }
    out->exprs = xcalloc((size_t)cJSON_GetArraySize(exprs), sizeof(*out->exprs));
    i = 0;
    cJSON_ArrayForEach(it, exprs)
    {
        p = xasprintf("%s.matchExpressions[%zu]", path, i++);
        /* counted first: the requirement's strings are freed with out */
        out->nexprs++;
        rc = policy__expr(it, p, &out->exprs[out->nexprs - 1], err);
        free(p);
        if (rc)
            goto out;
    }
out:
    if (rc)
        policy_selector_free(out);
    return rc;
}

/* The value of label key, or NULL; a non-string value counts as absent. */
/* policy_selector_matches()'s lookup: a label's value in a labels object. */
static const char *policy__label(const void *labels, const char *key)
{
    const cJSON *l = labels;
    const cJSON *v = cJSON_IsObject(l) ? cJSON_GetObjectItemCaseSensitive(l, key) : NULL;

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int policy__in(const struct policy_requirement *r, const char *v)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (strcmp(r->values[i], v) == 0)
            return 1;
    return 0;
}

int policy_selector_matches_with(const struct policy_selector *sel, policy_label_fn label,
                                 const void *labels)
{
    for (size_t i = 0; i < sel->nlabels; i++) {
        const char *v = label(labels, sel->keys[i]);

        if (!v || strcmp(v, sel->values[i]) != 0)
            return 0;
    }
    for (size_t i = 0; i < sel->nexprs; i++) {
        const struct policy_requirement *r = &sel->exprs[i];
        const char *v = label(labels, r->key);

        switch (r->op) {
        case POLICY_OP_IN:
            if (!v || !policy__in(r, v))
                return 0;
            break;
        case POLICY_OP_NOTIN:
            if (v && policy__in(r, v))
                return 0;
            break;
        case POLICY_OP_EXISTS:
            if (!v)
                return 0;
            break;
        case POLICY_OP_DOESNOTEXIST:
            if (v)
                return 0;
            break;
        }
    }
    return 1;
}

int policy_selector_matches(const struct policy_selector *sel, const cJSON *labels)
{
    return policy_selector_matches_with(sel, policy__label, labels);
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->namespace);
    policy_selector_free(&p->selector);
    policy_selector_free(&p->pool_selector);
    for (size_t i = 0; i < p->nweights; i++)
        free(p->weights[i].category);
    free(p->weights);
    for (size_t i = 0; i < p->nrequired; i++)
        free(p->required[i]);
    free(p->required);
    free(p->service_account);
    memset(p, 0, sizeof(*p));
}

/* The number of decimal digits of v, at least 1. */
static int policy__ndigits(uint64_t v)
{
    int n = 1;

    for (; v >= 10; v /= 10)
        n++;
    return n;
}

/*
 * A weight or the threshold: the decimal the user wrote (the text YAML kept
 * in valuestring, else the JSON number's double: exact.h says when that is
 * the same), at most max, with at most POLICY_DECIMALS digits after the
 * point. *out is the double of that decimal, from which sim.c recovers it.
 * path names the field in errors.
 */
static int policy__decimal(const cJSON *v, const char *path, double max, double *out, char **err)
{
    struct exact_dec d;
    int rc;

    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return policy__fail(err, "%s: must be a finite number >= 0", path);
    /* YAML's other spellings of a number (0x1A, 1_000) go by the double */
    rc = v->valuestring ? exact_dec_parse(v->valuestring, &d) : -EINVAL;
    if (rc == -EINVAL)
        d = exact_dec_from_double(v->valuedouble);
    if (rc == -ERANGE || exact_dec_scale(d) > POLICY_DECIMALS) {
        char *q = text_quote(v->valuestring ? v->valuestring : "");

        if (v->valuestring)
            rc = policy__fail(err, "%s: at most %d digits after the decimal point, not %s", path,
                              POLICY_DECIMALS, q);
        else /* the decimal the double stands for, as short as it reads back */
            rc = policy__fail(err, "%s: at most %d digits after the decimal point, not %.*g", path,
                              POLICY_DECIMALS, policy__ndigits(d.digits), v->valuedouble);
        free(q);
        return rc;
    }
    *out = exact_dec_double(d);
    if (*out > max)
        return policy__fail(err, "%s: must be at most %g, not %g", path, max, *out);
    return 0;
}

static int policy__weights(const cJSON *w, struct policy *p, char **err)
{
    const cJSON *it;
    int positive = 0, n;

    if (!cJSON_IsObject(w))
        return policy__fail(err, "spec.weights: must be a mapping of category to weight, not %s",
                            text_json_type(w));
    /* counted before anything is read, so that a huge mapping costs one
     * pass: with the bound, the duplicate check below is over 64 at most */
    n = cJSON_GetArraySize(w);
    if (n > POLICY_MAX_WEIGHTS)
        return policy__fail(err, "spec.weights: at most %d categories, not %d", POLICY_MAX_WEIGHTS,
                            n);
    p->weights = xcalloc((size_t)n, sizeof(*p->weights));
    cJSON_ArrayForEach(it, w)
    {
        char *key = policy__key(it->string);
        char *cat = text_norm(it->string);
        char *path = xasprintf("spec.weights.%s", key);
        double weight = 0;
        int rc = 0;

        if (!*cat)
            rc = policy__fail(err, "%s: the category name is empty", path);
        else
            rc = policy__decimal(it, path, POLICY_WEIGHT_MAX, &weight, err);
        for (size_t i = 0; !rc && i < p->nweights; i++)
            if (strcmp(p->weights[i].category, cat) == 0) {
                char *q = text_quote(cat); /* one line, whatever the key holds */

                rc = policy__fail(err, "%s: the category %s is given twice", path, q);
                free(q);
            }
        free(key);
        free(path);
        if (rc) {
            free(cat);
            return rc;
        }
        p->weights[p->nweights].category = cat;
        p->weights[p->nweights++].weight = weight;
        positive |= weight > 0;
    }
    if (!positive)
        return policy__fail(err, "spec.weights: at least one category needs a weight > 0");
    return 0;
}

static int policy__required(const cJSON *r, struct policy *p, char **err)
{
    const cJSON *it;
    size_t i = 0;

    if (!cJSON_IsArray(r))
        return policy__fail(err, "spec.required: must be a list of categories, not %s",
                            text_json_type(r));
    if (cJSON_GetArraySize(r) > POLICY_MAX_REQUIRED)
        return policy__fail(err, "spec.required: at most %d categories, not %d",
                            POLICY_MAX_REQUIRED, cJSON_GetArraySize(r));
    p->required = xcalloc((size_t)cJSON_GetArraySize(r), sizeof(char *));
    cJSON_ArrayForEach(it, r)
    {
        char *cat;
        int dup = 0;

        if (!cJSON_IsString(it))
            return policy__fail(err, "spec.required[%zu]: must be a string, not %s", i,
                                text_json_type(it));
        cat = text_norm(it->valuestring);
        if (!*cat) {
            free(cat);
            return policy__fail(err, "spec.required[%zu]: must not be empty", i);
        }
        for (size_t j = 0; j < p->nrequired; j++)
            dup |= strcmp(p->required[j], cat) == 0;
        if (dup)
            free(cat);
        else
            p->required[p->nrequired++] = cat;
        i++;
    }
    return 0;
}

/* spec[key], a required, non-empty label selector, into *sel; errors name
 * spec.<key>. */
static int policy__spec_selector(const cJSON *spec, const char *key, struct policy_selector *sel,
                                 char **err)
{
    const cJSON *v = policy__field(spec, key);
    char *path;
    int rc;

    if (!v)
        return policy__fail(err, "spec.%s: required", key);
    path = xasprintf("spec.%s", key);
    rc = policy_parse_selector(v, path, sel, err);
    free(path);
    if (rc)
        return rc;
    if (sel->nlabels == 0 && sel->nexprs == 0)
        return policy__fail(err,
                            "spec.%s: must not be empty: set matchLabels or "
                            "matchExpressions",
                            key);
    return 0;
}

/* spec[key] as one of two case-sensitive names: 0 for first, 1 for second,
 * or -EINVAL naming spec.<key> and what it was instead. */
static int policy__choice(const cJSON *v, const char *key, const char *first, const char *second,
                          char **err)
{
    char *q;
    int rc;

    if (cJSON_IsString(v) && strcmp(v->valuestring, first) == 0)
        return 0;
    if (cJSON_IsString(v) && strcmp(v->valuestring, second) == 0)
        return 1;
    q = cJSON_IsString(v) ? text_quote(v->valuestring) : xstrdup(text_json_type(v));
    rc = policy__fail(err, "spec.%s: must be %s or %s, not %s", key, first, second, q);
    free(q);
    return rc;
}

/* v as an integer in [min, 2147483647] (int32, as the CRD says) into *out,
 * or -EINVAL naming path. */
static int policy__int(const cJSON *v, const char *path, long min, long *out, char **err)
{
    /* a double holds every int32 exactly */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)min && v->valuedouble <= 2147483647.0) ||
        v->valuedouble != floor(v->valuedouble))
        return policy__fail(err, "%s: must be an integer in [%ld, 2147483647]", path, min);
    *out = (long)v->valuedouble;
    return 0;
}

/* The fields this version removed: refused with what replaced them, so that
 * a policy written for the old controller is not half-understood. */
static int policy__removed(const cJSON *spec, char **err)
{
    if (cJSON_GetObjectItemCaseSensitive(spec, "haltFailed"))
        return policy__fail(err, "spec.haltFailed: removed: kvrecover now always halts the failed "
                                 "VM before it creates the replacement; delete the field");
    if (cJSON_GetObjectItemCaseSensitive(spec, "unknownGracePeriodSeconds"))
        return policy__fail(err,
                            "spec.unknownGracePeriodSeconds: removed: KubeVirt never sets phase "
                            "Unknown; use spec.trigger.nodeLossSeconds (a lost node) and "
                            "spec.trigger.restartTimeoutSeconds (a VM KubeVirt cannot start)");
    return 0;
}

static int policy__trigger(const cJSON *t, struct policy_trigger *out, char **err)
{
    static const char *const known[] = {"crashLoopThreshold", "restartTimeoutSeconds",
                                        "nodeLossSeconds", "immediate", NULL};
    const cJSON *v;
    int rc;

    if (!cJSON_IsObject(t))
        return policy__fail(err, "spec.trigger: must be a mapping, not %s", text_json_type(t));
    if ((rc = policy__known(t, "spec.trigger", known, err)))
        return rc;
    if ((v = policy__field(t, "crashLoopThreshold")) &&
        (rc =
             policy__int(v, "spec.trigger.crashLoopThreshold", 1, &out->crash_loop_threshold, err)))
        return rc;
    if ((v = policy__field(t, "restartTimeoutSeconds")) &&
        (rc = policy__int(v, "spec.trigger.restartTimeoutSeconds", 0, &out->restart_timeout_seconds,
                          err)))
        return rc;
    if ((v = policy__field(t, "nodeLossSeconds")) &&
        (rc = policy__int(v, "spec.trigger.nodeLossSeconds", 0, &out->node_loss_seconds, err)))
        return rc;
    if ((v = policy__field(t, "immediate"))) {
        if (!cJSON_IsBool(v))
            return policy__fail(err, "spec.trigger.immediate: must be true or false, not %s",
                                text_json_type(v));
        out->immediate = cJSON_IsTrue(v);
    }
    return 0;
}

/* stormLimit: an integer count >= 1, or a string "N%" with N an integer in
 * [0, 100], as Kubernetes reads an IntOrString percentage. */
static int policy__storm(const cJSON *v, struct policy_storm *out, char **err)
{
    static const char msg[] =
        "spec.stormLimit: must be a count (an integer >= 1) or a share (\"0%\" to \"100%\")";
    const char *s;
    long pct = 0;
    char *q;
    int rc;

    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble >= 1 && v->valuedouble <= 2147483647.0) ||
            v->valuedouble != floor(v->valuedouble))
            return policy__fail(err, "%s, not %.17g", msg, v->valuedouble);
        out->percent = false;
        out->value = (long)v->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(v))
        return policy__fail(err, "%s, not %s", msg, text_json_type(v));
    s = v->valuestring;
    /* 1 to 3 digits, then '%' and nothing more */
    for (; *s >= '0' && *s <= '9' && s - v->valuestring < 4; s++)
        pct = pct * 10 + (*s - '0');
    if (s > v->valuestring && s - v->valuestring < 4 && s[0] == '%' && !s[1] && pct <= 100) {
        out->percent = true;
        out->value = pct;
        return 0;
    }
    q = text_quote(v->valuestring);
    rc = policy__fail(err, "%s, not %s", msg, q);
    free(q);
    return rc;
}

int policy_parse_spec(const cJSON *spec, struct policy *out, char **err)
{
    static const char *const known[] = {"selector",
                                        "poolSelector",
                                        "weights",
                                        "threshold",
                                        "mode",
                                        "required",
                                        "action",
                                        "capture",
                                        "trigger",
                                        "stormLimit",
                                        "serviceAccountName",
                                        NULL};
    const cJSON *v;
    int rc = 0;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    out->threshold = 0.5;
    out->mode = POLICY_JACCARD;
    out->action = POLICY_RECREATE;
    out->capture = true;
    out->trigger.crash_loop_threshold = POLICY_CRASH_LOOP_THRESHOLD;
    out->trigger.restart_timeout_seconds = POLICY_RESTART_TIMEOUT_SECONDS;
    out->trigger.node_loss_seconds = POLICY_NODE_LOSS_SECONDS;
    out->storm.percent = true;
    out->storm.value = POLICY_STORM_PERCENT;
    if (!spec) {
        rc = policy__fail(err, "spec: required");
        goto out;
    }
    if (!cJSON_IsObject(spec)) {
        rc = policy__fail(err, "spec: must be a mapping, not %s", text_json_type(spec));
        goto out;
    }
    if ((rc = policy__removed(spec, err)) || (rc = policy__known(spec, "spec", known, err)))
        goto out;
    /* as the CRD: an empty selector would protect every VMI in the namespace,
     * an empty pool selector would take every ConfigMap */
    if ((rc = policy__spec_selector(spec, "selector", &out->selector, err)))
        goto out;
    if ((rc = policy__spec_selector(spec, "poolSelector", &out->pool_selector, err)))
        goto out;
    /* as the CRD: a policy without a positive weight would score every
     * candidate 0 and could never select one */
    if (!(v = policy__field(spec, "weights"))) {
        rc = policy__fail(err, "spec.weights: required");
        goto out;
    }
    if ((rc = policy__weights(v, out, err)))
        goto out;
    if ((v = policy__field(spec, "threshold"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
            rc = policy__fail(err, "spec.threshold: must be a number in [0, 1]");
            goto out;
        }
        if ((rc = policy__decimal(v, "spec.threshold", 1, &out->threshold, err)))
            goto out;
    }
    if ((v = policy__field(spec, "mode"))) {
        if ((rc = policy__choice(v, "mode", "Jaccard", "Coverage", err)) < 0)
            goto out;
        out->mode = rc ? POLICY_COVERAGE : POLICY_JACCARD;
        rc = 0;
    }
    if ((v = policy__field(spec, "required")) && (rc = policy__required(v, out, err)))
        goto out;
    if ((v = policy__field(spec, "action"))) {
        if ((rc = policy__choice(v, "action", "Recreate", "DryRun", err)) < 0)
            goto out;
        out->action = rc ? POLICY_DRYRUN : POLICY_RECREATE;
        rc = 0;
    }
    if ((v = policy__field(spec, "capture"))) {
        if (!cJSON_IsBool(v)) {
            rc =
                policy__fail(err, "spec.capture: must be true or false, not %s", text_json_type(v));
            goto out;
        }
        out->capture = cJSON_IsTrue(v);
    }
    if ((v = policy__field(spec, "trigger")) && (rc = policy__trigger(v, &out->trigger, err)))
        goto out;
    if ((v = policy__field(spec, "stormLimit")) && (rc = policy__storm(v, &out->storm, err)))
        goto out;
    if ((v = policy__field(spec, "serviceAccountName"))) {
        if (!cJSON_IsString(v) || !policy_is_dns_subdomain(v->valuestring)) {
            char *q = cJSON_IsString(v) ? text_quote(v->valuestring) : NULL;

            rc = policy__fail(err,
                              "spec.serviceAccountName: must be a ServiceAccount name (a DNS-1123 "
                              "subdomain: lower-case letters, digits, '-' and '.', at most 253), "
                              "not %s",
                              q ? q : text_json_type(v));
            free(q);
            goto out;
        }
        out->service_account = xstrdup(v->valuestring);
    }
out:
    if (rc)
        policy_free(out);
    return rc;
}

int policy_from_json(const cJSON *obj, struct policy *out, char **err)
{
    const cJSON *api, *kind, *meta, *name, *ns;
    int rc;

    *err = NULL;
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(obj))
        return policy__fail(err, "a RecoveryPolicy must be a mapping, not %s", text_json_type(obj));
    api = policy__field(obj, "apiVersion");
    kind = policy__field(obj, "kind");
    meta = policy__field(obj, "metadata");
    if (api && !(cJSON_IsString(api) && strcmp(api->valuestring, "kvrecover.io/v1alpha1") == 0))
        return policy__fail(err, "apiVersion: must be kvrecover.io/v1alpha1");
    if (kind && !(cJSON_IsString(kind) && strcmp(kind->valuestring, "RecoveryPolicy") == 0))
        return policy__fail(err, "kind: must be RecoveryPolicy");
    if (meta && !cJSON_IsObject(meta))
        return policy__fail(err, "metadata: must be a mapping, not %s", text_json_type(meta));
    name = policy__field(meta, "name");
    ns = policy__field(meta, "namespace");
    if (name && !cJSON_IsString(name))
        return policy__fail(err, "metadata.name: must be a string, not %s", text_json_type(name));
    if (ns && !cJSON_IsString(ns))
        return policy__fail(err, "metadata.namespace: must be a string, not %s",
                            text_json_type(ns));
    rc = policy_parse_spec(policy__field(obj, "spec"), out, err);
    if (rc)
        return rc;
    out->name = name ? xstrdup(name->valuestring) : NULL;
    out->namespace = ns ? xstrdup(ns->valuestring) : NULL;
    return 0;
}

size_t policy_storm_limit(const struct policy *p, size_t protected)
{
    uint64_t limit;

    if (!p->storm.percent)
        return (size_t)p->storm.value;
    /* rounded up: 50% of 3 is 2, so that a share never lets fewer VMs go
     * than it says; the product fits: protected is a count of objects */
    limit = ((uint64_t) protected * (uint64_t)p->storm.value + 99) / 100;
    return limit < 1 ? 1 : (size_t)limit;
}

int policy_is_dns_subdomain(const char *s)
{
    size_t n = 0;
    char prev = '.';

    for (; s[n]; n++) {
        char c = s[n];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && c != '-' && c != '.')
            return 0;
        /* a part starts and ends with a letter or digit */
        if ((c == '.' && !(prev != '.' && prev != '-')) || (c == '-' && prev == '.'))
            return 0;
        prev = c;
    }
    return n >= 1 && n <= 253 && prev != '.' && prev != '-';
}

/* Whether s[0..n) is a label name or value: 1 to 63 of [A-Za-z0-9-_.],
 * starting and ending with a letter or digit. */
static int policy__label_name(const char *s, size_t n)
{
    if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

/* Whether s[0..n) is a label key: [DNS-subdomain '/'] name. */
static int policy__label_key(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    char prefix[254];
    size_t np;

    if (!slash)
        return policy__label_name(s, n);
    np = (size_t)(slash - s);
    if (np < 1 || np >= sizeof(prefix))
        return 0;
    memcpy(prefix, s, np);
    prefix[np] = '\0';
    return policy_is_dns_subdomain(prefix) && policy__label_name(slash + 1, n - np - 1);
}

int policy_is_label_selector(const char *s)
{
    size_t len = s ? strnlen(s, POLICY_SELECTOR_TEXT_MAX + 1) : 0;

    if (len < 1 || len > POLICY_SELECTOR_TEXT_MAX)
        return 0;
    for (const char *req = s; req;) {
        const char *end = strchr(req, ',');
        size_t n = end ? (size_t)(end - req) : strlen(req);
        size_t k = strcspn(req, "=!,");
        int negated = req[0] == '!';

        if (negated) {
            /* "!key": no operator after it */
            k = strcspn(req + 1, "=!,");
            if (k + 1 != n || !policy__label_key(req + 1, k))
                return 0;
        } else if (!policy__label_key(req, k)) {
            return 0;
        } else if (k < n) {
            size_t op = req[k] == '!' || (req[k] == '=' && req[k + 1] == '=') ? 2 : 1;

            if (req[k] == '!' && req[k + 1] != '=')
                return 0;
            if (k + op < n && !policy__label_name(req + k + op, n - k - op))
                return 0;
        }
        req = end ? end + 1 : NULL;
    }
    return 1;
}

double policy_weight(const struct policy *p, const char *category)
{
    for (size_t i = 0; i < p->nweights; i++)
        if (strcmp(p->weights[i].category, category) == 0)
            return p->weights[i].weight;
    return 0;
}

const char *policy_mode_name(enum policy_mode m)
{
    return m == POLICY_COVERAGE ? "Coverage" : "Jaccard";
}

const char *policy_action_name(enum policy_action a)
{
    return a == POLICY_DRYRUN ? "DryRun" : "Recreate";
}
