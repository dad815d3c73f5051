/*
 * fuzz_kubeconfig — kubeconfig files: kubeconfig_parse() on untrusted YAML
 * with the current context or one named by the input's first byte, a deep
 * copy of what it gives, and kubeconfig_base64_decode() on the raw bytes.
 *
 * Checks: errors are one-line messages; a parsed config has an https://
 * server without a trailing '/'; the copy equals the original.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kube/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const contexts[] = {NULL, "", "kind", "prod", "dev"};
    const char *context = contexts[size ? data[0] % 5 : 0];
    struct kubeconfig *c = NULL, *d;
    unsigned char *bytes = NULL;
    size_t nbytes = 0;
    char *err = NULL;
    int rc;

    rc = kubeconfig_parse((const char *)data, size, "/nonexistent/kvrecover-fuzz", context, &c,
                          &err);
    FUZZ_ASSERT(rc <= 0, "kubeconfig_parse result");
    if (rc < 0) {
        FUZZ_ASSERT(err != NULL && *err, "an error comes with a message");
        FUZZ_ASSERT(strpbrk(err, "\n\r") == NULL, "an error message is one line");
    }
    free(err);
    if (rc == 0) {
        size_t n;

        FUZZ_ASSERT(c && c->server && strncmp(c->server, "https://", 8) == 0,
                    "the server is https://");
        n = strlen(c->server);
        FUZZ_ASSERT(c->server[n - 1] != '/', "no trailing '/' on the server");
        d = kubeconfig_dup(c);
        FUZZ_ASSERT(fuzz_same(c->server, d->server) && fuzz_same(c->token, d->token) &&
                        fuzz_same(c->namespace, d->namespace) && c->ca_len == d->ca_len &&
                        (!c->ca_len || memcmp(c->ca_data, d->ca_data, c->ca_len) == 0),
                    "kubeconfig_dup copies");
        kubeconfig_free(d);
    }
    kubeconfig_free(c);

    if (kubeconfig_base64_decode((const char *)data, size, &bytes, &nbytes) == 0) {
        FUZZ_ASSERT(nbytes <= size, "base64 never grows");
        FUZZ_ASSERT(bytes[nbytes] == '\0', "decoded bytes are NUL-terminated");
        free(bytes);
    }
    return 0;
}
