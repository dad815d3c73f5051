/*
 * features: items and resources from pool ConfigMaps, VMIs and VMs, with
 * normalisation, and errors that name the field.
 */
#include "harness.h"
#include "hostile.h"
#include "model_test.h"

#include <errno.h>
#include <stdlib.h>

#include "base/buf.h"
#include "sim/features.h"

/* "category=value" of item i, in a static buffer. */
static const char *item(const struct features *f, size_t i)
{
    static char s[256];

    if (i >= f->n)
        return "(none)";
    snprintf(s, sizeof(s), "%s=%s", f->items[i].category, f->items[i].value);
    return s;
}

/* Runs fn on the YAML object text; returns its rc, with *err kept for the
 * caller (freed by it) and *out filled. */
static int from(int (*fn)(const cJSON *, struct features *, char **), const char *text,
                struct features *out, char **err)
{
    cJSON *d = mt_doc(text);
    int rc = fn(d, out, err);

    cJSON_Delete(d);
    return rc;
}

TEST(features_add_normalises_and_refuses_empty_and_reserved)
{
    struct features f = {0};
    char *err = NULL;

    CHECK_INT(features_add(&f, " Database ", "  MySQL\t", &err), 0);
    CHECK_STR(item(&f, 0), "database=mysql");
    CHECK_INT(features_add(&f, " ", "x", &err), -EINVAL);
    CHECK_STR(err, "empty category");
    free(err);
    CHECK_INT(features_add(&f, "os", "  ", &err), -EINVAL);
    CHECK_STR(err, "empty value");
    free(err);
    CHECK_INT(features_add(&f, "CPU", "4", &err), -EINVAL);
    CHECK_STR(err, "cpu is a resource, not a feature category (put it in resources)");
    free(err);
    CHECK_INT(f.n, 1);
    features_free(&f);
    CHECK_INT(f.n, 0);
    features_free(NULL);
}

TEST(features_sort_orders_and_removes_duplicates)
{
    struct features f = {0};
    char *err = NULL;

    CHECK_INT(features_add(&f, "os", "b", &err), 0);
    CHECK_INT(features_add(&f, "db", "x", &err), 0);
    CHECK_INT(features_add(&f, "OS", "B ", &err), 0);
    CHECK_INT(features_add(&f, "os", "a", &err), 0);
    features_sort(&f);
    CHECK_INT(f.n, 3);
    CHECK_STR(item(&f, 0), "db=x");
    CHECK_STR(item(&f, 1), "os=a");
    CHECK_STR(item(&f, 2), "os=b");
    features_free(&f);
}

TEST(features_parse_map_takes_scalars_lists_numbers_as_written_and_skips_null)
{
    struct features f = {0};
    char *err = NULL;
    cJSON *d = mt_doc("{os: Ubuntu-20.04, database: [MySQL, postgresql], version: 1.10, "
                      "debug: TRUE, cache: null, empty: []}");

    CHECK_INT(features_parse_map(&f, d, &err), 0);
    CHECK_INT(f.has_features, 1);
    CHECK_INT(f.n, 5);
    CHECK_STR(item(&f, 0), "database=mysql");
    CHECK_STR(item(&f, 1), "database=postgresql");
    CHECK_STR(item(&f, 2), "debug=true");
    CHECK_STR(item(&f, 3), "os=ubuntu-20.04");
    CHECK_STR(item(&f, 4), "version=1.10");
    features_free(&f);
    cJSON_Delete(d);
}

