/*
 * kubeconfig — where the API server is and how to authenticate to it.
 *
 * Reads a kubeconfig file (through yaml_parse, never a parser of its own) or
 * the in-cluster service-account files, and reduces either to one plain
 * struct kubeconfig that kube_new() turns into a client. Certificates given
 * inline ("-data", base64) are decoded here and kept in memory; files are
 * resolved against the kubeconfig's directory and read by the client.
 *
 * It must never weaken TLS: insecure-skip-tls-verify: true is refused, not
 * ignored, and a server without a CA falls back to the system CA store, never
 * to no verification. It never executes anything (exec and auth-provider
 * plugins are refused with an error naming them).
 */
#ifndef KVR_KUBECONFIG_H
#define KVR_KUBECONFIG_H

#include <stddef.h>

/* Where the in-cluster service-account files live. */
#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Largest kubeconfig, certificate, key or token file read (bytes). */
#define KUBECONFIG_MAX_FILE (4u << 20)

/*
 * A resolved configuration: one server, one user, one namespace. Every
 * pointer is owned by the struct and released by kubeconfig_free(); a field
 * not configured is NULL (blobs: NULL with length 0). At most one of the
 * _file/_data pair of each credential is set.
 */
struct kubeconfig {
    char *server;          /* "https://host:port", no trailing '/' */
    char *namespace;       /* the context's namespace, the in-cluster
                              namespace file, or NULL (caller's default) */
    char *context;         /* name of the context used; "in-cluster" */
    char *source;          /* the file read, or "in-cluster" (for logs) */
    char *tls_server_name; /* cluster's tls-server-name override, or NULL */

    char *ca_file;          /* certificate-authority, absolute path */
    unsigned char *ca_data; /* certificate-authority-data, decoded PEM */
    size_t ca_len;          /* bytes in ca_data */

    char *cert_file;          /* client-certificate, absolute path */
    unsigned char *cert_data; /* client-certificate-data, decoded PEM */
    size_t cert_len;          /* bytes in cert_data */

    char *key_file;          /* client-key, absolute path */
    unsigned char *key_data; /* client-key-data, decoded PEM */
    size_t key_len;          /* bytes in key_data */

    char *token;      /* static bearer token (user.token) */
    char *token_file; /* bearer token file (user.tokenFile, or the
                         service-account token), absolute path; the
                         client re-reads it as it rotates */
};

/**
 * Parses kubeconfig text[0..len). dir is the directory relative paths in it
 * resolve against (the file's own directory; NULL means the current
 * directory). context selects a context by name; NULL or "" means the file's
 * current-context. On success stores a new struct in *out (free it with
 * kubeconfig_free) and returns 0. Errors, each with a one-line message in
 * *err (caller frees): -EINVAL for bad YAML, a missing or unknown context,
 * cluster or user, a missing server, bad base64 in a -data field, or a refused
 * setting (insecure-skip-tls-verify: true, exec, auth-provider, username/
 * password); -EPROTONOSUPPORT for a server that is not https://. Files named
 * in the config are not opened here (see kubeconfig_load for tokenFile).
 */
int kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                     struct kubeconfig **out, char **err);

/**
 * Reads and parses the kubeconfig at path (see kubeconfig_parse); relative
 * paths in it resolve against path's directory. Returns 0, or -errno from
 * reading the file (message in *err names the file), or kubeconfig_parse's
 * errors. The caller frees *out and *err.
 */
int kubeconfig_load(const char *path, const char *context, struct kubeconfig **out, char **err);

/**
 * The in-cluster configuration: server from $KUBERNETES_SERVICE_HOST and
 * $KUBERNETES_SERVICE_PORT (IPv6 hosts bracketed), token_file, ca_file and the
 * namespace from sa_dir (NULL means KUBECONFIG_SA_DIR). Returns 0; -ENOENT
 * when the environment variables or the token file are absent (not running in
 * a pod), with *err set. The caller frees *out and *err.
 */
int kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig **out, char **err);

/**
 * The standard lookup, as kubectl does it: flag_path (--kubeconfig) if not
 * NULL/""; else $KUBECONFIG (the first existing file of a ':'-separated list;
 * lists are not merged); else in-cluster; else ~/.kube/config. context is
 * --context (NULL/"" = current-context; ignored in-cluster). Returns 0 or the
 * error of the source chosen; -ENOENT with *err when nothing is found. The
 * caller frees *out and *err.
 */
int kubeconfig_resolve(const char *flag_path, const char *context, struct kubeconfig **out,
                       char **err);

/**
 * Decodes standard base64 (RFC 4648, '=' padding, whitespace and newlines
 * ignored) into a new buffer *out of *out_len bytes (NUL-terminated for
 * convenience, not counted). Returns 0, or -EINVAL on any other character or
 * bad padding (*out untouched). The caller frees *out.
 */
int kubeconfig_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

/** A deep copy of c (NULL gives NULL). The caller frees it. */
struct kubeconfig *kubeconfig_dup(const struct kubeconfig *c);

/** Frees c and everything it owns, wiping key and token bytes. NULL is fine. */
void kubeconfig_free(struct kubeconfig *c);

#endif
