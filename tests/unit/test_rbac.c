/*
 * The privilege table (README "RBAC"), enforced: every rule of every Role
 * and ClusterRole kvrecover ships (manifests/rbac.yaml, the namespaced
 * install, the tenant's grant) is checked against a table of what each may
 * grant, verb by verb. Anything outside it fails the test, naming the file,
 * the role and the grant: a write the controller could do cluster-wide, an
 * impersonate without resourceNames, a wildcard, a Secret. And every grant
 * of the table must be there, so that the table stays what the controller
 * needs. The writes the controller makes as itself (without
 * --default-service-account) live in roles of their own, named
 * kvrecover-controller-as-itself, held to a table of their own, so that
 * removing them is removing two objects.
 */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "harness.h"

/* One line of the table: what roles of a kind may grant on a resource. */
struct grant {
    const char *kind;     /* "ClusterRole", "Role", or NULL: either */
    const char *group;    /* API group, "" for the core group */
    const char *resource; /* plural, or plural/subresource */
    const char *verbs;    /* the verbs allowed, space-separated */
    const char *names;    /* resourceNames a rule must be limited to, or NULL */
};

/* The controller, as itself: reads of what it watches; writes only of its
 * own business (status, Events, its Lease) and the two review questions. */
static const struct grant controller_table[] = {
    {NULL, "kubevirt.io", "virtualmachineinstances", "get list watch", NULL},
    {NULL, "kubevirt.io", "virtualmachines", "get list watch", NULL},
    {NULL, "kvrecover.io", "recoverypolicies", "get list watch", NULL},
    {NULL, "kvrecover.io", "recoverypolicies/status", "patch", NULL},
    {NULL, "", "configmaps", "get list watch", NULL},
    {NULL, "", "pods", "get list watch", NULL},
    {"ClusterRole", "", "nodes", "get list watch", NULL},
    {NULL, "", "events", "create patch", NULL},
    {"ClusterRole", "authentication.k8s.io", "tokenreviews", "create", NULL},
    {"ClusterRole", "authorization.k8s.io", "subjectaccessreviews", "create", NULL},
    {"Role", "coordination.k8s.io", "leases", "create", NULL},
    {"Role", "coordination.k8s.io", "leases", "get update", "kvrecover-controller"},
};

/* The roles named AS_ITSELF: the writes made for a policy as the controller
 * itself, which impersonation makes unnecessary. Nothing else may hide in
 * them. */
static const struct grant as_itself_table[] = {
    {NULL, "kubevirt.io", "virtualmachines", "create patch", NULL},
    {NULL, "", "configmaps", "create patch", NULL},
};

#define AS_ITSELF "kvrecover-controller-as-itself"

/* The tenant's grant, in the tenant's namespace only: what a recovery and
 * capture write, as the tenant's ServiceAccount; and acting as that one
 * ServiceAccount. */
static const struct grant tenant_table[] = {
    {"Role", "kubevirt.io", "virtualmachines", "get create patch", NULL},
    {"Role", "", "configmaps", "get list create patch", NULL},
    {"Role", "", "serviceaccounts", "impersonate", "kvrecover-recoverer"},
};

#define NTABLE(t) (sizeof(t) / sizeof((t)[0]))