TEST(features_parse_map_errors_name_the_category)
{
    struct features f = {0};
    char *err = NULL;
    cJSON *d = mt_doc("{os: ubuntu, database: {name: mysql}}");

    CHECK_INT(features_parse_map(&f, d, &err), -EINVAL);
    CHECK_STR(err, "database: must be a string or a list of strings, not a mapping");
    free(err);
    features_free(&f);
    cJSON_Delete(d);
    d = mt_doc("{webserver: [nginx, [apache]]}");
    CHECK_INT(features_parse_map(&f, d, &err), -EINVAL);
    CHECK_STR(err, "webserver: must be a string or a list of strings, not a list");
    free(err);
    features_free(&f);
    cJSON_Delete(d);
    d = mt_doc("[os, ubuntu]");
    CHECK_INT(features_parse_map(&f, d, &err), -EINVAL);
    CHECK_STR(err, "must be a mapping of category to values, not a list");
    free(err);
    features_free(&f);
    cJSON_Delete(d);
    d = mt_doc("{memory: 4Gi}");
    CHECK_INT(features_parse_map(&f, d, &err), -EINVAL);
    CHECK_STR(err, "memory: memory is a resource, not a feature category (put it in resources)");
    free(err);
    features_free(&f);
    cJSON_Delete(d);
}

TEST(features_parse_resources_reads_quantities_and_names_the_resource)
{
    struct features f = {0};
    char *err = NULL;
    cJSON *d = mt_doc("{cpu: 500m, memory: 4Gi, disk: 20G}");

    CHECK_INT(features_parse_resources(&f, d, &err), 0);
    CHECK_INT(f.has_res, 7);
    CHECK_NEAR(f.res[FEATURES_CPU], 0.5, 0);
    CHECK_NEAR(f.res[FEATURES_MEMORY], 4294967296.0, 0);
    CHECK_NEAR(f.res[FEATURES_DISK], 2e10, 0);
    cJSON_Delete(d);
    features_free(&f);
    d = mt_doc("{memory: 4Qi}");
    CHECK_INT(features_parse_resources(&f, d, &err), -EINVAL);
    CHECK_STR(err, "memory: \"4Qi\" is not a valid quantity");
    free(err);
    cJSON_Delete(d);
    d = mt_doc("{gpu: 1}");
    CHECK_INT(features_parse_resources(&f, d, &err), -EINVAL);
    CHECK_STR(err, "\"gpu\": unknown resource (cpu, memory, disk)");
    free(err);
    cJSON_Delete(d);
    d = mt_doc("{cpu: -2}");
    CHECK_INT(features_parse_resources(&f, d, &err), -EINVAL);
    CHECK_STR(err, "cpu: \"-2\" must not be negative");
    free(err);
    cJSON_Delete(d);
    features_free(&f);
}

TEST(features_from_configmap_reads_data_features_and_resources)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_configmap,
                   "kind: ConfigMap\n"
                   "metadata: {name: vm-005}\n"
                   "data:\n"
                   "  features: |\n"
                   "    os: ubuntu-20.04\n"
                   "    language: nodejs\n"
                   "    database: [mysql, postgresql]\n"
                   "  resources: |\n"
                   "    cpu: 2\n"
                   "    memory: 4Gi\n",
                   &f, &err),
              0);
    CHECK_INT(f.has_features, 1);
    CHECK_INT(f.n, 4);
    CHECK_STR(item(&f, 2), "language=nodejs");
    CHECK_INT(f.has_res, (1u << FEATURES_CPU) | (1u << FEATURES_MEMORY));
    CHECK_NEAR(f.res[FEATURES_CPU], 2, 0);
    features_free(&f);
    /* neither key: an empty set, not an error */
    CHECK_INT(from(features_from_configmap, "kind: ConfigMap\ndata: {vm: x}\n", &f, &err), 0);
    CHECK_INT(f.has_features, 0);
    CHECK_INT(f.n, 0);
    features_free(&f);
}

