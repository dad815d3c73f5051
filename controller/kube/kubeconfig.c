/*
 * kubeconfig — kubeconfig files and the in-cluster service account into a
 * struct kubeconfig. See kubeconfig.h.
 */
#include "kube/kubeconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "base/yaml.h"

/* The text of a scalar: strings, and numbers or booleans written as plain
 * scalars (a context named 1 is still a name). NULL for anything else. */
static const char *kubeconfig__str(const cJSON *item)
{
    if (item == NULL)
        return NULL;
    if (cJSON_IsString(item) || cJSON_IsNumber(item))
        return item->valuestring;
    if (cJSON_IsTrue(item))
        return "true";
    if (cJSON_IsFalse(item))
        return "false";
    return NULL;
}

/* The mapping under key, or NULL. */
static const cJSON *kubeconfig__get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *kubeconfig__get_str(const cJSON *obj, const char *key)
{
    return kubeconfig__str(kubeconfig__get(obj, key));
}

/* Makes an error message one line: names and values quoted in it come from
 * the file and may hold line breaks or other control bytes, which would
 * break or forge log lines. Replaced in place with '?'. */
static void kubeconfig__oneline(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* True when s is set and not empty. */
static bool kubeconfig__set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/*
 * Finds the entry called name in a kubeconfig list (clusters, contexts,
 * users: [{name: N, <field>: {...}}]) and returns its <field> mapping, or
 * NULL. A present entry whose field is missing gives an empty object's
 * absence too: callers report "not found or empty".
 */
static const cJSON *kubeconfig__named(const cJSON *root, const char *list, const char *field,
                                      const char *name)
{
    const cJSON *arr = kubeconfig__get(root, list);
    const cJSON *it;

    if (!cJSON_IsArray(arr))
        return NULL;
    cJSON_ArrayForEach(it, arr)
    {
        const char *n = kubeconfig__get_str(it, "name");
        if (n && strcmp(n, name) == 0) {
            const cJSON *f = kubeconfig__get(it, field);
            return cJSON_IsObject(f) ? f : NULL;
        }
    }
    return NULL;
}

/* path, or dir/path when path is relative and dir is given. */
static char *kubeconfig__resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/' || !kubeconfig__set(dir))
        return xstrdup(path);
    return xasprintf("%s/%s", dir, path);
}

static int kubeconfig__b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kubeconfig_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *res = xmalloc(len / 4 * 3 + 4);
    size_t n = 0, pad = 0, quad = 0;
    unsigned long acc = 0;
    int rc = -EINVAL;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;

        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            /* Padding only completes a group: "xx==" or "xxx=". */
            if (pad > 2 || quad + pad > 4 || quad < 2)
                goto out;
            continue;
        }
        if (pad) /* data after padding */
            goto out;
        v = kubeconfig__b64val(c);
        if (v < 0)
            goto out;
        acc = (acc << 6) | (unsigned long)v;
        if (++quad == 4) {
            res[n++] = (unsigned char)(acc >> 16);
            res[n++] = (unsigned char)(acc >> 8);
            res[n++] = (unsigned char)acc;
            acc = 0;
            quad = 0;
        }
    }
    if (pad && quad + pad != 4)
        goto out;
    /* Unpadded tails are accepted (Go's StdEncoding would refuse them, but
     * they are unambiguous); a single leftover symbol is not. */
    if (quad == 1)
        goto out;
    if (quad == 2) {
        res[n++] = (unsigned char)(acc >> 4);
    } else if (quad == 3) {
        res[n++] = (unsigned char)(acc >> 10);
        res[n++] = (unsigned char)(acc >> 2);
    }
    res[n] = '\0';
    *out = res;
    *out_len = n;
    res = NULL;
    rc = 0;
out:
    free(res);
    return rc;
}

