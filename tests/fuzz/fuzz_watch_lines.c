/*
 * fuzz_watch_lines — the watch stream as it arrives from the API server:
 * bytes cut into chunks at arbitrary places, split into lines by
 * watch__lines_feed(), each line applied to a reflector (watch__apply_line)
 * that has no client, as the controller's reflector thread would.
 *
 * Input: byte 0 picks the longest line (1..128 bytes, or WATCH_MAX_LINE),
 * byte 1 seeds the chunk sizes, byte 2 which callback calls ask to stop;
 * the rest is the stream. Checks the splitter against a plain model of the
 * documented behaviour: every '\n'-terminated line exactly once, in order,
 * without its '\n' or one trailing '\r', empty lines skipped, a line longer
 * than the limit reported once as (NULL, 0) — also when its end never comes
 * — whatever the chunk boundaries and however often the callback stops it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "fuzz_check.h"
#include "kube/watch.h"
#include "kube/watch_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One line as the splitter reported it. */
struct fuzz_line {
    const char *p; /* NULL for a dropped over-long line */
    size_t len;
};

struct fuzz_state {
    struct fuzz_line *got; /* what the callback received, copies */
    size_t ngot, cap;
    unsigned stop_mask; /* stop when (call number & mask) == mask */
    unsigned calls;
    struct watch *w; /* the reflector each line is applied to */
};

static int fuzz_on_line(void *ud, const char *line, size_t len)
{
    struct fuzz_state *st = ud;

    if (st->ngot == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->got = xreallocarray(st->got, st->cap, sizeof(*st->got));
    }
    FUZZ_ASSERT(line == NULL ? len == 0 : line[len] == '\0', "lines are NUL-terminated");
    st->got[st->ngot].p = NULL;
    if (line) {
        /* a copy by length: a line may hold NUL bytes */
        char *copy = xmalloc(len + 1);

        memcpy(copy, line, len + 1);
        st->got[st->ngot].p = copy;
        (void)watch__apply_line(st->w, line, len);
    }
    st->got[st->ngot].len = len;
    st->ngot++;
    st->calls++;
    return st->stop_mask && (st->calls & st->stop_mask) == st->stop_mask ? 1 : 0;
}

/* What the splitter must report for stream[0..n) with lines up to max. */
static struct fuzz_line *fuzz_model(const char *s, size_t n, size_t max, size_t *count)
{
    struct fuzz_line *want = xcalloc(n + 1, sizeof(*want));
    size_t k = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        size_t len;

        if (i < n && s[i] != '\n')
            continue;
        len = i - start;
        if (i == n) {
            /* no '\n' yet: only an over-long tail is reported, at once */
            if (len > max)
                want[k++] = (struct fuzz_line){NULL, 0};
            break;
        }
        if (len > max) {
            want[k++] = (struct fuzz_line){NULL, 0};
        } else {
            if (len && s[start + len - 1] == '\r')
                len--;
            if (len)
                want[k++] = (struct fuzz_line){s + start, len};
        }
        start = i + 1;
    }
    *count = k;
    return want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct watch_config cfg = {
        .res = {.group = "kubevirt.io", .version = "v1", .resource = "virtualmachineinstances"}};
    struct watch_lines l = {0};
    struct fuzz_state st = {0};
    struct fuzz_line *want;
    const char *s;
    size_t n, max, nwant, off = 0;
    uint32_t rng;

    if (size < 3)
        return 0;
    log_set_level(LOG_LVL_ERROR); /* malformed events are logged as warnings */
    max = data[0] == 255 ? WATCH_MAX_LINE : 1u + data[0] % 128u;
    l.max_line = data[0] == 255 ? 0 : max;
    rng = 0x9e3779b9u ^ data[1];
    st.stop_mask = data[2] % 8u; /* 0: never stop */
    s = (const char *)data + 3;
    n = size - 3;
    FUZZ_ASSERT(watch_new(NULL, &cfg, &st.w) == 0, "a reflector without a client");

    while (off < n) {
        size_t chunk;

        rng = rng * 1103515245u + 12345u;
        chunk = 1 + (rng >> 16) % 64u;
        if (chunk > n - off)
            chunk = n - off;
        /* a stop leaves lines buffered: feeding nothing delivers them */
        if (watch__lines_feed(&l, s + off, chunk, fuzz_on_line, &st))
            while (watch__lines_feed(&l, NULL, 0, fuzz_on_line, &st))
                ;
        off += chunk;
    }

    want = fuzz_model(s, n, max, &nwant);
    FUZZ_ASSERT(st.ngot == nwant, "as many lines as the model");
    for (size_t i = 0; i < nwant; i++) {
        FUZZ_ASSERT((st.got[i].p == NULL) == (want[i].p == NULL), "over-long lines dropped");
        FUZZ_ASSERT(st.got[i].len == want[i].len &&
                        (!want[i].p || memcmp(st.got[i].p, want[i].p, want[i].len) == 0),
                    "the same lines as the model");
    }

    watch__lines_reset(&l);
    watch__lines_free(&l);
    watch_free(st.w);
    for (size_t i = 0; i < st.ngot; i++)
        free((char *)st.got[i].p);
    free(st.got);
    free(want);
    return 0;
}
