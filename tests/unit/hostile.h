/*
 * hostile — what the parsers' tests share about hostile input (issue 12):
 * the string bomb and the fat annotation, built in memory, and a way to
 * measure the memory a parse takes.
 *
 * Peak memory is measured in a child process: getrusage()'s ru_maxrss is a
 * high-water mark, so in the test process an earlier test's peak would hide
 * this one's. A forked child starts with its high-water mark at its current
 * size; what it grows by is the parse's own. The child also runs under an
 * address-space limit (when no sanitizer reserves address space of its own),
 * so that a parser that regresses into building the bomb dies in its child
 * instead of taking the machine with it.
 */
#ifndef KVR_HOSTILE_H
#define KVR_HOSTILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"

/* The child's address space may grow by this much before it is refused. */
#define HOSTILE_AS_HEADROOM ((rlim_t)1 << 30)

/* A string bomb as YAML text: one string of len bytes, anchored, then n
 * aliases of it in a flow list ("s: &s AAA...\nt: [*s, *s, ...]\n"): about
 * len + 4n bytes of text, n * len once expanded, and only n + 4 nodes. */
static inline void hostile_string_bomb(struct buf *b, size_t len, size_t n)
{
    char *s = malloc(len + 1);

    memset(s, 'A', len);
    s[len] = '\0';
    buf_printf(b, "s: &s %s\nt: [", s);
    for (size_t i = 0; i < n; i++)
        buf_puts(b, i ? ", *s" : "*s");
    buf_puts(b, "]\n");
    free(s);
}

/* A fat features text, without aliases: ncat categories of nval values each,
 * every value vlen bytes, in flow style ("{c0: [v0-xx.., ...], c1: ...}"). */
static inline void hostile_features(struct buf *b, size_t ncat, size_t nval, size_t vlen)
{
    buf_puts(b, "{");
    for (size_t c = 0; c < ncat; c++) {
        buf_printf(b, "%sc%zu: [", c ? ", " : "", c);
        for (size_t v = 0; v < nval; v++) {
            int head = snprintf(NULL, 0, "v%zu-", v);

            buf_printf(b, "%sv%zu-", v ? ", " : "", v);
            for (size_t k = (size_t)head; k < vlen; k++)
                buf_puts(b, "x");
        }
        buf_puts(b, "]");
    }
    buf_puts(b, "}");
}

/* The fat annotation, total bytes of features text: a list of
 * 1,000 values of 90 bytes, anchored, and as many categories aliasing it as
 * fit (at 100 KB, 795 of them: 795,000 items). */
static inline void hostile_fat_annotation(struct buf *b, size_t total)
{
    size_t start = b->len;

    buf_puts(b, "{os: ubuntu-20.04, all: &v [");
    for (int i = 0; i < 1000; i++)
        buf_printf(b, "%sv%03d-%085d", i ? ", " : "", i, 0);
    buf_puts(b, "]");
    for (int i = 0; b->len - start + 12 < total; i++)
        buf_printf(b, ", c%03d: *v", i);
    buf_puts(b, "}");
    while (b->len - start < total)
        buf_puts(b, " ");
}

/* The result of hostile_measure(). */
struct hostile_run {
    int exited;   /* 1 when the child returned normally (not killed, not aborted) */
    int status;   /* what fn returned, when it did */
    long grew_kb; /* how far the child's peak RSS rose during fn, in KiB */
};

static inline long hostile__maxrss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The child's current address-space size, in bytes; 0 when unknown. */
static inline rlim_t hostile__vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    fclose(f);
    return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

/* Runs fn(arg) in a child process and reports whether it finished, what it
 * returned and how much its peak RSS grew. fn must free what it allocates. */
static inline struct hostile_run hostile_measure(int (*fn)(void *), void *arg)
{
    struct hostile_run r = {0, -1, -1};
    long msg[2] = {-1, -1};
    int fds[2], wst;
    pid_t pid;

    fflush(NULL);
    if (pipe(fds) != 0)
        return r;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return r;
    }
    if (pid == 0) {
        rlim_t vm = hostile__vm_bytes();
        long before;

        close(fds[0]);
#if !defined(__SANITIZE_ADDRESS__)
        if (vm) {
            struct rlimit lim = {vm + HOSTILE_AS_HEADROOM, vm + HOSTILE_AS_HEADROOM};

            setrlimit(RLIMIT_AS, &lim);
        }
#else
        (void)vm;
#endif
        before = hostile__maxrss_kb();
        msg[0] = fn(arg);
        msg[1] = hostile__maxrss_kb() - before;
        if (write(fds[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
        r.status = (int)msg[0];
        r.grew_kb = msg[1];
    }
    close(fds[0]);
    if (waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
        r.exited = r.grew_kb >= 0;
    return r;
}

/* 1 when fn(arg), run by hostile_measure(), finished, returned 0 and grew
 * the child's peak RSS by less than max_kb KiB; else 0, with what it found
 * on stderr. */
static inline int hostile_bounded(int (*fn)(void *), void *arg, long max_kb)
{
    struct hostile_run r = hostile_measure(fn, arg);

#if defined(__SANITIZE_ADDRESS__)
    /* ASan keeps freed blocks in its quarantine (RSS) and pads each one:
     * a parse that stays within its budget peaks above it (test_yaml's
     * alias budget measured 87 MiB against 80 built for it) */
    max_kb += max_kb / 4;
#endif
    if (r.exited && r.status == 0 && r.grew_kb < max_kb)
        return 1;
    fprintf(stderr, "hostile: exited %d, returned %d, peak RSS grew %ld KiB (at most %ld)\n",
            r.exited, r.status, r.grew_kb, max_kb);
    return 0;
}

#endif
