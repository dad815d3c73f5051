/*
 * Tests for watch: the line splitter, event application, lists and relists
 * on a hand-fed reflector.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "watch.h"
#include "xalloc.h"

/* ---- the line splitter ---------------------------------------------- */

struct lines_seen {
    struct buf all; /* every line, each followed by '|' */
    int n;          /* lines received */
    int dropped;    /* NULL lines (over-long) */
    int stop_after; /* return 1 after this many lines; 0: never */
};

static int collect_line(void *ud, const char *line, size_t len)
{
    struct lines_seen *s = ud;

    if (line == NULL) {
        s->dropped++;
        return 0;
    }
    if (strlen(line) != len)
        return -100; /* not NUL-terminated at len */
    buf_append(&s->all, line, len);
    buf_puts(&s->all, "|");
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

/* Every way to cut the stream into two or three chunks gives the same lines,
 * each exactly once, without its "\r\n". */
TEST(lines_same_result_for_every_chunking)
{
    const char *stream = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":\"x\\ny\"}\n{\"d\"";
    size_t n = strlen(stream);

    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct watch_lines l = {0};
            struct lines_seen s = {0};
            CHECK_INT(watch__lines_feed(&l, stream, i, collect_line, &s), 0);
            CHECK_INT(watch__lines_feed(&l, stream + i, j - i, collect_line, &s), 0);
            CHECK_INT(watch__lines_feed(&l, stream + j, n - j, collect_line, &s), 0);
            CHECK_INT(s.n, 3);
            CHECK_STR(s.all.data, "{\"a\":1}|{\"b\":2}|{\"c\":\"x\\ny\"}|");
            CHECK_STR(l.pending.data, "{\"d\"");
            buf_free(&s.all);
            watch__lines_free(&l);
        }
    }
}

/* One byte at a time works too, and a long line split over many chunks is
 * delivered once. */
TEST(lines_byte_by_byte)
{
    struct watch_lines l = {0};
    struct lines_seen s = {0};
    struct buf big = {0};

    for (int i = 0; i < 5000; i++)
        buf_puts(&big, "x");
    buf_puts(&big, "\nend\n");
    for (size_t i = 0; i < big.len; i++)
        CHECK_INT(watch__lines_feed(&l, big.data + i, 1, collect_line, &s), 0);
    CHECK_INT(s.n, 2);
    CHECK_INT(s.all.len, 5000 + 1 + 4);
    CHECK_INT(l.pending.len, 0);
    buf_free(&s.all);
    buf_free(&big);
    watch__lines_free(&l);
}

/* An over-long line is reported once as NULL and skipped up to its '\n',
 * whether it arrives whole or in pieces; the next line is intact. */
TEST(lines_overlong_dropped)
{
    for (int whole = 0; whole < 2; whole++) {
        struct watch_lines l = {.max_line = 8};
        struct lines_seen s = {0};
        const char *data = "0123456789abcdef\nok\n";
        if (whole) {
            CHECK_INT(watch__lines_feed(&l, data, strlen(data), collect_line, &s), 0);
        } else {
            for (size_t i = 0; i < strlen(data); i += 3) {
                size_t n = strlen(data) - i < 3 ? strlen(data) - i : 3;
                CHECK_INT(watch__lines_feed(&l, data + i, n, collect_line, &s), 0);
            }
        }
        CHECK_INT(s.dropped, 1);
        CHECK_INT(s.n, 1);
        CHECK_STR(s.all.data, "ok|");
        buf_free(&s.all);
        watch__lines_free(&l);
    }
}

/* A nonzero return stops the feed; the remaining lines stay buffered and
 * come out on the next call. */
TEST(lines_stop_keeps_rest)
{
    struct watch_lines l = {0};
    struct lines_seen s = {.stop_after = 1};

    CHECK_INT(watch__lines_feed(&l, "a\nb\nc", 5, collect_line, &s), 1);
    CHECK_STR(s.all.data, "a|");
    s.stop_after = 0;
    CHECK_INT(watch__lines_feed(&l, "\n", 1, collect_line, &s), 0);
    CHECK_STR(s.all.data, "a|b|c|");
    watch__lines_reset(&l);
    CHECK_INT(l.pending.len, 0);
    buf_free(&s.all);
    watch__lines_free(&l);
}

/* ---- events on a hand-fed reflector --------------------------------- */

/* What the handlers saw, as "add:ns/name@rv " etc. */
struct seen {
    struct buf log;
    int synced;
};

static void seen_put(struct seen *s, const char *what, const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(md, "name");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");

    buf_printf(&s->log, "%s:%s/%s@%s ", what, cJSON_IsString(ns) ? ns->valuestring : "",
               cJSON_IsString(name) ? name->valuestring : "?",
               cJSON_IsString(rv) ? rv->valuestring : "?");
}

static void on_add(void *ud, const cJSON *obj)
{
    seen_put(ud, "add", obj);
}