TEST(features_from_configmap_errors_name_the_data_key)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_configmap,
                   "data:\n  features: 'os: x'\n  resources: '{memory: 4Qi}'\n", &f, &err),
              -EINVAL);
    CHECK_STR(err, "data.resources: memory: \"4Qi\" is not a valid quantity");
    free(err);
    CHECK_INT(f.n, 0);
    CHECK_INT(from(features_from_configmap, "data:\n  features: {os: x}\n", &f, &err), -EINVAL);
    CHECK_STR(err, "data.features: must be a string, not a mapping");
    free(err);
    CHECK_INT(from(features_from_configmap, "data:\n  features: '{os: [x'\n", &f, &err), -EINVAL);
    CHECK(strncmp(err, "data.features: line ", 20) == 0);
    free(err);
    CHECK_INT(from(features_from_configmap, "data: [a]\n", &f, &err), -EINVAL);
    CHECK_STR(err, "data: must be a mapping, not a list");
    free(err);
}

TEST(features_from_vmi_api_object_annotation_and_topology)
{
    struct features f;
    char *err = NULL;
    cJSON *vmi = mt_fixture("features-vmi.json");

    CHECK_INT(features_from_vmi(vmi, &f, &err), 0);
    CHECK_INT(f.has_features, 1);
    CHECK_INT(f.n, 4);
    CHECK_STR(item(&f, 0), "database=mysql");
    CHECK_STR(item(&f, 1), "language=nodejs");
    CHECK_STR(item(&f, 2), "os=ubuntu-20.04");
    /* cores x sockets x threads = 2 x 2 x 1 */
    CHECK_NEAR(f.res[FEATURES_CPU], 4, 0);
    CHECK_NEAR(f.res[FEATURES_MEMORY], 4294967296.0, 0);
    CHECK_INT(f.has_res, (1u << FEATURES_CPU) | (1u << FEATURES_MEMORY));
    features_free(&f);
    /* the same through features_from_object */
    CHECK_INT(features_from_object(vmi, &f, &err), 0);
    CHECK_INT(f.n, 4);
    features_free(&f);
    cJSON_Delete(vmi);
}

TEST(features_from_vmi_memory_guest_or_requests_and_cpu_request)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_vmi,
                   "spec: {domain: {memory: {guest: 1Gi}, resources: {requests: {memory: 2Gi}}}}",
                   &f, &err),
              0);
    CHECK_NEAR(f.res[FEATURES_MEMORY], 1073741824.0, 0);
    /* no topology, no cpu request: cpu unknown */
    CHECK_INT(f.has_res, 1u << FEATURES_MEMORY);
    CHECK_INT(f.has_features, 0);
    features_free(&f);
    CHECK_INT(from(features_from_vmi,
                   "spec: {domain: {cpu: {model: host-passthrough}, "
                   "resources: {requests: {memory: 2Gi, cpu: 1500m}}}}",
                   &f, &err),
              0);
    CHECK_NEAR(f.res[FEATURES_MEMORY], 2147483648.0, 0);
    CHECK_NEAR(f.res[FEATURES_CPU], 1.5, 0);
    features_free(&f);
    CHECK_INT(from(features_from_vmi, "spec: {domain: {cpu: {threads: 2}}}", &f, &err), 0);
    CHECK_NEAR(f.res[FEATURES_CPU], 2, 0);
    features_free(&f);
}

TEST(features_from_vmi_resources_annotation_overrides_the_domain)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_vmi,
                   "metadata:\n"
                   "  annotations:\n"
                   "    kvrecover.io/features: '{os: ubuntu}'\n"
                   "    kvrecover.io/resources: '{cpu: 8, disk: 10Gi}'\n"
                   "spec: {domain: {cpu: {cores: 2}, memory: {guest: 1Gi}}}\n",
                   &f, &err),
              0);
    CHECK_NEAR(f.res[FEATURES_CPU], 8, 0);
    CHECK_NEAR(f.res[FEATURES_DISK], 10737418240.0, 0);
    CHECK_INT(f.has_res, (1u << FEATURES_CPU) | (1u << FEATURES_DISK));
    features_free(&f);
}

