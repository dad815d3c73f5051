/*
 * fuzz_check — what every fuzz target checks besides "no crash, no leak":
 * the invariants the parsers promise in their headers. A broken invariant
 * aborts with a message, so libFuzzer saves the input like a crash.
 */
#ifndef KVR_FUZZ_CHECK_H
#define KVR_FUZZ_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "sim/features.h"
#include "sim/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* cJSON allocates through xmalloc, as in both programs (xalloc.h), so that
 * the targets fuzz the code that runs. libFuzzer calls this once, before the
 * first input. Defined in this header because every target is one source
 * file that includes it once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xalloc_init();
    return 0;
}

/* Aborts with what broke when cond is false. */
#define FUZZ_ASSERT(cond, what)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant broken: %s (%s) at %s:%d\n", what, #cond, __FILE__,    \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An error result: rc < 0 with a non-empty one-line message; success: rc 0.
 * Frees the message. */
static inline void fuzz_check_result(int rc, char *err, const char *who)
{
    FUZZ_ASSERT(rc <= 0, who);
    if (rc < 0) {
        FUZZ_ASSERT(err != NULL && *err, "an error comes with a message");
        if (strpbrk(err, "\n\r"))
            fprintf(stderr, "%s: message over several lines: %s\n", who, err);
        FUZZ_ASSERT(strpbrk(err, "\n\r") == NULL, "an error message is one line");
    }
    free(err);
}

/* Normalised: no leading or trailing ASCII space, no ASCII upper case. */
static inline int fuzz_normalised(const char *s)
{
    size_t n = strlen(s);

    if (!n || strchr(" \t\n\r\f\v", s[0]) || strchr(" \t\n\r\f\v", s[n - 1]))
        return 0;
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return 0;
    return 1;
}

/* A parsed feature set as features.h describes it. */
static inline void fuzz_check_features(const struct features *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct features_item *it = &f->items[i];

        FUZZ_ASSERT(fuzz_normalised(it->category), "categories are trimmed and lower-case");
        FUZZ_ASSERT(fuzz_normalised(it->value), "values are trimmed and lower-case");
        FUZZ_ASSERT(features_res_lookup(it->category) < 0, "cpu, memory, disk are not categories");
        if (i) {
            int c = strcmp(f->items[i - 1].category, it->category);

            FUZZ_ASSERT(c < 0 || (c == 0 && strcmp(f->items[i - 1].value, it->value) < 0),
                        "items sorted by (category, value) without duplicates");
        }
    }
    for (int r = 0; r < FEATURES_NRES; r++)
        if (f->has_res & (1u << r))
            FUZZ_ASSERT(isfinite(f->res[r]) && f->res[r] >= 0, "resources are finite and >= 0");
}

/* A validated policy as policy.h describes it. */
static inline void fuzz_check_policy(const struct policy *p)
{
    FUZZ_ASSERT(p->threshold >= 0 && p->threshold <= 1, "threshold in [0, 1]");
    for (size_t i = 0; i < p->nweights; i++)
        FUZZ_ASSERT(isfinite(p->weights[i].weight) && p->weights[i].weight >= 0,
                    "weights finite and >= 0");
    FUZZ_ASSERT(p->mode == POLICY_JACCARD || p->mode == POLICY_COVERAGE, "known mode");
    FUZZ_ASSERT(p->action == POLICY_RECREATE || p->action == POLICY_DRYRUN, "known action");
}

#endif