/* A copy of n bytes (NUL-terminated, binary-safe); NULL gives NULL. */
static unsigned char *kubeconfig__dup_blob(const unsigned char *p, size_t n)
{
    unsigned char *d;

    if (p == NULL)
        return NULL;
    d = xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

struct kubeconfig *kubeconfig_dup(const struct kubeconfig *c)
{
    struct kubeconfig *d;

    if (c == NULL)
        return NULL;
    d = xcalloc(1, sizeof(*d));
    d->server = xstrdup(c->server);
    d->namespace = xstrdup(c->namespace);
    d->context = xstrdup(c->context);
    d->source = xstrdup(c->source);
    d->tls_server_name = xstrdup(c->tls_server_name);
    d->ca_file = xstrdup(c->ca_file);
    d->cert_file = xstrdup(c->cert_file);
    d->key_file = xstrdup(c->key_file);
    d->token = xstrdup(c->token);
    d->token_file = xstrdup(c->token_file);
    d->ca_data = kubeconfig__dup_blob(c->ca_data, c->ca_len);
    d->ca_len = c->ca_len;
    d->cert_data = kubeconfig__dup_blob(c->cert_data, c->cert_len);
    d->cert_len = c->cert_len;
    d->key_data = kubeconfig__dup_blob(c->key_data, c->key_len);
    d->key_len = c->key_len;
    return d;
}

/* Frees a secret after overwriting it, so that it does not linger in freed
 * heap memory (core dumps, later allocations). */
static void kubeconfig__free_secret(void *p, size_t n)
{
    if (p == NULL)
        return;
    explicit_bzero(p, n);
    free(p);
}

void kubeconfig_free(struct kubeconfig *c)
{
    if (c == NULL)
        return;
    free(c->server);
    free(c->namespace);
    free(c->context);
    free(c->source);
    free(c->tls_server_name);
    free(c->ca_file);
    free(c->ca_data);
    free(c->cert_file);
    free(c->cert_data);
    free(c->key_file);
    kubeconfig__free_secret(c->key_data, c->key_len);
    if (c->token)
        kubeconfig__free_secret(c->token, strlen(c->token));
    free(c->token_file);
    free(c);
}

/*
 * One credential that may come as a file or inline as base64 (*-data): at
 * most one of the two; the file is resolved against dir. where names the
 * entry for messages ("cluster \"c\""). Returns 0 or -EINVAL with *err.
 */
static int kubeconfig__cred(const cJSON *obj, const char *file_key, const char *data_key,
                            const char *dir, const char *where, char **file, unsigned char **data,
                            size_t *len, char **err)
{
    const char *f = kubeconfig__get_str(obj, file_key);
    const char *d = kubeconfig__get_str(obj, data_key);

    if (kubeconfig__set(f) && kubeconfig__set(d)) {
        *err = xasprintf("%s: both %s and %s are set", where, file_key, data_key);
        return -EINVAL;
    }
    if (kubeconfig__set(d)) {
        if (kubeconfig_base64_decode(d, strlen(d), data, len) < 0) {
            *err = xasprintf("%s: %s is not valid base64", where, data_key);
            return -EINVAL;
        }
        if (*len == 0) {
            *err = xasprintf("%s: %s is empty", where, data_key);
            return -EINVAL;
        }
    } else if (kubeconfig__set(f)) {
        *file = kubeconfig__resolve_path(dir, f);
    }
    return 0;
}

/* Settings we refuse rather than silently ignore: each would either weaken
 * TLS or need a credential mechanism we do not implement. */
static int kubeconfig__refuse(const cJSON *cluster, const cJSON *user, const char *cname,
                              const char *uname, char **err)
{
    const cJSON *insecure = kubeconfig__get(cluster, "insecure-skip-tls-verify");
    const char *iv = kubeconfig__str(insecure);
    static const char *const user_refused[] = {"exec", "auth-provider", "username", "password"};

    if (insecure && !(iv && strcmp(iv, "false") == 0)) {
        *err = xasprintf("cluster \"%s\": insecure-skip-tls-verify is refused: kvrecover "
                         "always verifies the API server's certificate",
                         cname);
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(user_refused) / sizeof(user_refused[0]); i++) {
        if (kubeconfig__get(user, user_refused[i])) {
            *err = xasprintf("user \"%s\": %s is not supported (use a client certificate or "
                             "a token)",
                             uname, user_refused[i]);
            return -EINVAL;
        }
    }
    return 0;
}

int kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                     struct kubeconfig **out, char **err)
{
    cJSON *root = NULL;
    struct kubeconfig *c = NULL;
    char *yerr = NULL;
    const cJSON *ctx, *cluster, *user = NULL;
    const char *ctx_name, *cluster_name, *user_name, *server, *s;
    int rc;

    *out = NULL;
    *err = NULL;
    rc = yaml_parse_one(text, len, &root, &yerr);
    if (rc < 0) {
        *err = xasprintf("not valid YAML: %s", yerr ? yerr : "?");
        goto out;
    }
    rc = -EINVAL;
    if (!cJSON_IsObject(root)) {
        *err = xstrdup("not a kubeconfig: expected a mapping");
        goto out;
    }
    ctx_name = kubeconfig__set(context) ? context : kubeconfig__get_str(root, "current-context");
    if (!kubeconfig__set(ctx_name)) {
        *err = xstrdup("no context: current-context is not set and none was given");
        goto out;
    }
    ctx = kubeconfig__named(root, "contexts", "context", ctx_name);
    if (ctx == NULL) {
        *err = xasprintf("context \"%s\" not found", ctx_name);
        goto out;
    }
    cluster_name = kubeconfig__get_str(ctx, "cluster");
    if (!kubeconfig__set(cluster_name)) {
        *err = xasprintf("context \"%s\" names no cluster", ctx_name);
        goto out;
    }
    cluster = kubeconfig__named(root, "clusters", "cluster", cluster_name);
    if (cluster == NULL) {
        *err = xasprintf("cluster \"%s\" (of context \"%s\") not found", cluster_name, ctx_name);
        goto out;
    }
    user_name = kubeconfig__get_str(ctx, "user");
    if (kubeconfig__set(user_name)) {
        user = kubeconfig__named(root, "users", "user", user_name);
        if (user == NULL) {
            *err = xasprintf("user \"%s\" (of context \"%s\") not found", user_name, ctx_name);
            goto out;
        }
    } else {
        user_name = "";
    }
    rc = kubeconfig__refuse(cluster, user, cluster_name, user_name, err);
    if (rc < 0)
        goto out;
    rc = -EINVAL;
    server = kubeconfig__get_str(cluster, "server");
    if (!kubeconfig__set(server)) {
        *err = xasprintf("cluster \"%s\" has no server", cluster_name);
        goto out;
    }
    if (strncmp(server, "https://", 8) != 0) {
        *err = xasprintf("cluster \"%s\": server \"%s\" is not https:// (TLS is required)",
                         cluster_name, server);
        rc = -EPROTONOSUPPORT;
        goto out;
    }
    if (server[8 + strspn(server + 8, "/")] == '\0') {
        *err = xasprintf("cluster \"%s\": server \"%s\" names no host", cluster_name, server);
        goto out;
    }

    c = xcalloc(1, sizeof(*c));
    c->server = xstrdup(server);
    for (size_t n = strlen(c->server); n > 8 && c->server[n - 1] == '/'; n--)
        c->server[n - 1] = '\0';
    c->context = xstrdup(ctx_name);
    s = kubeconfig__get_str(ctx, "namespace");
    if (kubeconfig__set(s))
        c->namespace = xstrdup(s);
    s = kubeconfig__get_str(cluster, "tls-server-name");
    if (kubeconfig__set(s))
        c->tls_server_name = xstrdup(s);

    char *where = xasprintf("cluster \"%s\"", cluster_name);
    rc = kubeconfig__cred(cluster, "certificate-authority", "certificate-authority-data", dir,
                          where, &c->ca_file, &c->ca_data, &c->ca_len, err);
    free(where);
    if (rc < 0)
        goto out;
    where = xasprintf("user \"%s\"", user_name);
    rc = kubeconfig__cred(user, "client-certificate", "client-certificate-data", dir, where,
                          &c->cert_file, &c->cert_data, &c->cert_len, err);
    if (rc == 0)
        rc = kubeconfig__cred(user, "client-key", "client-key-data", dir, where, &c->key_file,
                              &c->key_data, &c->key_len, err);
    if (rc == 0 && (c->cert_file || c->cert_data) != (c->key_file || c->key_data)) {
        *err =
            xasprintf("%s: a client certificate needs a client key and the other way round", where);
        rc = -EINVAL;
    }
    free(where);
    if (rc < 0)
        goto out;
    s = kubeconfig__get_str(user, "token");
    if (kubeconfig__set(s))
        c->token = xstrdup(s);
    s = kubeconfig__get_str(user, "tokenFile");
    if (kubeconfig__set(s))
        c->token_file = kubeconfig__resolve_path(dir, s);

    *out = c;
    c = NULL;
    rc = 0;
out:
    kubeconfig__oneline(*err);
    kubeconfig_free(c);
    cJSON_Delete(root);
    free(yerr);
    return rc;
}

