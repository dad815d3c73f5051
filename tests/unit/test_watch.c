/*
 * Tests for watch: the line splitter, event application, lists and relists
 * on a hand-fed reflector.
 */
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/watch.h"
#include "kube/watch_test.h"

/* ---- the key table ---------------------------------------------------- */

static char *key_of(int i)
{
    return xasprintf("ns-%d/vm-%05d", i % 7, i);
}

/* Every key in [0, n) is found exactly when present[i], and the table's
 * count and dense array agree. */
static int keys_consistent(const struct watch_keys *t, int n, const unsigned char *present)
{
    uint32_t count = 0;

    for (int i = 0; i < n; i++) {
        char *k = key_of(i);
        struct watch_obj *o = watch__keys_find(t, k);
        int ok = present[i] ? (o != NULL && strcmp(watch__obj_key(o), k) == 0) : o == NULL;
        free(k);
        if (!ok)
            return 0;
        count += present[i];
    }
    for (uint32_t i = 0; i < t->n; i++) {
        if (watch__keys_find(t, watch__obj_key(t->objs[i])) != t->objs[i])
            return 0;
    }
    return count == t->n;
}

static void keys_add(struct watch_keys *t, int i)
{
    char *k = key_of(i);

    watch__keys_add(t, watch__obj_new(k, "0b9f6a52-5b8e-4a3f-9c7e-2f1d8f3c1a00", "42"));
    free(k);
}

static void keys_del(struct watch_keys *t, int i)
{
    char *k = key_of(i);
    struct watch_obj *o = watch__keys_find(t, k);

    watch__keys_del(t, o);
    watch__obj_free(o);
    free(k);
}

/* Adds, finds and deletes through growing and shrinking: every key added
 * is found, every key deleted is not, the slots grow at 3/4 and shrink
 * when mostly empty. */
static void keys_exercise(struct watch_keys *t, int N)
{
    unsigned char *present = xcalloc((size_t)N, 1);
    uint32_t grown;

    CHECK(watch__keys_find(t, "ns-0/vm-00000") == NULL); /* empty, no slots yet */
    for (int i = 0; i < N; i++) {
        keys_add(t, i);
        present[i] = 1;
    }
    CHECK_INT((long)t->n, N);
    CHECK((uint64_t)t->n * 4 <= ((uint64_t)t->mask + 1) * 3);
    CHECK(keys_consistent(t, N, present));
    grown = t->mask + 1;
    /* every third key goes, then every key but one in ten */
    for (int i = 0; i < N; i += 3) {
        keys_del(t, i);
        present[i] = 0;
    }
    CHECK(keys_consistent(t, N, present));
    for (int i = 0; i < N; i++) {
        if (present[i] && i % 10 != 1) {
            keys_del(t, i);
            present[i] = 0;
        }
    }
    CHECK(keys_consistent(t, N, present));
    CHECK(t->mask + 1 < grown); /* mostly empty: shrunk */
    /* and back */
    for (int i = 0; i < N; i += 2) {
        if (!present[i]) {
            keys_add(t, i);
            present[i] = 1;
        }
    }
    CHECK(keys_consistent(t, N, present));
    watch__keys_clear(t);
    CHECK_INT((long)t->n, 0);
    CHECK(watch__keys_find(t, "ns-1/vm-00001") == NULL);
    free(present);
}

TEST(watch_keys_add_find_delete_grow_shrink)
{
    struct watch_keys t = {.seed = 12345};

    keys_exercise(&t, 5000);
}

/* Every key hashing to one value: one probe run holds them all, and
 * deletes from its middle keep the rest findable. */
static uint64_t hash_constant(uint64_t seed, const char *key)
{
    (void)seed;
    (void)key;
    return 0x1234567800000005ull;
}

/* Keys in two homes that probe into each other. */
static uint64_t hash_two(uint64_t seed, const char *key)
{
    (void)seed;
    return key[strlen(key) - 1] % 2 ? 0xabcd000000000003ull : 0xabcd000000000004ull;
}

TEST(watch_keys_survive_collisions)
{
    struct watch_keys t = {.hash = hash_constant};
    struct watch_keys u = {.hash = hash_two};

    keys_exercise(&t, 600);
    keys_exercise(&u, 600);
}

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

/* What the handlers saw, as "add:ns/name@rv " etc. The reflector thread
 * writes while the test reads. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

struct seen {
    struct buf log;
    int synced;
    char deleted_uid[64]; /* uid of the last object deleted */
};