TEST(features_from_vmi_errors_name_the_field)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_vmi, "spec: {domain: {cpu: {cores: 0}}}", &f, &err), -EINVAL);
    CHECK_STR(err, "spec.domain.cpu.cores: must be a positive integer");
    free(err);
    CHECK_INT(from(features_from_vmi, "spec: {domain: {cpu: {sockets: 1.5}}}", &f, &err), -EINVAL);
    CHECK_STR(err, "spec.domain.cpu.sockets: must be a positive integer");
    free(err);
    CHECK_INT(from(features_from_vmi, "spec: {domain: {memory: {guest: lots}}}", &f, &err),
              -EINVAL);
    CHECK_STR(err, "spec.domain.memory.guest: \"lots\" is not a valid quantity");
    free(err);
    CHECK_INT(from(features_from_vmi, "spec: {domain: {resources: {requests: {memory: -1Gi}}}}", &f,
                   &err),
              -EINVAL);
    CHECK_STR(err, "spec.domain.resources.requests.memory: \"-1Gi\" must not be negative");
    free(err);
    CHECK_INT(from(features_from_vmi,
                   "metadata: {annotations: {kvrecover.io/features: '{os: [ubuntu'}}", &f, &err),
              -EINVAL);
    CHECK(strncmp(err, "metadata.annotations[kvrecover.io/features]: line ", 50) == 0);
    free(err);
    CHECK_INT(from(features_from_vmi, "metadata: {annotations: {kvrecover.io/features: '[a, b]'}}",
                   &f, &err),
              -EINVAL);
    CHECK_STR(err, "metadata.annotations[kvrecover.io/features]: must be a mapping of category "
                   "to values, not a list");
    free(err);
    CHECK_INT(from(features_from_vmi,
                   "metadata: {annotations: {kvrecover.io/resources: '{cpu: x}'}}", &f, &err),
              -EINVAL);
    CHECK_STR(err, "metadata.annotations[kvrecover.io/resources]: cpu: \"x\" is not a valid "
                   "quantity");
    free(err);
    CHECK_INT(from(features_from_vmi, "metadata: {annotations: [x]}", &f, &err), -EINVAL);
    CHECK_STR(err, "metadata.annotations: must be a mapping, not a list");
    free(err);
    CHECK_INT(from(features_from_vmi, "spec: {domain: {cpu: 4}}", &f, &err), -EINVAL);
    CHECK_STR(err, "spec.domain.cpu: must be a mapping, not a number");
    free(err);
}

TEST(features_from_vm_prefers_the_template_annotations)
{
    struct features f;
    char *err = NULL;
    cJSON *vm = mt_fixture("features-vm.yaml");

    CHECK_INT(features_from_vm(vm, &f, &err), 0);
    CHECK_INT(f.n, 3);
    CHECK_STR(item(&f, 0), "language=go");
    CHECK_STR(item(&f, 1), "language=python");
    CHECK_STR(item(&f, 2), "os=ubuntu-22.04");
    /* the template's resources annotation replaces the domain's figures */
    CHECK_INT(f.has_res, 1u << FEATURES_DISK);
    features_free(&f);
    CHECK_INT(features_from_object(vm, &f, &err), 0);
    CHECK_INT(f.n, 3);
    features_free(&f);
    cJSON_Delete(vm);
}

TEST(features_from_vm_falls_back_to_its_own_annotations_and_template_domain)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_vm,
                   "kind: VirtualMachine\n"
                   "metadata: {annotations: {kvrecover.io/features: '{os: debian}'}}\n"
                   "spec:\n"
                   "  template:\n"
                   "    spec: {domain: {cpu: {cores: 2, sockets: 3}, memory: {guest: 512Mi}}}\n",
                   &f, &err),
              0);
    CHECK_INT(f.n, 1);
    CHECK_STR(item(&f, 0), "os=debian");
    CHECK_NEAR(f.res[FEATURES_CPU], 6, 0);
    CHECK_NEAR(f.res[FEATURES_MEMORY], 536870912.0, 0);
    features_free(&f);
    CHECK_INT(
        from(features_from_vm, "spec: {template: {spec: {domain: {cpu: {cores: -1}}}}}", &f, &err),
        -EINVAL);
    CHECK_STR(err, "spec.template.spec.domain.cpu.cores: must be a positive integer");
    free(err);
}