int kubeconfig_load(const char *path, const char *context, struct kubeconfig **out, char **err)
{
    struct buf text = {0};
    char *dir = NULL, *perr = NULL;
    const char *slash;
    int rc;

    *out = NULL;
    *err = NULL;
    rc = buf_read_file(&text, path, KUBECONFIG_MAX_FILE);
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, strerror(-rc));
        goto out;
    }
    /* Relative paths in a kubeconfig are relative to the file, not to our
     * working directory; make the directory absolute so they stay right if
     * the process changes directory later. */
    slash = strrchr(path, '/');
    dir = slash ? xstrndup(path, (size_t)(slash - path + (slash == path))) : xstrdup(".");
    char *real = realpath(dir, NULL);
    if (real) {
        free(dir);
        dir = real;
    }
    rc = kubeconfig_parse(text.data ? text.data : "", text.len, dir, context, out, &perr);
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, perr);
        goto out;
    }
    free((*out)->source);
    (*out)->source = xstrdup(path);
out:
    kubeconfig__oneline(*err);
    free(perr);
    free(dir);
    buf_free(&text);
    return rc;
}

int kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig **out, char **err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    struct kubeconfig *c = NULL;
    struct buf ns = {0};
    char *path = NULL;
    int rc = -ENOENT;

    *out = NULL;
    *err = NULL;
    if (sa_dir == NULL)
        sa_dir = KUBECONFIG_SA_DIR;
    if (!kubeconfig__set(host) || !kubeconfig__set(port)) {
        *err = xstrdup("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
        goto out;
    }
    path = xasprintf("%s/token", sa_dir);
    if (access(path, R_OK) != 0) {
        rc = -errno;
        *err = xasprintf("not in a cluster: %s: %s", path, strerror(errno));
        goto out;
    }
    c = xcalloc(1, sizeof(*c));
    /* An IPv6 service address needs brackets in a URL. */
    c->server = strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
                                  : xasprintf("https://%s:%s", host, port);
    c->token_file = path;
    path = NULL;
    c->context = xstrdup("in-cluster");
    c->source = xstrdup("in-cluster");
    path = xasprintf("%s/ca.crt", sa_dir);
    if (access(path, R_OK) == 0) {
        c->ca_file = path;
        path = NULL;
    }
    free(path);
    path = xasprintf("%s/namespace", sa_dir);
    if (buf_read_file(&ns, path, 4096) == 0) {
        size_t n = ns.len;
        while (n > 0 && (ns.data[n - 1] == '\n' || ns.data[n - 1] == ' ' || ns.data[n - 1] == '\r'))
            n--;
        if (n > 0)
            c->namespace = xstrndup(ns.data, n);
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    kubeconfig__oneline(*err);
    kubeconfig_free(c);
    buf_free(&ns);
    free(path);
    return rc;
}

/* The first existing file in a ':'-separated list, or NULL. */
static char *kubeconfig__first_existing(const char *list)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0) {
            char *cand = xstrndup(p, n);
            if (access(cand, F_OK) == 0)
                return cand;
            free(cand);
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return NULL;
}