static void on_update(void *ud, const cJSON *obj)
{
    seen_put(ud, "upd", obj);
}

static void on_delete(void *ud, const cJSON *obj, bool unknown)
{
    seen_put(ud, unknown ? "gone" : "del", obj);
}

static void on_synced(void *ud)
{
    struct seen *s = ud;

    s->synced++;
    buf_puts(&s->log, "synced ");
}

static struct watch *hand_fed(struct seen *s)
{
    struct watch_config cfg = {
        .res = {"", "v1", "configmaps"},
        .handlers = {on_add, on_update, on_delete, on_synced},
        .ud = s,
    };
    struct watch *w = NULL;

    memset(s, 0, sizeof(*s));
    if (watch_new(NULL, &cfg, &w) != 0)
        return NULL;
    return w;
}

static int apply(struct watch *w, const char *line)
{
    return watch__apply_line(w, line, strlen(line));
}

static const char *seen_take(struct seen *s)
{
    static char out[2048];

    snprintf(out, sizeof(out), "%s", s->log.data ? s->log.data : "");
    buf_reset(&s->log);
    return out;
}

#define EV(type, ns, name, uid, rv)                                                                \
    "{\"type\":\"" type "\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"namespace\":\"" ns  \
    "\",\"name\":\"" name "\",\"uid\":\"" uid "\",\"resourceVersion\":\"" rv "\"}}}"

TEST(watch_new_needs_version_and_resource)
{
    struct watch_config cfg = {.res = {"", NULL, "configmaps"}};
    struct watch *w = (struct watch *)1;

    CHECK_INT(watch_new(NULL, &cfg, &w), -EINVAL);
    CHECK(w == NULL);
    cfg.res.version = "v1";
    cfg.res.resource = "";
    CHECK_INT(watch_new(NULL, &cfg, &w), -EINVAL);
    cfg.res.resource = "configmaps";
    CHECK_INT(watch_new(NULL, &cfg, &w), 0);
    /* No client: it cannot run, only be fed by hand. */
    CHECK_INT(watch_start(w), -EINVAL);
    watch_free(w);
}

/* ADDED, MODIFIED and DELETED reach the handlers in order, each changes
 * the resume resourceVersion, and a repeated version is not delivered
 * twice. */
TEST(watch_events_in_order_once)
{
    struct seen s;
    struct watch *w = hand_fed(&s);
    struct watch_stats st;
    char *rv;

    CHECK(w != NULL);
    CHECK_INT(apply(w, EV("ADDED", "a", "x", "u1", "5")), 0);
    CHECK_INT(apply(w, EV("MODIFIED", "a", "x", "u1", "6")), 0);
    CHECK_INT(apply(w, EV("MODIFIED", "a", "x", "u1", "6")), 0); /* replayed */
    CHECK_INT(apply(w, EV("ADDED", "b", "x", "u2", "7")), 0);
    CHECK_INT(apply(w, EV("DELETED", "a", "x", "u1", "8")), 0);
    CHECK_INT(apply(w, EV("DELETED", "a", "never", "u9", "9")), 0); /* unknown */
    CHECK_STR(seen_take(&s), "add:a/x@5 upd:a/x@6 add:b/x@7 del:a/x@8 ");
    rv = watch_resource_version(w);
    CHECK_STR(rv, "9");
    free(rv);
    watch_get_stats(w, &st);
    CHECK_INT(st.events, 6);
    CHECK_INT(st.objects, 1);
    buf_free(&s.log);
    watch_free(w);
}

/* A new uid under a known key is a different object: the old one is
 * deleted (final state unknown, stub with its last version), the new one
 * added. */
TEST(watch_replaced_uid_is_delete_then_add)
{
    struct seen s;
    struct watch *w = hand_fed(&s);

    CHECK(w != NULL);
    CHECK_INT(apply(w, EV("ADDED", "a", "x", "u1", "5")), 0);
    CHECK_INT(apply(w, EV("MODIFIED", "a", "x", "u2", "9")), 0);
    CHECK_STR(seen_take(&s), "add:a/x@5 gone:a/x@5 add:a/x@9 ");
    buf_free(&s.log);
    watch_free(w);
}

/* Bookmarks move the resume point and deliver nothing; ERROR 410 asks for a
 * relist, another ERROR for a re-watch; junk is counted and skipped. */
