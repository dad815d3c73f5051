/*
 * xalloc: allocation failure aborts with one line on stderr, for our own
 * allocations and, after xalloc_init() (the harness calls it, as both
 * programs do), for cJSON's.
 */
#include "harness.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/xalloc.h"

/* What a child running fn() did: its wait status and the start of what it
 * wrote on stderr. */
struct child {
    int status;
    char err[256];
};

static struct child in_child(void (*fn)(void))
{
    struct child c = {-1, ""};
    int fds[2];
    ssize_t n;
    pid_t pid;

    fflush(NULL);
    if (pipe(fds) != 0)
        return c;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        _exit(0);
    }
    close(fds[1]);
    n = read(fds[0], c.err, sizeof(c.err) - 1);
    c.err[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, &c.status, 0);
    return c;
}

/* An allocation no machine can give: malloc() returns NULL (sanitizers may
 * report it themselves). */
#define XALLOC_TEST_HUGE ((size_t)1 << 62)

static void cjson_alloc_huge(void)
{
    /* before xalloc_init() this came back NULL, and callers dropped the node */
    if (cJSON_malloc(XALLOC_TEST_HUGE) == NULL)
        _exit(7);
}

static void xmalloc_huge(void)
{
    if (xmalloc(XALLOC_TEST_HUGE) == NULL)
        _exit(7);
}

static int aborted_with_one_line(const struct child *c)
{
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reports the impossible size itself and exits */
    return c->status != -1 && !(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 7) &&
           !(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0);
#else
    return WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGABRT &&
           strstr(c->err, "kvrecover: out of memory allocating 4611686018427387904 bytes\n");
#endif
}

TEST(xalloc_failure_aborts_with_one_line)
{
    struct child c = in_child(xmalloc_huge);

    CHECK(aborted_with_one_line(&c));
}

TEST(xalloc_init_makes_cjson_allocate_through_xmalloc)
{
    struct child c;

    xalloc_init(); /* again: harmless */
    c = in_child(cjson_alloc_huge);
    CHECK(!(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 7));
    CHECK(aborted_with_one_line(&c));
}

TEST(xcjson_print_prints_unformatted)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    cJSON_AddNumberToObject(o, "a", 1);
    cJSON_AddStringToObject(o, "b", "x");
    s = xcjson_print(o);
    CHECK_STR(s, "{\"a\":1,\"b\":\"x\"}");
    free(s);
    cJSON_Delete(o);
}