TEST(features_from_object_refuses_other_kinds)
{
    struct features f;
    char *err = NULL;

    CHECK_INT(from(features_from_object, "kind: Pod\n", &f, &err), -EINVAL);
    CHECK_STR(err, "kind \"Pod\" is not a VirtualMachineInstance, VirtualMachine or ConfigMap");
    free(err);
    CHECK_INT(from(features_from_object, "metadata: {name: x}\n", &f, &err), -EINVAL);
    CHECK_STR(err, "kind (missing) is not a VirtualMachineInstance, VirtualMachine or ConfigMap");
    free(err);
    CHECK_INT(
        from(features_from_object, "kind: ConfigMap\ndata: {features: '{os: x}'}\n", &f, &err), 0);
    CHECK_INT(f.n, 1);
    features_free(&f);
}

TEST(features_res_names_and_lookup)
{
    CHECK_STR(features_res_name(FEATURES_CPU), "cpu");
    CHECK_STR(features_res_name(FEATURES_MEMORY), "memory");
    CHECK_STR(features_res_name(FEATURES_DISK), "disk");
    CHECK_INT(features_res_lookup("disk"), FEATURES_DISK);
    CHECK_INT(features_res_lookup("gpu"), -1);
    CHECK_INT(features_res_lookup("CPU"), -1);
}

/* "os: ubuntu\n#xxx..." : valid YAML of exactly n bytes (n >= 12). */
static char *sized(const char *yaml, size_t n)
{
    size_t k = strlen(yaml);
    char *s = malloc(n + 1);

    memcpy(s, yaml, k);
    s[k] = '\n';
    s[k + 1] = '#';
    memset(s + k + 2, 'x', n - k - 2);
    s[n] = '\0';
    return s;
}

/* A VMI whose annotations are the features text f and the resources text r
 * (either NULL). */
static cJSON *vmi_with(const char *f, const char *r)
{
    cJSON *vmi = cJSON_CreateObject();
    cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(vmi, "metadata"), "annotations");

    cJSON_AddStringToObject(vmi, "kind", "VirtualMachineInstance");
    if (f)
        cJSON_AddStringToObject(ann, FEATURES_ANNOTATION, f);
    if (r)
        cJSON_AddStringToObject(ann, FEATURES_RES_ANNOTATION, r);
    return vmi;
}

/* A ConfigMap whose data.features and data.resources are f and r. */
static cJSON *cm_with(const char *f, const char *r)
{
    cJSON *cm = cJSON_CreateObject(), *data;

    cJSON_AddStringToObject(cm, "kind", "ConfigMap");
    data = cJSON_AddObjectToObject(cm, "data");
    if (f)
        cJSON_AddStringToObject(data, "features", f);
    if (r)
        cJSON_AddStringToObject(data, "resources", r);
    return cm;
}

/* Runs fn on obj and frees obj; returns rc, *err kept, *out freed. */
static int run_on(int (*fn)(const cJSON *, struct features *, char **), cJSON *obj, char **err)
{
    struct features f = {0};
    int rc = fn(obj, &f, err);

    features_free(&f);
    cJSON_Delete(obj);
    return rc;
}