TEST(watch_bookmark_error_and_junk)
{
    struct seen s;
    struct watch *w = hand_fed(&s);
    struct watch_stats st;
    char *rv;

    CHECK(w != NULL);
    CHECK_INT(apply(w, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\","
                       "\"metadata\":{\"resourceVersion\":\"42\"}}}"),
              0);
    rv = watch_resource_version(w);
    CHECK_STR(rv, "42");
    free(rv);
    CHECK_INT(apply(w, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                       "\"reason\":\"Expired\",\"message\":\"too old resource version\"}}"),
              -ESTALE);
    CHECK_INT(apply(w, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
                       "\"reason\":\"InternalError\"}}"),
              -EAGAIN);
    CHECK_INT(apply(w, "not json"), -EBADMSG);
    CHECK_INT(apply(w, "{\"type\":\"ADDED\"}"), -EBADMSG);
    CHECK_INT(apply(w, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}"), -EBADMSG);
    CHECK_INT(apply(w, "{\"type\":\"RENAMED\",\"object\":{}}"), -EBADMSG);
    CHECK_INT(apply(w, "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}"), -EBADMSG);
    CHECK_STR(seen_take(&s), "");
    watch_get_stats(w, &st);
    CHECK_INT(st.bookmarks, 1);
    CHECK_INT(st.errors, 2);
    CHECK_INT(st.malformed, 5);
    CHECK_INT(st.events, 0);
    buf_free(&s.log);
    watch_free(w);
}

/* Loads a recorded List and applies it as one page. */
static int apply_fixture_page(struct watch *w, const char *name)
{
    struct buf b = {0};
    cJSON *page;
    int rc = buf_read_file(&b, harness_fixture(name), 1 << 20);

    if (rc < 0)
        return rc;
    page = cJSON_Parse(b.data);
    buf_free(&b);
    if (page == NULL)
        return -EBADMSG;
    rc = watch__list_page(w, page);
    cJSON_Delete(page);
    return rc;
}

/* The first list adds everything and then reports synced once; the list's
 * resourceVersion becomes the resume point only at the end. */
TEST(watch_first_list_then_synced)
{
    struct seen s;
    struct watch *w = hand_fed(&s);
    struct watch_stats st;
    char *rv;

    CHECK(w != NULL);
    watch__list_begin(w);
    CHECK_INT(apply_fixture_page(w, "watch-list-page1.json"), 0);
    CHECK(!watch_has_synced(w));
    rv = watch_resource_version(w);
    CHECK_STR(rv, "");
    free(rv);
    CHECK_INT(apply_fixture_page(w, "watch-list-page2.json"), 0);
    watch__list_end(w);
    CHECK(watch_has_synced(w));
    CHECK_INT(watch_wait_synced(w, 0), 0);
    CHECK_STR(seen_take(&s), "add:a/one@10 add:a/two@11 add:b/three@12 synced ");
    rv = watch_resource_version(w);
    CHECK_STR(rv, "100");
    free(rv);
    watch_get_stats(w, &st);
    CHECK_INT(st.lists, 1);
    CHECK_INT(st.relists, 0);
    CHECK_INT(st.objects, 3);
    buf_free(&s.log);
    watch_free(w);
}

/* A relist (after 410) reports only differences: a changed version is an
 * update, a vanished key a final-state-unknown delete, a new key an add,
 * an unchanged object nothing; synced is not repeated. */
TEST(watch_relist_reports_differences)
{
    struct seen s;
    struct watch *w = hand_fed(&s);
    struct watch_stats st;
    char *rv;

    CHECK(w != NULL);
    watch__list_begin(w);
    CHECK_INT(apply_fixture_page(w, "watch-list-page1.json"), 0);
    CHECK_INT(apply_fixture_page(w, "watch-list-page2.json"), 0);
    watch__list_end(w);
    seen_take(&s);
    watch__list_begin(w);
    CHECK_INT(apply_fixture_page(w, "watch-relist.json"), 0);
    watch__list_end(w);
    CHECK_STR(seen_take(&s), "upd:a/two@20 add:c/four@21 gone:b/three@12 ");
    rv = watch_resource_version(w);
    CHECK_STR(rv, "200");
    free(rv);
    watch_get_stats(w, &st);
    CHECK_INT(st.lists, 2);
    CHECK_INT(st.relists, 1);
    CHECK_INT(st.objects, 3);
    CHECK_INT(s.synced, 1);
    buf_free(&s.log);
    watch_free(w);
}

/* A page that is not a List is refused. */
TEST(watch_list_page_rejects_non_list)
{
    struct seen s;
    struct watch *w = hand_fed(&s);
    cJSON *o = cJSON_Parse("{\"kind\":\"Status\",\"code\":500}");

    CHECK(w != NULL);
    CHECK_INT(watch__list_page(w, o), -EBADMSG);
    cJSON_Delete(o);
    buf_free(&s.log);
    watch_free(w);
}

/* Waiting for sync on a reflector that never syncs times out. */
TEST(watch_wait_synced_times_out)
{
    struct seen s;
    struct watch *w = hand_fed(&s);

    CHECK(w != NULL);
    CHECK_INT(watch_wait_synced(w, 50), -ETIMEDOUT);
    watch_stop(w);
    CHECK_INT(watch_wait_synced(w, 50), -ECANCELED);
    buf_free(&s.log);
    watch_free(w);
}