int kubeconfig_resolve(const char *flag_path, const char *context, struct kubeconfig **out,
                       char **err)
{
    const char *env = getenv("KUBECONFIG");
    const char *home = getenv("HOME");
    char *path = NULL, *icerr = NULL;
    int rc;

    *out = NULL;
    *err = NULL;
    if (kubeconfig__set(flag_path))
        return kubeconfig_load(flag_path, context, out, err);
    if (kubeconfig__set(env)) {
        path = kubeconfig__first_existing(env);
        if (path) {
            rc = kubeconfig_load(path, context, out, err);
            goto out;
        }
    }
    rc = kubeconfig_in_cluster(NULL, out, &icerr);
    if (rc != -ENOENT)
        goto out;
    if (kubeconfig__set(home)) {
        path = xasprintf("%s/.kube/config", home);
        if (access(path, F_OK) == 0) {
            rc = kubeconfig_load(path, context, out, err);
            goto out;
        }
    }
    rc = -ENOENT;
    *err = xstrdup("no kubeconfig: give --kubeconfig or set $KUBECONFIG, run in a pod, or "
                   "create ~/.kube/config");
out:
    if (rc < 0 && *err == NULL && icerr) {
        *err = icerr;
        icerr = NULL;
    }
    free(icerr);
    free(path);
    return rc;
}
