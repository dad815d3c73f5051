/*
 * The unit-test harness: registry, runner and the closing count line.
 * See harness.h. Tests run in registration order, in one process.
 */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>

#include "base/xalloc.h"

#define HARNESS_MAX 1024

static struct {
    const char *name;
    harness_fn fn;
} tests[HARNESS_MAX];
static int ntests;
static int current_failed;

void harness_register(const char *name, harness_fn fn)
{
    if (ntests == HARNESS_MAX) {
        fprintf(stderr, "harness: more than %d tests\n", HARNESS_MAX);
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    current_failed = 1;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

const char *harness_fixture(const char *name)
{
    static char path[4096];
    const char *dir = getenv("KVR_FIXTURES");

    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", name);
    return path;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;

    xalloc_init(); /* as both programs do: cJSON allocates through xmalloc */
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        current_failed = 0;
        tests[i].fn();
        printf("%s %s\n", current_failed ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
        if (current_failed)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