/* Whether word is one of the space-separated words of list. */
static int in_words(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p += len;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Whether the rule's resourceNames are a non-empty subset of names. */
static int names_within(const cJSON *rule, const char *names)
{
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(rule, "resourceNames"), *it;

    if (!cJSON_IsArray(rn) || cJSON_GetArraySize(rn) == 0)
        return 0;
    cJSON_ArrayForEach(it, rn)
    {
        if (!cJSON_IsString(it) || !in_words(names, it->valuestring))
            return 0;
    }
    return 1;
}

/* The table line that allows verb on group/resource for a role of kind
 * under rule, or NULL. */
static const struct grant *allowed(const struct grant *t, size_t n, const char *kind,
                                   const char *group, const char *resource, const char *verb,
                                   const cJSON *rule)
{
    for (size_t i = 0; i < n; i++) {
        if ((t[i].kind && strcmp(t[i].kind, kind) != 0) || strcmp(t[i].group, group) != 0 ||
            strcmp(t[i].resource, resource) != 0 || !in_words(t[i].verbs, verb))
            continue;
        if (t[i].names && !names_within(rule, t[i].names))
            continue;
        return &t[i];
    }
    return NULL;
}

/* Roles read from manifests, and which table lines they were seen to grant. */
struct audit {
    const struct grant *table; /* what may be granted */
    size_t n;                  /* lines in table */
    int seen[16];              /* per line: granted somewhere */
    struct buf problems;       /* one line per grant outside the table */
};

static void problem(struct audit *a, const char *file, const char *kind, const char *name,
                    const char *what)
{
    buf_printf(&a->problems, "%s: %s %s %s\n", file, kind, name ? name : "?", what);
}

/* Checks one rule of role (kind, name) read from file. */
static void audit_rule(struct audit *a, const char *file, const char *kind, const char *name,
                       const cJSON *rule)
{
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(rule, "apiGroups");
    const cJSON *resources = cJSON_GetObjectItemCaseSensitive(rule, "resources");
    const cJSON *verbs = cJSON_GetObjectItemCaseSensitive(rule, "verbs");
    const cJSON *g, *r, *v;

    if (cJSON_GetObjectItemCaseSensitive(rule, "nonResourceURLs")) {
        problem(a, file, kind, name, "grants nonResourceURLs");
        return;
    }
    if (!cJSON_IsArray(groups) || !cJSON_IsArray(resources) || !cJSON_IsArray(verbs) ||
        !groups->child || !resources->child || !verbs->child) {
        problem(a, file, kind, name, "has a rule without apiGroups, resources or verbs");
        return;
    }
    cJSON_ArrayForEach(g, groups)
    {
        cJSON_ArrayForEach(r, resources)
        {
            cJSON_ArrayForEach(v, verbs)
            {
                const struct grant *ok;
                char *what;

                if (!cJSON_IsString(g) || !cJSON_IsString(r) || !cJSON_IsString(v)) {
                    problem(a, file, kind, name, "has a rule item that is not a string");
                    continue;
                }
                ok = allowed(a->table, a->n, kind, g->valuestring, r->valuestring, v->valuestring,
                             rule);
                if (ok) {
                    a->seen[ok - a->table] = 1;
                    continue;
                }
                what = xasprintf("grants %s on %s (group \"%s\")%s, outside the table",
                                 v->valuestring, r->valuestring, g->valuestring,
                                 cJSON_GetObjectItemCaseSensitive(rule, "resourceNames")
                                     ? " with resourceNames"
                                     : "");
                problem(a, file, kind, name, what);
                free(what);
            }
        }
    }
}

/* Which roles of a file an audit looks at. */
enum pick {
    PICK_ALL,           /* every Role and ClusterRole */
    PICK_NOT_AS_ITSELF, /* all but those named AS_ITSELF */
    PICK_AS_ITSELF,     /* only those named AS_ITSELF */
    PICK_ROLES,         /* only Roles (a namespaced install drops the rest) */
};

static int picked(enum pick pick, const char *kind, const char *name)
{
    int as_itself = name && strcmp(name, AS_ITSELF) == 0;

    switch (pick) {
    case PICK_NOT_AS_ITSELF:
        return !as_itself;
    case PICK_AS_ITSELF:
        return as_itself;
    case PICK_ROLES:
        return strcmp(kind, "Role") == 0;
    default:
        return 1;
    }
}

/* Audits the Roles and ClusterRoles in the YAML text (read from file) that
 * pick selects. Returns the number of roles audited, or -1 when the text
 * does not parse. */
static int audit_text(struct audit *a, const char *file, const char *text, enum pick pick)
{
    cJSON *docs = NULL, *doc;
    char *err = NULL;
    int roles = 0;

    if (yaml_parse(text, strlen(text), &docs, &err) != 0) {
        buf_printf(&a->problems, "%s: %s\n", file, err ? err : "does not parse");
        free(err);
        return -1;
    }
    cJSON_ArrayForEach(doc, docs)
    {
        const char *kind = str_of(doc, "kind");
        const char *name = str_of(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "name");
        const cJSON *rules = cJSON_GetObjectItemCaseSensitive(doc, "rules"), *rule;

        if (!kind || (strcmp(kind, "Role") != 0 && strcmp(kind, "ClusterRole") != 0))
            continue;
        if (!picked(pick, kind, name))
            continue;
        roles++;
        if (cJSON_GetObjectItemCaseSensitive(doc, "aggregationRule"))
            problem(a, file, kind, name, "aggregates other roles");
        cJSON_ArrayForEach(rule, (cJSON_IsArray(rules) ? rules : NULL))
        {
            audit_rule(a, file, kind, name, rule);
        }
    }
    cJSON_Delete(docs);
    return roles;
}

/* Audits the manifest at path (from the repository's root). */
static int audit_file(struct audit *a, const char *path, enum pick pick)
{
    struct buf b = {0};
    char *full = xasprintf("%s/../../%s", harness_fixture(""), path);
    int rc;

    if (buf_read_file(&b, full, 1 << 20) < 0) {
        buf_printf(&a->problems, "%s: cannot read it\n", path);
        rc = -1;
    } else {
        buf_puts(&b, "");
        rc = audit_text(a, path, b.data, pick);
    }
    buf_free(&b);
    free(full);
    return rc;
}

/* Adds a problem for each table line no role granted: a grant the
 * controller needs and lost, or a stale line of the table. */
static void audit_all_seen(struct audit *a, const char *what)
{
    for (size_t i = 0; i < a->n; i++)
        if (!a->seen[i])
            buf_printf(&a->problems, "%s: does not grant %s on %s (group \"%s\")\n", what,
                       a->table[i].verbs, a->table[i].resource, a->table[i].group);
}

/* Prints the problems (so that a failure says what) and returns how many. */
static int audit_report(struct audit *a)
{
    int n = 0;

    for (size_t i = 0; i < a->problems.len; i++)
        n += a->problems.data[i] == '\n';
    if (n)
        fprintf(stderr, "%.*s", (int)a->problems.len, a->problems.data);
    return n;
}

TEST(the_cluster_install_grants_exactly_the_table)
{
    struct audit a = {controller_table, NTABLE(controller_table), {0}, {0}};

    CHECK(NTABLE(controller_table) <= sizeof(a.seen) / sizeof(a.seen[0]));
    CHECK(audit_file(&a, "manifests/rbac.yaml", PICK_NOT_AS_ITSELF) == 2);
    audit_all_seen(&a, "manifests/rbac.yaml");
    CHECK_INT(audit_report(&a), 0);
    buf_free(&a.problems);
}

TEST(the_cluster_install_writes_as_itself_only_what_impersonation_replaces)
{
    struct audit a = {as_itself_table, NTABLE(as_itself_table), {0}, {0}};

    CHECK(audit_file(&a, "manifests/rbac.yaml", PICK_AS_ITSELF) == 1);
    audit_all_seen(&a, "manifests/rbac.yaml " AS_ITSELF);
    CHECK_INT(audit_report(&a), 0);
    buf_free(&a.problems);
}

/* As installed by manifests/namespaced/: its roles, and the Roles of
 * ../rbac.yaml (it deletes that file's ClusterRoles). */
TEST(the_namespaced_install_grants_exactly_the_table)
{
    struct audit a = {controller_table, NTABLE(controller_table), {0}, {0}};
    struct audit w = {as_itself_table, NTABLE(as_itself_table), {0}, {0}};

    CHECK(audit_file(&a, "manifests/namespaced/rbac.yaml", PICK_NOT_AS_ITSELF) == 2);
    CHECK(audit_file(&a, "manifests/rbac.yaml", PICK_ROLES) == 1);
    audit_all_seen(&a, "manifests/namespaced/");
    CHECK_INT(audit_report(&a), 0);
    buf_free(&a.problems);
    /* there, the writes as itself are a Role in the one namespace */
    CHECK(audit_file(&w, "manifests/namespaced/rbac.yaml", PICK_AS_ITSELF) == 1);
    audit_all_seen(&w, "manifests/namespaced/ " AS_ITSELF);
    CHECK_INT(audit_report(&w), 0);
    buf_free(&w.problems);
}

TEST(the_tenant_grant_is_namespaced_and_narrow)
{
    struct audit a = {tenant_table, NTABLE(tenant_table), {0}, {0}};

    CHECK(audit_file(&a, "manifests/tenant/recoverer.yaml", PICK_ALL) == 2);
    audit_all_seen(&a, "manifests/tenant/recoverer.yaml");
    CHECK_INT(audit_report(&a), 0);
    buf_free(&a.problems);
}

/* The checker itself catches what the table forbids, so that a green run
 * means something. */
TEST(the_audit_refuses_what_the_table_does_not_allow)
{
    static const struct {
        const char *yaml;
        const char *says;
    } bad[] = {
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: [kubevirt.io]\n"
         "  resources: [virtualmachines]\n  verbs: [get, create]\n",
         "grants create on virtualmachines"},
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [configmaps]\n  verbs: [patch]\n",
         "grants patch on configmaps"},
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [serviceaccounts]\n  verbs: [impersonate]\n",
         "grants impersonate on serviceaccounts"},
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: [coordination.k8s.io]\n"
         "  resources: [leases]\n  verbs: [create]\n",
         "grants create on leases"},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: [coordination.k8s.io]\n"
         "  resources: [leases]\n  verbs: [update]\n",
         "grants update on leases"},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: ['*']\n"
         "  resources: [configmaps]\n  verbs: [get]\n",
         "group \"*\""},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [secrets]\n  verbs: [get]\n",
         "grants get on secrets"},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [events]\n  verbs: ['*']\n",
         "grants * on events"},
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- nonResourceURLs: [/metrics]\n"
         "  verbs: [get]\n",
         "nonResourceURLs"},
        {"kind: ClusterRole\nmetadata: {name: x}\naggregationRule: {}\nrules: []\n", "aggregates"},
    };
    static const struct {
        const char *yaml;
        const char *says;
    } tenant_bad[] = {
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [serviceaccounts]\n  verbs: [impersonate]\n",
         "grants impersonate on serviceaccounts (group \"\"), outside"},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: ['']\n"
         "  resources: [serviceaccounts]\n  resourceNames: [kvrecover-recoverer, default]\n"
         "  verbs: [impersonate]\n",
         "with resourceNames"},
        {"kind: Role\nmetadata: {name: x}\nrules:\n- apiGroups: [kubevirt.io]\n"
         "  resources: [virtualmachines]\n  verbs: [delete]\n",
         "grants delete on virtualmachines"},
        {"kind: ClusterRole\nmetadata: {name: x}\nrules:\n- apiGroups: [kubevirt.io]\n"
         "  resources: [virtualmachines]\n  verbs: [create]\n",
         "ClusterRole x grants create"},
    };

    for (size_t i = 0; i < NTABLE(bad); i++) {
        struct audit a = {controller_table, NTABLE(controller_table), {0}, {0}};

        CHECK_INT(audit_text(&a, "t.yaml", bad[i].yaml, PICK_ALL), 1);
        buf_puts(&a.problems, "");
        CHECK(strstr(a.problems.data, bad[i].says) != NULL);
        buf_free(&a.problems);
    }
    for (size_t i = 0; i < NTABLE(tenant_bad); i++) {
        struct audit a = {tenant_table, NTABLE(tenant_table), {0}, {0}};

        CHECK_INT(audit_text(&a, "t.yaml", tenant_bad[i].yaml, PICK_ALL), 1);
        buf_puts(&a.problems, "");
        CHECK(strstr(a.problems.data, tenant_bad[i].says) != NULL);
        buf_free(&a.problems);
    }
    /* the writes as itself cannot grow beyond what impersonation replaces */
    {
        struct audit a = {as_itself_table, NTABLE(as_itself_table), {0}, {0}};

        CHECK_INT(audit_text(&a, "t.yaml",
                             "kind: ClusterRole\nmetadata: {name: " AS_ITSELF "}\nrules:\n"
                             "- apiGroups: [kubevirt.io]\n  resources: [virtualmachines]\n"
                             "  verbs: [create, update]\n",
                             PICK_AS_ITSELF),
                  1);
        buf_puts(&a.problems, "");
        CHECK(strstr(a.problems.data, "grants update on virtualmachines") != NULL);
        buf_free(&a.problems);
    }
    /* a table line granted nowhere is reported too */
    {
        struct audit a = {tenant_table, NTABLE(tenant_table), {0}, {0}};

        CHECK_INT(
            audit_text(&a, "t.yaml", "kind: Role\nmetadata: {name: x}\nrules: []\n", PICK_ALL), 1);
        audit_all_seen(&a, "t.yaml");
        buf_puts(&a.problems, "");
        CHECK(strstr(a.problems.data, "does not grant impersonate on serviceaccounts") != NULL);
        buf_free(&a.problems);
    }
}
