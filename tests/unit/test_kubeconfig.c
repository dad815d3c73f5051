/*
 * Tests for kubeconfig: contexts, clusters and users; inline and file
 * credentials; tokens; the settings refused; errors that name what is
 * wrong; the in-cluster configuration and the lookup order.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "harness.h"
#include "kube/kubeconfig.h"

static int parse(const char *yaml, const char *ctx, struct kubeconfig **out, char **err)
{
    return kubeconfig_parse(yaml, strlen(yaml), "/base", ctx, out, err);
}

/* Parses yaml expecting rc and an error message that contains want. */
static int expect_error(const char *yaml, int rc, const char *want)
{
    struct kubeconfig *c = (struct kubeconfig *)1;
    char *err = NULL;
    int got = parse(yaml, NULL, &c, &err);
    int ok = got == rc && c == NULL && err != NULL && strstr(err, want) != NULL;

    if (!ok)
        fprintf(stderr, "    rc %d (want %d), err \"%s\" (want \"%s\")\n", got, rc,
                err ? err : "(null)", want);
    free(err);
    if (got == 0 && c != (struct kubeconfig *)1)
        kubeconfig_free(c);
    return ok;
}

#define HEAD                                                                                       \
    "current-context: c\n"                                                                         \
    "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"

/* The recorded multi-context file: the current context with inline
 * credentials, its namespace, and the trailing '/' of the server dropped. */
TEST(kubeconfig_current_context_inline_credentials)
{
    struct kubeconfig *c = NULL;
    char *err = NULL;
    char dir[PATH_MAX];

    CHECK_INT(kubeconfig_load(harness_fixture("kubeconfig-multi.yaml"), NULL, &c, &err), 0);
    CHECK(err == NULL);
    CHECK_STR(c->context, "dev");
    CHECK_STR(c->server, "https://dev.example.com:6443");
    CHECK_STR(c->namespace, "team-a");
    CHECK(c->ca_file == NULL);
    CHECK_INT(c->ca_len,
              strlen("-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n"));
    CHECK_STR((const char *)c->ca_data,
              "-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n");
    CHECK(strstr((const char *)c->cert_data, "TESTCLIENT") != NULL);
    CHECK(strstr((const char *)c->key_data, "TESTKEY") != NULL);
    CHECK(c->token == NULL && c->token_file == NULL);
    snprintf(dir, sizeof(dir), "%s", harness_fixture("kubeconfig-multi.yaml"));
    CHECK_STR(c->source, dir);
    kubeconfig_free(c);
}

/* Another context by name: files resolve against the kubeconfig's own
 * directory (absolute paths stay), a static token, no namespace. */
TEST(kubeconfig_named_context_files_relative_to_file)
{
    struct kubeconfig *c = NULL;
    char *err = NULL, *real, *want;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s", harness_fixture("kubeconfig-multi.yaml"));
    real = realpath(path, NULL);
    CHECK(real != NULL);
    *strrchr(real, '/') = '\0';
    CHECK_INT(kubeconfig_load(path, "ops", &c, &err), 0);
    CHECK_STR(c->context, "ops");
    CHECK_STR(c->server, "https://10.0.0.1:443");
    CHECK(c->namespace == NULL);
    want = xasprintf("%s/certs/ca.pem", real);
    CHECK_STR(c->ca_file, want);
    free(want);
    CHECK_STR(c->cert_file, "/etc/ops/client.crt");
    want = xasprintf("%s/certs/client.key", real);
    CHECK_STR(c->key_file, want);
    free(want);
    CHECK_STR(c->token, "static-token-123");
    CHECK_STR(c->tls_server_name, "kubernetes.default");
    kubeconfig_free(c);

    CHECK_INT(kubeconfig_load(path, "ci", &c, &err), 0);
    want = xasprintf("%s/secrets/token", real);
    CHECK_STR(c->token_file, want);
    free(want);
    CHECK(c->token == NULL);
    CHECK_STR(c->namespace, "ci");
    CHECK(c->ca_file == NULL && c->ca_data == NULL); /* system CA store */
    kubeconfig_free(c);
    free(real);
}

/* kubeconfig_dup copies everything, blobs included. */
TEST(kubeconfig_dup_is_deep)
{
    struct kubeconfig *c = NULL, *d;
    char *err = NULL;

    CHECK_INT(kubeconfig_load(harness_fixture("kubeconfig-multi.yaml"), NULL, &c, &err), 0);
    d = kubeconfig_dup(c);
    CHECK(d != NULL && d->ca_data != c->ca_data && d->server != c->server);
    CHECK_INT(d->ca_len, c->ca_len);
    CHECK(memcmp(d->key_data, c->key_data, c->key_len) == 0);
    CHECK_STR(d->namespace, c->namespace);
    kubeconfig_free(c);
    kubeconfig_free(d);
    CHECK(kubeconfig_dup(NULL) == NULL);
    kubeconfig_free(NULL);
}