TEST(features_text_caps_just_under_and_just_over)
{
    char *fat = sized("os: ubuntu", FEATURES_MAX_TEXT),
         *fat1 = sized("os: ubuntu", FEATURES_MAX_TEXT + 1);
    char *res = sized("cpu: 2", FEATURES_MAX_RES_TEXT),
         *res1 = sized("cpu: 2", FEATURES_MAX_RES_TEXT + 1);
    cJSON *fatvmi = vmi_with(fat1, NULL), *vm, *tmeta;
    char *err = NULL;

    CHECK_INT(run_on(features_from_vmi, vmi_with(fat, res), &err), 0);
    CHECK_INT(run_on(features_from_configmap, cm_with(fat, res), &err), 0);
    CHECK_INT(run_on(features_from_vmi, vmi_with(fat1, res), &err), -EINVAL);
    CHECK_STR(err, "metadata.annotations[kvrecover.io/features]: too large: 16385 bytes (at most "
                   "16384)");
    free(err);
    CHECK_INT(run_on(features_from_vmi, vmi_with(fat, res1), &err), -EINVAL);
    CHECK_STR(err, "metadata.annotations[kvrecover.io/resources]: too large: 1025 bytes (at most "
                   "1024)");
    free(err);
    CHECK_INT(run_on(features_from_configmap, cm_with(fat1, res), &err), -EINVAL);
    CHECK_STR(err, "data.features: too large: 16385 bytes (at most 16384)");
    free(err);
    CHECK_INT(run_on(features_from_configmap, cm_with(fat, res1), &err), -EINVAL);
    CHECK_STR(err, "data.resources: too large: 1025 bytes (at most 1024)");
    free(err);
    /* a VM's template annotations are held to the same caps */
    vm = cJSON_CreateObject();
    tmeta = cJSON_AddObjectToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(vm, "spec"), "template"), "metadata");
    cJSON_AddItemToObject(
        tmeta, "annotations",
        cJSON_Duplicate(cJSON_GetObjectItem(cJSON_GetObjectItem(fatvmi, "metadata"), "annotations"),
                        1));
    CHECK_INT(run_on(features_from_vm, vm, &err), -EINVAL);
    CHECK(strstr(err, "spec.template.metadata.annotations[kvrecover.io/features]: too large"));
    free(err);
    cJSON_Delete(fatvmi);
    free(fat);
    free(fat1);
    free(res);
    free(res1);
}

TEST(features_every_text_is_measured_before_any_is_parsed)
{
    char *res1 = sized("cpu: 2", FEATURES_MAX_RES_TEXT + 1);
    char *err = NULL;

    /* the features text is broken, but the resources text is over its cap:
     * that is found first, and the features text is never parsed */
    CHECK_INT(run_on(features_from_vmi, vmi_with("{os: [x", res1), &err), -EINVAL);
    CHECK(strstr(err, "kvrecover.io/resources]: too large: 1025 bytes"));
    free(err);
    CHECK_INT(run_on(features_from_configmap, cm_with("{os: [x", res1), &err), -EINVAL);
    CHECK(strstr(err, "data.resources: too large: 1025 bytes"));
    free(err);
    free(res1);
}

TEST(features_texts_from_the_api_refuse_aliases)
{
    char *err = NULL;

    CHECK_INT(run_on(features_from_vmi, vmi_with("{os: &o ubuntu, base: *o}", NULL), &err),
              -EINVAL);
    CHECK_STR(err, "metadata.annotations[kvrecover.io/features]: aliases are not allowed in "
                   "annotations (at line 1)");
    free(err);
    CHECK_INT(
        run_on(features_from_configmap, cm_with("os: ubuntu\n", "cpu: &c 2\nmemory: *c\n"), &err),
        -EINVAL);
    CHECK_STR(err, "data.resources: aliases are not allowed in ConfigMap data (at line 2)");
    free(err);
}

