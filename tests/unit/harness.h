/*
 * A small unit-test harness.
 *
 * A test is a function declared with TEST(name); it registers itself before
 * main() runs, so a test file is nothing but its tests. The harness runs them
 * all (or those whose name contains argv[1]), prints "ok"/"FAIL" per test and
 * ends with the line "N passed, N failed", which tests/run adds up.
 *
 * A failed CHECK records the failure and returns from the test at once: later
 * lines of a test may rely on earlier checks having held.
 */
#ifndef KVR_HARNESS_H
#define KVR_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*harness_fn)(void);

/** Registers a test; called by TEST()'s constructor, never by hand. */
void harness_register(const char *name, harness_fn fn);

/** Records a failed check of the running test (file, line, message). */
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void name##__register(void)                                \
    {                                                                                              \
        harness_register(#name, name);                                                             \
    }                                                                                              \
    static void name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_fail(__FILE__, __LINE__, "%s", #cond);                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a__ = (long long)(a), b__ = (long long)(b);                                      \
        if (a__ != b__) {                                                                          \
            harness_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a__, b__);          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, eps)                                                                      \
    do {                                                                                           \
        double a__ = (double)(a), b__ = (double)(b);                                               \
        if (!(fabs(a__ - b__) <= (eps))) {                                                         \
            harness_fail(__FILE__, __LINE__, "%s ~ %s: %.9g != %.9g", #a, #b, a__, b__);           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a__ = (a), *b__ = (b);                                                         \
        if (a__ == NULL || b__ == NULL || strcmp(a__, b__) != 0) {                                 \
            harness_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
                         a__ ? a__ : "(null)", b__ ? b__ : "(null)");                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Path of a file under tests/fixtures/, resolved from $KVR_FIXTURES or the
 * source tree. Returns a static buffer: copy it before the next call. */
const char *harness_fixture(const char *name);

#endif