/* Every missing piece is an error that names it. */
TEST(kubeconfig_missing_fields_named)
{
    CHECK(expect_error("clusters: []\n", -EINVAL, "current-context"));
    CHECK(expect_error("current-context: nope\ncontexts: []\n", -EINVAL, "context \"nope\""));
    CHECK(expect_error("current-context: c\ncontexts:\n- name: c\n  context: {user: u}\n", -EINVAL,
                       "names no cluster"));
    CHECK(expect_error(HEAD "clusters: []\n", -EINVAL, "cluster \"k\""));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\nusers: []\n",
                       -EINVAL, "user \"u\""));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {certificate-authority: x}\n"
                            "users:\n- name: u\n  user: {token: t}\n",
                       -EINVAL, "has no server"));
    CHECK(expect_error("- a\n- b\n", -EINVAL, "mapping"));
    CHECK(expect_error("a: [b\n", -EINVAL, "YAML"));
}

/* Names from the file are quoted in errors on one line: a line break in a
 * name cannot split or forge a log line. A server without a host is no
 * server. */
TEST(kubeconfig_errors_are_one_line)
{
    CHECK(expect_error("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: "
                       "\"a\\nb\"}\nclusters:\n- name: k\n  cluster: {server: https://x}\n"
                       "users: []\n",
                       -EINVAL, "user \"a?b\" (of context \"c\") not found"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: 'https:///'}\n"
                            "users:\n- name: u\n  user: {token: t}\n",
                       -EINVAL, "names no host"));
}

/* Bad inline data and inconsistent credentials are refused, naming the
 * field and its entry. */
TEST(kubeconfig_bad_credentials)
{
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a, "
                            "certificate-authority-data: 'not*base64'}\n"
                            "users:\n- name: u\n  user: {token: t}\n",
                       -EINVAL, "cluster \"k\": certificate-authority-data is not valid base64"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\n"
                            "users:\n- name: u\n  user: {client-certificate: a, "
                            "client-certificate-data: QUJD}\n",
                       -EINVAL, "both client-certificate and client-certificate-data"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\n"
                            "users:\n- name: u\n  user: {client-certificate: a}\n",
                       -EINVAL, "client key"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\n"
                            "users:\n- name: u\n  user: {client-key-data: '===='}\n",
                       -EINVAL, "client-key-data is not valid base64"));
}

/* What would weaken TLS or run code is refused, not ignored. */
TEST(kubeconfig_refused_settings)
{
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a, "
                            "insecure-skip-tls-verify: true}\n"
                            "users:\n- name: u\n  user: {token: t}\n",
                       -EINVAL, "insecure-skip-tls-verify"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\n"
                            "users:\n- name: u\n  user:\n    exec: {command: aws}\n",
                       -EINVAL, "exec is not supported"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: https://a}\n"
                            "users:\n- name: u\n  user: {username: a, password: b}\n",
                       -EINVAL, "username"));
    CHECK(expect_error(HEAD "clusters:\n- name: k\n  cluster: {server: 'http://a:8080'}\n"
                            "users:\n- name: u\n  user: {token: t}\n",
                       -EPROTONOSUPPORT, "not https://"));
}

/* insecure-skip-tls-verify: false is harmless, a context without a user is
 * anonymous, and --context overrides current-context. */
TEST(kubeconfig_accepts_harmless_forms)
{
    const char *y = "current-context: a\n"
                    "contexts:\n- name: a\n  context: {cluster: k}\n"
                    "- name: b\n  context: {cluster: k, namespace: nb}\n"
                    "clusters:\n- name: k\n  cluster: {server: https://k, "
                    "insecure-skip-tls-verify: false}\n";
    struct kubeconfig *c = NULL;
    char *err = NULL;

    CHECK_INT(parse(y, NULL, &c, &err), 0);
    CHECK_STR(c->context, "a");
    CHECK(c->token == NULL && c->cert_file == NULL && c->cert_data == NULL);
    kubeconfig_free(c);
    CHECK_INT(parse(y, "b", &c, &err), 0);
    CHECK_STR(c->namespace, "nb");
    kubeconfig_free(c);
}

TEST(kubeconfig_base64_cases)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: invalid */
    } rows[] = {
        {"", ""},
        {"QQ==", "A"},
        {"QUI=", "AB"},
        {"QUJD", "ABC"},
        {"QUJD\nRA==", "ABCD"},
        {"QQ", "A"},
        {"QUI", "AB"},
        {"Q", NULL},
        {"QQ=", NULL},
        {"Q===", NULL},
        {"QQ==QQ==", NULL},
        {"QU*D", NULL},
        {"QUJD=", NULL},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        unsigned char *out = NULL;
        size_t n = 0;
        int rc = kubeconfig_base64_decode(rows[i].in, strlen(rows[i].in), &out, &n);
        if (rows[i].out == NULL) {
            CHECK_INT(rc, -EINVAL);
            CHECK(out == NULL);
            continue;
        }
        CHECK_INT(rc, 0);
        CHECK_INT(n, strlen(rows[i].out));
        CHECK_STR((const char *)out, rows[i].out);
        free(out);
    }
}