TEST(features_category_and_value_counts_just_under_and_just_over)
{
    struct buf b = {0};
    char *err = NULL;

    hostile_features(&b, FEATURES_MAX_CATEGORIES, 1, 8);
    CHECK_INT(run_on(features_from_configmap, cm_with(b.data, NULL), &err), 0);
    buf_reset(&b);
    hostile_features(&b, FEATURES_MAX_CATEGORIES + 1, 1, 8);
    CHECK_INT(run_on(features_from_configmap, cm_with(b.data, NULL), &err), -EINVAL);
    CHECK_STR(err, "data.features: too many categories: 129 (at most 128)");
    free(err);
    buf_reset(&b);
    hostile_features(&b, 1, FEATURES_MAX_VALUES, 8);
    CHECK_INT(run_on(features_from_configmap, cm_with(b.data, NULL), &err), 0);
    buf_reset(&b);
    hostile_features(&b, 1, FEATURES_MAX_VALUES + 1, 8);
    CHECK_INT(run_on(features_from_configmap, cm_with(b.data, NULL), &err), -EINVAL);
    CHECK_STR(err, "data.features: c0: too many values: 257 (at most 256)");
    free(err);
    buf_free(&b);
}

TEST(features_value_and_category_length_just_under_and_just_over)
{
    struct features f = {0};
    char longest[FEATURES_MAX_LEN + 2];
    char *err = NULL;

    memset(longest, 'a', sizeof(longest) - 1);
    longest[FEATURES_MAX_LEN] = '\0';
    /* surrounding space is trimmed first: it does not count */
    CHECK_INT(features_add(&f, "os", longest, &err), 0);
    CHECK_INT(features_add(&f, longest, " x ", &err), 0);
    longest[FEATURES_MAX_LEN] = 'a';
    longest[FEATURES_MAX_LEN + 1] = '\0';
    CHECK_INT(features_add(&f, "os", longest, &err), -EINVAL);
    CHECK_STR(err, "value too long: 254 bytes (at most 253)");
    free(err);
    CHECK_INT(features_add(&f, longest, "x", &err), -EINVAL);
    CHECK_STR(err, "category too long: 254 bytes (at most 253)");
    free(err);
    CHECK_INT(f.n, 2);
    features_free(&f);
    /* through a mapping, a long category is named cut and quoted */
    {
        struct buf b = {0};

        buf_printf(&b, "{%s: x}", longest);
        CHECK_INT(run_on(features_from_configmap, cm_with(b.data, NULL), &err), -EINVAL);
        CHECK(strncmp(err, "data.features: \"aaaa", 20) == 0);
        CHECK(strstr(err, "\"...: category too long: 254 bytes (at most 253)"));
        free(err);
        buf_free(&b);
    }
}

/* The fat annotation: 100 KB of features text that, with aliases,
 * stands for 795,000 items. */
static int features__fat(void *unused)
{
    struct buf b = {0};
    char *err = NULL;
    int rc;

    (void)unused;
    hostile_fat_annotation(&b, 100000);
    rc = run_on(features_from_vmi, vmi_with(b.data, NULL), &err);
    buf_free(&b);
    rc = rc == -EINVAL && err &&
                 strcmp(err, "metadata.annotations[kvrecover.io/features]: too large: 100000 "
                             "bytes (at most 16384)") == 0
             ? 0
             : 1;
    free(err);
    return rc;
}

/* The same shape cut to fit the cap: refused for its aliases. */
static int features__fat_under_cap(void *unused)
{
    struct buf b = {0};
    char *err = NULL;
    int rc;

    (void)unused;
    buf_puts(&b, "{os: ubuntu-20.04, all: &v [a, b, c]");
    for (int i = 0; b.len + 12 < FEATURES_MAX_TEXT; i++)
        buf_printf(&b, ", c%04d: *v", i);
    buf_puts(&b, "}");
    rc = run_on(features_from_configmap, cm_with(b.data, NULL), &err);
    buf_free(&b);
    rc = rc == -EINVAL && err && strstr(err, "aliases are not allowed in ConfigMap data") ? 0 : 1;
    free(err);
    return rc;
}

TEST(features_fat_annotation_is_refused_with_bounded_memory)
{
    CHECK(hostile_bounded(features__fat, NULL, 2048));
    CHECK(hostile_bounded(features__fat_under_cap, NULL, 2048));
}