static void seen_put(struct seen *s, const char *what, const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(md, "name");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");

    pthread_mutex_lock(&seen_lock);
    buf_printf(&s->log, "%s:%s/%s@%s ", what, cJSON_IsString(ns) ? ns->valuestring : "",
               cJSON_IsString(name) ? name->valuestring : "?",
               cJSON_IsString(rv) ? rv->valuestring : "?");
    pthread_mutex_unlock(&seen_lock);
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
    struct seen *s = ud;
    const cJSON *uid =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "uid");

    seen_put(ud, unknown ? "gone" : "del", obj);
    pthread_mutex_lock(&seen_lock);
    snprintf(s->deleted_uid, sizeof(s->deleted_uid), "%s",
             cJSON_IsString(uid) ? uid->valuestring : "");
    pthread_mutex_unlock(&seen_lock);
}

static void on_synced(void *ud)
{
    struct seen *s = ud;

    pthread_mutex_lock(&seen_lock);
    s->synced++;
    buf_puts(&s->log, "synced ");
    pthread_mutex_unlock(&seen_lock);
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

    pthread_mutex_lock(&seen_lock);
    snprintf(out, sizeof(out), "%s", s->log.data ? s->log.data : "");
    buf_reset(&s->log);
    pthread_mutex_unlock(&seen_lock);
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

/* The table keeps canonical UUIDs and decimal resourceVersions packed and
 * anything else verbatim: either way the stub of a delete carries them
 * exactly as the server wrote them, and comparisons see through packing. */
TEST(watch_stub_round_trips_uid_and_rv)
{
    static const char *const ids[][2] = {
        {"6b1f0c1e-9a2b-4c3d-8e4f-0123456789ab", "18446744073709551615"}, /* packed, max */
        {"6B1F0C1E-9A2B-4C3D-8E4F-0123456789AB", "007"},                  /* verbatim */
        {"not-a-uuid", "rv-opaque"},
        {"6b1f0c1e-9a2b-4c3d-8e4f-0123456789a", "18446744073709551616"}, /* 35; overflow */
    };

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct seen s;
        struct watch *w = hand_fed(&s);
        char line[512], want[256];

        CHECK(w != NULL);
        snprintf(line, sizeof(line),
                 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"n\","
                 "\"name\":\"x\",\"uid\":\"%s\",\"resourceVersion\":\"%s\"}}}",
                 ids[i][0], ids[i][1]);
        CHECK_INT(apply(w, line), 0);
        /* The same version again is recognised as nothing new. */
        CHECK_INT(apply(w, line), 0);
        /* A replacement (another uid) reports the old one as it was. */
        CHECK_INT(apply(w, EV("ADDED", "n", "x", "u-new", "9")), 0);
        snprintf(want, sizeof(want), "add:n/x@%s gone:n/x@%s add:n/x@9 ", ids[i][1], ids[i][1]);
        CHECK_STR(seen_take(&s), want);
        CHECK_STR(s.deleted_uid, ids[i][0]);
        buf_free(&s.log);
        watch_free(w);
    }
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

/* ---- the reflector thread against fakeapi --------------------------- */

/* One watch answer: a status, and for 200 a body sent in pieces of the
 * sizes in cuts (0-terminated; NULL: one piece) before the stream ends. */
struct wstep {
    int status;       /* 200, or an error answered with a Status */
    const char *text; /* the stream */
    const int *cuts;  /* piece sizes */
};

/* A small API server for one collection. Lists answer from gen0 for the
 * first list and gen1 for every later one, page N for "continue=tokN";
 * watches follow steps, and past the last step hold open silently. */
struct api {
    pthread_mutex_t lock;
    const char *const *gen0; /* fixture names of the first list's pages */
    const char *const *gen1; /* pages of later lists */
    int list_failures;       /* the first N list requests answer 500 */
    int expire_continue;     /* the first N continued pages answer 410 */
    bool list_hold;          /* lists never answer (until the client leaves) */
    const struct wstep *steps;
    int n_steps;
    int lists;   /* list requests without continue so far */
    int lists_n; /* list requests so far */
    int watches; /* watch requests so far */
};

static void api_status(struct fake_conn *c, int code, const char *reason)
{
    char body[256];

    snprintf(body, sizeof(body),
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":%d,"
             "\"reason\":\"%s\",\"message\":\"scripted\"}",
             code, reason);
    fake_reply(c, code, NULL, body);
}

static void api_list(struct api *a, const struct fake_req *req, struct fake_conn *c)
{
    const char *cont = strstr(req->path, "continue=tok");
    int page = cont ? (int)strtol(cont + strlen("continue=tok"), NULL, 10) : 0;
    const char *const *pages;
    struct buf b = {0};
    bool fail;

    bool expired = false;

    if (a->list_hold) {
        fake_stream_wait(c, 20000);
        fake_close(c);
        return;
    }
    pthread_mutex_lock(&a->lock);
    fail = a->lists_n++ < a->list_failures;
    if (!fail && cont && a->expire_continue > 0) {
        a->expire_continue--;
        expired = true;
    }
    if (!fail && cont == NULL)
        a->lists++;
    pages = a->lists <= 1 ? a->gen0 : a->gen1;
    pthread_mutex_unlock(&a->lock);
    if (fail || expired) {
        api_status(c, expired ? 410 : 500, expired ? "Expired" : "InternalError");
        return;
    }
    if (buf_read_file(&b, harness_fixture(pages[page]), 1 << 20) < 0) {
        api_status(c, 404, "NotFound");
        return;
    }
    fake_reply(c, 200, NULL, b.data);
    buf_free(&b);
}

static void api_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct api *a = ud;
    const struct wstep *st = NULL;
    size_t off = 0, n;

    if (strstr(req->path, "watch=true") == NULL) {
        api_list(a, req, c);
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (a->watches < a->n_steps)
        st = &a->steps[a->watches];
    a->watches++;
    pthread_mutex_unlock(&a->lock);
    if (st && st->status != 200) {
        api_status(c, st->status, st->status == 410 ? "Expired" : "InternalError");
        return;
    }
    fake_stream_begin(c);
    if (st == NULL) {
        fake_stream_wait(c, 20000);
        fake_close(c);
        return;
    }
    n = strlen(st->text);
    for (const int *cut = st->cuts; cut && *cut && off < n; cut++) {
        size_t m = (size_t)*cut < n - off ? (size_t)*cut : n - off;
        fake_stream_send(c, st->text + off, m);
        off += m;
        fake_stream_wait(c, 2);
    }
    fake_stream_send(c, st->text + off, n - off);
    fake_stream_end(c);
}

struct live {
    struct api api;
    struct fake_server *srv;
    struct kube *k;
    struct watch *w;
    struct seen seen;
};

static long ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts server, client and reflector (page size 2, a label selector). */
static int live_up(struct live *l)
{
    struct kube_options o = {.qps = -1, .max_retries = -1, .timeout_ms = 5000};
    struct kubeconfig *cfg;
    char *err = NULL;
    int rc;

    pthread_mutex_init(&l->api.lock, NULL);
    l->srv = fake_start(api_handler, &l->api);
    if (l->srv == NULL)
        return -EIO;
    cfg = fake_kubeconfig(l->srv, "t");
    rc = kube_new(cfg, &o, &l->k, &err);
    kubeconfig_free(cfg);
    free(err);
    if (rc < 0)
        return rc;
    struct watch_config wc = {
        .res = {"", "v1", "configmaps"},
        .label_selector = "kvrecover.io/pool",
        .page_size = 2,
        .handlers = {on_add, on_update, on_delete, on_synced},
        .ud = &l->seen,
    };
    memset(&l->seen, 0, sizeof(l->seen));
    rc = watch_new(l->k, &wc, &l->w);
    return rc < 0 ? rc : watch_start(l->w);
}

static void live_down(struct live *l)
{
    watch_free(l->w);
    kube_free(l->k);
    fake_stop(l->srv);
    pthread_mutex_destroy(&l->api.lock);
    buf_free(&l->seen.log);
}

/* Polls the reflector's counters until ok() holds or ms pass. */
static bool wait_stats(struct watch *w, bool (*ok)(const struct watch_stats *), long ms)
{
    long end = ms_now() + ms;
    struct watch_stats st;

    do {
        watch_get_stats(w, &st);
        if (ok(&st))
            return true;
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
    } while (ms_now() < end);
    return false;
}

/* Polls the server's request log until it contains needle or ms pass. */
static bool wait_log(struct fake_server *srv, const char *needle, long ms)
{
    long end = ms_now() + ms;

    do {
        char *log = fake_log(srv);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
    } while (ms_now() < end);
    return false;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool two_events_one_restart(const struct watch_stats *st)
{
    return st->events >= 2 && st->bookmarks >= 1 && st->restarts >= 1;
}

static const char *const first_list[] = {"watch-list-page1.json", "watch-list-page2.json"};
static const char *const second_list[] = {"watch-relist.json"};

/* The whole cycle: a paged list with the selector and a continue token,
 * synced, a watch from the list's resourceVersion with bookmarks and a
 * randomized timeout, events split at odd byte boundaries applied once,
 * and the next watch resuming from the bookmark's resourceVersion. Stop
 * returns within a second although the stream is silent. */
TEST(reflector_list_watch_resume_from_bookmark)
{
    static const int cuts[] = {1, 5, 17, 40, 3, 90, 0};
    static const struct wstep steps[] = {
        {200,
         EV("ADDED", "a", "five", "u5", "101") "\n" EV("MODIFIED", "a", "one", "u-one",
                                                       "102") "\n"
                                                              "{\"type\":\"BOOKMARK\",\"object\":{"
                                                              "\"kind\":\"ConfigMap\",\"metadata\":"
                                                              "{\"resourceVersion\":\"150\"}}}\n",
         cuts},
    };
    struct live l = {
        .api = {.gen0 = first_list, .gen1 = second_list, .steps = steps, .n_steps = 1}};
    char *log, *rv;
    const char *p;
    long t0;

    CHECK_INT(live_up(&l), 0);
    CHECK_INT(watch_wait_synced(l.w, 5000), 0);
    CHECK(wait_stats(l.w, two_events_one_restart, 5000));
    CHECK(wait_log(l.srv, "watch=true&resourceVersion=150&", 5000));
    CHECK_STR(seen_take(&l.seen),
              "add:a/one@10 add:a/two@11 add:b/three@12 synced add:a/five@101 upd:a/one@102 ");
    rv = watch_resource_version(l.w);
    CHECK_STR(rv, "150");
    free(rv);
    log = fake_log(l.srv);
    p = log;
    CHECK(starts_with(p, "GET /api/v1/configmaps?labelSelector=kvrecover.io%2Fpool&limit=2\n"));
    p = strchr(p, '\n') + 1;
    CHECK(starts_with(p, "GET /api/v1/configmaps?labelSelector=kvrecover.io%2Fpool&limit=2"
                         "&continue=tok1\n"));
    p = strchr(p, '\n') + 1;
    const char *w0 = "GET /api/v1/configmaps?labelSelector=kvrecover.io%2Fpool&watch=true"
                     "&resourceVersion=100&allowWatchBookmarks=true&timeoutSeconds=";
    CHECK(starts_with(p, w0));
    long timeout = strtol(p + strlen(w0), NULL, 10);
    CHECK(timeout >= WATCH_MIN_TIMEOUT_S && timeout < WATCH_MAX_TIMEOUT_S);
    p = strchr(p, '\n') + 1;
    CHECK(strstr(p, "&resourceVersion=150&allowWatchBookmarks=true") != NULL);
    free(log);
    t0 = ms_now();
    watch_stop(l.w);
    CHECK(ms_now() - t0 < 600); /* one cancel poll of the stream */
    /* Nothing is delivered after stop. */
    CHECK_STR(seen_take(&l.seen), "");
    live_down(&l);
}

static bool relisted(const struct watch_stats *st)
{
    return st->relists >= 1 && st->restarts >= 1;
}

/* 410 as an ERROR event mid-stream and as an HTTP status both lead to a
 * relist that reports only the differences, then a watch from the new
 * list's resourceVersion. */
TEST(reflector_relists_on_410_event_and_status)
{
    static const struct wstep as_event[] = {
        {200,
         "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
         "\"Failure\",\"message\":\"too old resource version: 100 (300)\",\"reason\":\"Expired\","
         "\"code\":410}}\n" EV("ADDED", "z", "never", "u0", "999") "\n",
         NULL},
    };
    static const struct wstep as_status[] = {{410, NULL, NULL}};
    const struct wstep *kinds[] = {as_event, as_status};

    for (int i = 0; i < 2; i++) {
        struct live l = {
            .api = {.gen0 = first_list, .gen1 = second_list, .steps = kinds[i], .n_steps = 1}};
        struct watch_stats st;
        char *log, *rv;

        CHECK_INT(live_up(&l), 0);
        CHECK(wait_stats(l.w, relisted, 5000));
        /* Wait for the watch after the relist. */
        CHECK(wait_log(l.srv, "watch=true&resourceVersion=200&", 5000));
        watch_stop(l.w);
        /* The line after the ERROR event is not applied: the stream ended. */
        CHECK_STR(seen_take(&l.seen), "add:a/one@10 add:a/two@11 add:b/three@12 synced "
                                      "upd:a/two@20 add:c/four@21 gone:b/three@12 ");
        watch_get_stats(l.w, &st);
        CHECK_INT(st.lists, 2);
        CHECK_INT(st.relists, 1);
        CHECK_INT(st.objects, 3);
        CHECK_INT(l.seen.synced, 1);
        rv = watch_resource_version(l.w);
        CHECK_STR(rv, "200");
        free(rv);
        log = fake_log(l.srv);
        CHECK(strstr(log, "watch=true&resourceVersion=200&") != NULL);
        free(log);
        live_down(&l);
    }
}

static bool listed_after_errors(const struct watch_stats *st)
{
    return st->lists >= 1;
}

/* Failed lists are retried with a growing, jittered delay (at least half of
 * WATCH_BACKOFF_MS, then of twice that), and stop cuts a backoff short. */
TEST(reflector_backs_off_on_errors)
{
    struct live l = {.api = {.gen0 = first_list, .gen1 = second_list, .list_failures = 2}};
    struct watch_stats st;
    long t0 = ms_now(), t1;

    CHECK_INT(live_up(&l), 0);
    CHECK(wait_stats(l.w, listed_after_errors, 10000));
    t1 = ms_now();
    CHECK(t1 - t0 >= WATCH_BACKOFF_MS / 2 + WATCH_BACKOFF_MS);
    watch_get_stats(l.w, &st);
    CHECK_INT(st.errors, 2);
    watch_stop(l.w);
    live_down(&l);

    /* Always failing: the stop lands in a backoff sleep and still returns
     * at once. */
    struct live l2 = {.api = {.gen0 = first_list, .gen1 = second_list, .list_failures = 1000}};
    CHECK_INT(live_up(&l2), 0);
    struct timespec d = {0, 700 * 1000000L};
    nanosleep(&d, NULL);
    t0 = ms_now();
    watch_stop(l2.w);
    CHECK(ms_now() - t0 < 500);
    CHECK(!watch_has_synced(l2.w));
    CHECK_INT(watch_wait_synced(l2.w, 1000), -ECANCELED);
    live_down(&l2);
}

/* Restarting a stopped reflector relists, reports only differences and
 * syncs again; starting twice is refused. */
TEST(reflector_restart_after_stop)
{
    struct live l = {.api = {.gen0 = first_list, .gen1 = second_list}};

    CHECK_INT(live_up(&l), 0);
    CHECK_INT(watch_start(l.w), -EALREADY);
    CHECK_INT(watch_wait_synced(l.w, 5000), 0);
    watch_stop(l.w);
    watch_stop(l.w); /* idempotent */
    seen_take(&l.seen);
    CHECK_INT(watch_start(l.w), 0);
    CHECK_INT(watch_wait_synced(l.w, 5000), 0);
    watch_stop(l.w);
    CHECK_STR(seen_take(&l.seen), "upd:a/two@20 add:c/four@21 gone:b/three@12 synced ");
    live_down(&l);
}

/* A continue token that expires mid-list (410 on a later page) restarts
 * that list from its first page, as one list: no relist, no error, and
 * every object delivered once. */
TEST(reflector_expired_continue_restarts_list)
{
    struct live l = {.api = {.gen0 = first_list, .gen1 = first_list, .expire_continue = 1}};
    struct watch_stats st;
    char *log;

    CHECK_INT(live_up(&l), 0);
    CHECK_INT(watch_wait_synced(l.w, 5000), 0);
    watch_stop(l.w);
    CHECK_STR(seen_take(&l.seen), "add:a/one@10 add:a/two@11 add:b/three@12 synced ");
    watch_get_stats(l.w, &st);
    CHECK_INT(st.lists, 1);
    CHECK_INT(st.relists, 0);
    CHECK_INT(st.errors, 0);
    log = fake_log(l.srv);
    /* first page, expired continue, first page again, continue */
    const char *p = log;
    int pages = 0;
    while ((p = strstr(p, "&limit=2")) != NULL) {
        pages++;
        p++;
    }
    CHECK_INT(pages, 4);
    free(log);
    live_down(&l);
}

/* A stop while a list request hangs returns within about a second. */
TEST(reflector_stop_during_list)
{
    struct live l = {.api = {.gen0 = first_list, .gen1 = second_list, .list_hold = true}};
    long t0;

    CHECK_INT(live_up(&l), 0);
    CHECK(wait_log(l.srv, "&limit=2", 10000));
    t0 = ms_now();
    watch_stop(l.w);
    CHECK(ms_now() - t0 < 1500);
    CHECK(!watch_has_synced(l.w));
    CHECK_STR(seen_take(&l.seen), "");
    live_down(&l);
}