/* A scratch directory with a service account's files. */
static char *make_sa_dir(bool with_ca, const char *ns)
{
    char tmpl[] = "/tmp/kvr-sa-XXXXXX";
    char *dir = mkdtemp(tmpl) ? xstrdup(tmpl) : NULL;
    char *p;
    FILE *f;

    if (dir == NULL)
        return NULL;
    p = xasprintf("%s/token", dir);
    f = fopen(p, "w");
    if (f) {
        fputs("sa-token\n", f);
        fclose(f);
    }
    free(p);
    if (with_ca) {
        p = xasprintf("%s/ca.crt", dir);
        f = fopen(p, "w");
        if (f)
            fclose(f);
        free(p);
    }
    if (ns) {
        p = xasprintf("%s/namespace", dir);
        f = fopen(p, "w");
        if (f) {
            fputs(ns, f);
            fclose(f);
        }
        free(p);
    }
    return dir;
}

static void remove_sa_dir(char *dir)
{
    static const char *const names[] = {"token", "ca.crt", "namespace"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    free(dir);
}

/* In a pod: the service address (IPv6 bracketed), the token file (re-read
 * by the client), the CA and the namespace file. */
TEST(kubeconfig_in_cluster_reads_service_account)
{
    char *dir = make_sa_dir(true, "kvrecover-system\n");
    struct kubeconfig *c = NULL;
    char *err = NULL, *want;

    CHECK(dir != NULL);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    CHECK_INT(kubeconfig_in_cluster(dir, &c, &err), 0);
    CHECK_STR(c->server, "https://10.96.0.1:443");
    want = xasprintf("%s/token", dir);
    CHECK_STR(c->token_file, want);
    free(want);
    want = xasprintf("%s/ca.crt", dir);
    CHECK_STR(c->ca_file, want);
    free(want);
    CHECK_STR(c->namespace, "kvrecover-system");
    CHECK_STR(c->context, "in-cluster");
    kubeconfig_free(c);

    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    CHECK_INT(kubeconfig_in_cluster(dir, &c, &err), 0);
    CHECK_STR(c->server, "https://[fd00::1]:443");
    kubeconfig_free(c);
    remove_sa_dir(dir);

    /* No token file: not in a pod. */
    CHECK_INT(kubeconfig_in_cluster("/nonexistent", &c, &err), -ENOENT);
    CHECK(c == NULL && err != NULL && strstr(err, "/nonexistent/token") != NULL);
    free(err);
    unsetenv("KUBERNETES_SERVICE_HOST");
    CHECK_INT(kubeconfig_in_cluster("/nonexistent", &c, &err), -ENOENT);
    CHECK(strstr(err, "KUBERNETES_SERVICE_HOST") != NULL);
    free(err);
    unsetenv("KUBERNETES_SERVICE_PORT");
}

/* The lookup order: the flag, then the first existing file of $KUBECONFIG,
 * then ~/.kube/config (not in a pod here); nothing gives -ENOENT. */
TEST(kubeconfig_resolve_order)
{
    char fixture[PATH_MAX];
    struct kubeconfig *c = NULL;
    char *err = NULL, *list;
    char home[] = "/tmp/kvr-home-XXXXXX";
    char *kube_dir, *cfg_path;
    const char *old_home = getenv("HOME");
    char *saved_home = xstrdup(old_home);

    /* Absolute: a symlink's relative target would resolve from its own
     * directory. */
    CHECK(realpath(harness_fixture("kubeconfig-multi.yaml"), fixture) != NULL);
    unsetenv("KUBERNETES_SERVICE_HOST");
    CHECK(mkdtemp(home) != NULL);
    setenv("HOME", home, 1);
    unsetenv("KUBECONFIG");

    CHECK_INT(kubeconfig_resolve(NULL, NULL, &c, &err), -ENOENT);
    CHECK(c == NULL && err != NULL && strstr(err, "kubeconfig") != NULL);
    free(err);

    kube_dir = xasprintf("%s/.kube", home);
    cfg_path = xasprintf("%s/config", kube_dir);
    mkdir(kube_dir, 0700);
    CHECK(symlink(fixture, cfg_path) == 0);
    CHECK_INT(kubeconfig_resolve(NULL, "ci", &c, &err), 0);
    CHECK_STR(c->context, "ci");
    CHECK_STR(c->source, cfg_path);
    kubeconfig_free(c);

    list = xasprintf("/nonexistent/a:%s", fixture);
    setenv("KUBECONFIG", list, 1);
    CHECK_INT(kubeconfig_resolve(NULL, NULL, &c, &err), 0);
    CHECK_STR(c->source, fixture);
    kubeconfig_free(c);
    free(list);

    CHECK_INT(kubeconfig_resolve("/nonexistent/flag", NULL, &c, &err), -ENOENT);
    CHECK(strstr(err, "/nonexistent/flag") != NULL);
    free(err);

    unsetenv("KUBECONFIG");
    unlink(cfg_path);
    rmdir(kube_dir);
    rmdir(home);
    free(cfg_path);
    free(kube_dir);
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved_home);
}
