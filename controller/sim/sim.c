/*
 * sim — the similarity engine. See sim.h.
 *
 * A pool interns every string once (names, vm labels, categories, values)
 * and every (category, value) item once, so that a member is an array of
 * item ids. A ranking first turns the policy and the failed VM into
 * per-category and per-item tables (stamps in the ranker's scratch space),
 * then scores each member with integer additions (and a double per
 * resource), then sorts with a stable radix sort on the score as a double:
 * members are already in name order, so a stable sort by score gives
 * CONTRACT.md's order (score descending, name ascending) without comparing
 * names. Runs of doubles too close to be trusted are then put in exact order
 * (see "the exact comparison").
 *
 * Must never: allocate or compare strings inside the ranking loop, depend on
 * the order in which members or items were added, or select the failed VM
 * itself.
 */
#include "sim/sim.h"
#include "sim/sim_test.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/xalloc.h"
#include "sim/exact.h"
#include "sim/quantity.h"

#define SIM__NONE UINT32_MAX
/* Most members, strings or items a pool holds: ids are uint32 and
 * SIM__NONE is taken. */
#define SIM__MAX (UINT32_MAX - 1u)
/* Weights are integers of 10^-SIM__SCALE (policy.h's POLICY_DECIMALS). */
#define SIM__SCALE 9
/* Two scores whose doubles are closer than this, relative to the larger,
 * may be misordered by rounding and are compared exactly (see "the exact
 * comparison" below: the doubles are within 16 ulps, 2^-49, of the exact
 * scores). */
#define SIM__NEAR (1.0 / (double)(1ull << 40))

struct sim__member {
    const char *name;                     /* owned by the pool's string table */
    uint32_t name_id;                     /* its string id */
    uint32_t vm_id;                       /* string id of the kvrecover.io/vm label, or SIM__NONE */
    size_t off;                           /* first item id in pool->mitems */
    uint32_t nitems;                      /* item ids, ascending, no duplicates */
    unsigned has_res;                     /* bit (1u << FEATURES_x) when res[x] is known */
    unsigned flags;                       /* SIM_MEMBER_* */
    uint32_t disk_id;                     /* string id of its disk detail, or SIM__NONE */
    double res[FEATURES_NRES];            /* the double of rdec */
    struct exact_dec rdec[FEATURES_NRES]; /* resources as exact decimals */
    const void *data;                     /* the caller's */
};

/* An open-addressing hash set of ids; slots hold id + 1, 0 is empty. */
struct sim__table {
    uint32_t *slot;
    size_t mask; /* slots - 1; slots is a power of two, or 0 */
};

struct sim_pool {
    /* strings: names, vm labels, categories, values */
    char **str;
    uint64_t *str_hash;
    uint32_t *str_member; /* member index + 1 whose name this is, or 0 */
    uint32_t *str_cat;    /* category id + 1 when the string is a category, or 0 */
    uint32_t nstr, capstr;
    struct sim__table strs;
    /* categories: id -> string id */
    uint32_t *cat_str;
    uint32_t ncat, capcat;
    /* items: id -> (category id << 32 | value string id), category */
    uint64_t *item_key;
    uint32_t *item_cat;
    uint32_t nitem, capitem;
    struct sim__table items;
    /* members and their item ids */
    struct sim__member *m;
    uint32_t nm, capm;
    uint32_t *mitems;
    size_t nmitems, capmitems;
    int finished;
};

/* One sort record: (hi, lo) is the score's bit pattern inverted, so that
 * ascending keys are descending scores (a non-negative double's bits order
 * as the double does); idx is the candidate. The radix sort orders by hi,
 * sim__ties() by lo within runs of equal hi. */
struct sim__rec {
    uint32_t hi;
    uint32_t lo;
    uint32_t idx;
};

struct sim_ranker {
    /* per item: stamp == gen when the failed VM has the item */
    uint32_t *stamp;
    size_t nstamp;
    uint32_t gen;
    /* per category of the last pool ranked */
    int64_t *catw;    /* weight in 10^-9 */
    int32_t *catk;    /* index in pol->weights, or -1 */
    uint32_t *catreq; /* index in pol->required + 1, or 0 */
    size_t ncat;
    /* per resource */
    int64_t resw[FEATURES_NRES];
    int32_t resreq[FEATURES_NRES]; /* index in pol->required, or -1 */
    int64_t thr;                   /* the threshold in 10^-9 */
    /* the failed VM */
    int64_t wa;        /* W(A) of its items */
    unsigned qhas_res; /* its resources */
    double qres[FEATURES_NRES];
    struct exact_dec qdec[FEATURES_NRES];
    enum policy_mode mode;
    uint32_t *qreq; /* per required category: its item count */
    uint32_t *mreq; /* per required category: the member's matched count */
    size_t nreq, capreq;
    uint32_t *kcount; /* per policy weight: its items in that category */
    int64_t *kw;      /* per policy weight: the weight in 10^-9 */
    size_t nk, capk, capkw;
    const struct features_item **qitems; /* sorted, for de-duplication */
    size_t nqitems;
    /* sorting */
    struct sim__rec *rec, *rec2;
    struct sim_candidate *tmp;
    size_t nranked;   /* candidates in the last ranking */
    int64_t *ci, *cd; /* per candidate: the integer part of its numerator, its
                         denominator (see sim__exact()) */
    size_t nrec;
};

/* ---- interning ---- */

static uint64_t sim__hash_str(const char *s)
{
    return hash_fnv_str(HASH_TABLE_INIT, s);
}

static uint64_t sim__hash_key(uint64_t k)
{
    /* splitmix64's finaliser: item keys are small, dense integers */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    return k ^ (k >> 31);
}

/* The capacity, doubled from cap (16 at first), that holds need entries. */
static uint32_t sim__cap_for(uint32_t cap, uint32_t need)
{
    uint64_t c = cap ? cap : 16;

    while (c < need)
        c *= 2;
    return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* Grows *p (count *cap of size sz) to hold at least need entries. */
static void sim__grow(void *pp, uint32_t *cap, uint32_t need, size_t sz)
{
    void **p = pp;

    if (need <= *cap)
        return;
    *cap = sim__cap_for(*cap, need);
    *p = xreallocarray(*p, (size_t)*cap, sz);
}

/* Shrinks the array *pp (when there is one) to n elements of sz bytes,
 * at least one. */
static void sim__fit(void *pp, size_t n, size_t sz)
{
    void **p = pp;

    if (*p)
        *p = xreallocarray(*p, n ? n : 1, sz);
}

/* Rebuilds t for n ids so that it stays at most half full; hash(i) gives
 * the hash of id i. */
static void sim__rehash(struct sim__table *t, uint32_t n, const struct sim_pool *p,
                        uint64_t (*hash)(const struct sim_pool *, uint32_t))
{
    size_t slots = t->mask ? t->mask + 1 : 0;

    if ((uint64_t)n * 2 < slots)
        return;
    slots = slots ? slots * 2 : 64;
    while ((uint64_t)n * 2 >= slots)
        slots *= 2;
    free(t->slot);
    t->slot = xcalloc(slots, sizeof(*t->slot));
    t->mask = slots - 1;
    for (uint32_t i = 0; i < n; i++) {
        size_t s = (size_t)hash(p, i) & t->mask;

        while (t->slot[s])
            s = (s + 1) & t->mask;
        t->slot[s] = i + 1;
    }
}

static uint64_t sim__str_hash_of(const struct sim_pool *p, uint32_t i)
{
    return p->str_hash[i];
}

static uint64_t sim__item_hash_of(const struct sim_pool *p, uint32_t i)
{
    return sim__hash_key(p->item_key[i]);
}

/* Adds id (hash h; ids 0..id are in use) to t, rebuilding t when it would
 * be more than half full. */
static void sim__insert(struct sim__table *t, uint32_t id, uint64_t h, const struct sim_pool *p,
                        uint64_t (*hash)(const struct sim_pool *, uint32_t))
{
    size_t i;

    if ((uint64_t)(id + 1) * 2 >= (t->mask ? t->mask + 1 : 0)) {
        sim__rehash(t, id + 1, p, hash);
        return;
    }
    for (i = (size_t)h & t->mask; t->slot[i]; i = (i + 1) & t->mask)
        ;
    t->slot[i] = id + 1;
}

/* The id of string s, or SIM__NONE. */
static uint32_t sim__str_find(const struct sim_pool *p, const char *s, uint64_t h)
{
    if (!p->strs.mask)
        return SIM__NONE;
    for (size_t i = (size_t)h & p->strs.mask;; i = (i + 1) & p->strs.mask) {
        uint32_t id = p->strs.slot[i];

        if (!id)
            return SIM__NONE;
        if (p->str_hash[id - 1] == h && strcmp(p->str[id - 1], s) == 0)
            return id - 1;
    }
}

static uint32_t sim__str_lookup(const struct sim_pool *p, const char *s)
{
    return s ? sim__str_find(p, s, sim__hash_str(s)) : SIM__NONE;
}

/* The id of s, interned if new; SIM__NONE when the table is full. */
static uint32_t sim__str_intern(struct sim_pool *p, const char *s)
{
    uint64_t h = sim__hash_str(s);
    uint32_t id = sim__str_find(p, s, h);

    if (id != SIM__NONE)
        return id;
    if (p->nstr >= SIM__MAX)
        return SIM__NONE;
    id = p->nstr;
    if (id >= p->capstr) {
        /* parallel arrays: one capacity for all four */
        p->capstr = sim__cap_for(p->capstr, id + 1);
        p->str = xreallocarray(p->str, p->capstr, sizeof(*p->str));
        p->str_hash = xreallocarray(p->str_hash, p->capstr, sizeof(*p->str_hash));
        p->str_member = xreallocarray(p->str_member, p->capstr, sizeof(*p->str_member));
        p->str_cat = xreallocarray(p->str_cat, p->capstr, sizeof(*p->str_cat));
    }
    p->str[id] = xstrdup(s);
    p->str_hash[id] = h;
    p->str_member[id] = 0;
    p->str_cat[id] = 0;
    p->nstr++;
    sim__insert(&p->strs, id, h, p, sim__str_hash_of);
    return id;
}

/* The category id of the string sid, interned if new; SIM__NONE when full. */
static uint32_t sim__cat_intern(struct sim_pool *p, uint32_t sid)
{
    uint32_t c;

    if (p->str_cat[sid])
        return p->str_cat[sid] - 1;
    if (p->ncat >= SIM__MAX)
        return SIM__NONE;
    c = p->ncat++;
    sim__grow(&p->cat_str, &p->capcat, p->ncat, sizeof(*p->cat_str));
    p->cat_str[c] = sid;
    p->str_cat[sid] = c + 1;
    return c;
}

static uint32_t sim__item_find(const struct sim_pool *p, uint64_t key)
{
    if (!p->items.mask)
        return SIM__NONE;
    for (size_t i = (size_t)sim__hash_key(key) & p->items.mask;; i = (i + 1) & p->items.mask) {
        uint32_t id = p->items.slot[i];

        if (!id)
            return SIM__NONE;
        if (p->item_key[id - 1] == key)
            return id - 1;
    }
}

static uint32_t sim__item_intern(struct sim_pool *p, uint32_t cat, uint32_t val)
{
    uint64_t key = (uint64_t)cat << 32 | val;
    uint32_t id = sim__item_find(p, key);

    if (id != SIM__NONE)
        return id;
    if (p->nitem >= SIM__MAX)
        return SIM__NONE;
    id = p->nitem;
    if (id >= p->capitem) {
        p->capitem = sim__cap_for(p->capitem, id + 1);
        p->item_key = xreallocarray(p->item_key, p->capitem, sizeof(*p->item_key));
        p->item_cat = xreallocarray(p->item_cat, p->capitem, sizeof(*p->item_cat));
    }
    p->item_key[id] = key;
    p->item_cat[id] = cat;
    p->nitem++;
    sim__insert(&p->items, id, sim__hash_key(key), p, sim__item_hash_of);
    return id;
}

/* The item id of (category, value) without interning, or SIM__NONE. */
static uint32_t sim__item_lookup(const struct sim_pool *p, const char *category, const char *value)
{
    uint32_t cs = sim__str_lookup(p, category), vs, c;

    if (cs == SIM__NONE || !p->str_cat[cs])
        return SIM__NONE;
    c = p->str_cat[cs] - 1;
    vs = sim__str_lookup(p, value);
    if (vs == SIM__NONE)
        return SIM__NONE;
    return sim__item_find(p, (uint64_t)c << 32 | vs);
}

/* ---- the pool ---- */

struct sim_pool *sim_pool_new(void)
{
    struct sim_pool *p = xcalloc(1, sizeof(*p));

    p->finished = 1;
    return p;
}

void sim_pool_clear(struct sim_pool *p)
{
    for (uint32_t i = 0; i < p->nstr; i++)
        free(p->str[i]);
    if (p->strs.slot)
        memset(p->strs.slot, 0, (p->strs.mask + 1) * sizeof(*p->strs.slot));
    if (p->items.slot)
        memset(p->items.slot, 0, (p->items.mask + 1) * sizeof(*p->items.slot));
    p->nstr = p->ncat = p->nitem = p->nm = 0;
    p->nmitems = 0;
    p->finished = 1;
}

void sim_pool_free(struct sim_pool *p)
{
    if (!p)
        return;
    sim_pool_clear(p);
    free(p->str);
    free(p->str_hash);
    free(p->str_member);
    free(p->str_cat);
    free(p->strs.slot);
    free(p->cat_str);
    free(p->item_key);
    free(p->item_cat);
    free(p->items.slot);
    free(p->m);
    free(p->mitems);
    free(p);
}

/*
 * A resource value as the engine uses it: the exact decimal of v (exact.h)
 * rounded to nanos as Kubernetes rounds quantities (never to 0), in *d, and
 * its double. Values outside quantity.h's range (only hand-made features
 * hold them) count as 0 or as the limit, so that sim__exact()'s bounds hold.
 */
static double sim__resource(double v, struct exact_dec *d)
{
    struct exact_dec r;

    if (!(v > 0)) {
        *d = (struct exact_dec){0, 0};
        return 0;
    }
    if (v > QUANTITY_LIMIT)
        v = QUANTITY_LIMIT;
    *d = exact_dec_from_double(v);
    r = exact_dec_round(*d, SIM__SCALE);
    if (r.digits == d->digits && r.exp == d->exp)
        return v;
    *d = r;
    return exact_dec_double(r);
}

/* A weight or the threshold in integers of 10^-9: the decimal policy.h
 * checked, recovered from its double; a hand-made policy's finer or larger
 * values are rounded and bounded. */
static int64_t sim__units(double w)
{
    int64_t u = 0;

    if (!(w > 0))
        return 0;
    if (w > POLICY_WEIGHT_MAX)
        w = POLICY_WEIGHT_MAX;
    if (exact_dec_units(exact_dec_round(exact_dec_from_double(w), SIM__SCALE), SIM__SCALE, &u))
        return 0; /* not reached: at most 10^12 */
    return u;
}

static int sim__u32cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

int sim_pool_add(struct sim_pool *p, const char *name, const char *vm, const struct features *f,
                 unsigned flags, const void *data)
{
    const struct sim_member m = {name, vm, f, flags, NULL, data};

    return sim_pool_put(p, &m);
}

int sim_pool_put(struct sim_pool *p, const struct sim_member *mi)
{
    const struct features *f = mi->features;
    uint32_t nid, vid = SIM__NONE, did = SIM__NONE, *ids;
    struct sim__member *m;
    size_t n = 0;

    if (f->n > FEATURES_MAX_ITEMS || p->nm >= SIM__MAX || p->nmitems + f->n > (size_t)SIM__MAX)
        return -E2BIG;
    nid = sim__str_intern(p, mi->name);
    if (nid == SIM__NONE)
        return -E2BIG;
    if (p->str_member[nid])
        return -EEXIST;
    if (mi->vm && (vid = sim__str_intern(p, mi->vm)) == SIM__NONE)
        return -E2BIG;
    if (mi->disk && (did = sim__str_intern(p, mi->disk)) == SIM__NONE)
        return -E2BIG;
    /* Allocated on the first add even for an empty feature set, so that
     * p->mitems + offset is never arithmetic on a null pointer. */
    if (p->mitems == NULL || p->nmitems + f->n > p->capmitems) {
        size_t cap = p->capmitems ? p->capmitems : 256;

        while (cap < p->nmitems + f->n)
            cap *= 2;
        p->mitems = xreallocarray(p->mitems, cap, sizeof(*p->mitems));
        p->capmitems = cap;
    }
    ids = p->mitems + p->nmitems;
    for (size_t i = 0; i < f->n; i++) {
        uint32_t cs = sim__str_intern(p, f->items[i].category);
        uint32_t vs = cs == SIM__NONE ? SIM__NONE : sim__str_intern(p, f->items[i].value);
        uint32_t c = vs == SIM__NONE ? SIM__NONE : sim__cat_intern(p, cs);
        uint32_t it = c == SIM__NONE ? SIM__NONE : sim__item_intern(p, c, vs);

        /* what was interned stays: harmless, and the pool stays consistent */
        if (it == SIM__NONE)
            return -E2BIG;
        ids[n++] = it;
    }
    if (n > 1) {
        size_t w = 1;

        qsort(ids, n, sizeof(*ids), sim__u32cmp);
        for (size_t i = 1; i < n; i++)
            if (ids[i] != ids[w - 1])
                ids[w++] = ids[i];
        n = w;
    }
    sim__grow(&p->m, &p->capm, p->nm + 1, sizeof(*p->m));
    m = &p->m[p->nm];
    memset(m, 0, sizeof(*m));
    m->name = p->str[nid];
    m->name_id = nid;
    m->vm_id = vid;
    m->off = p->nmitems;
    m->nitems = (uint32_t)n;
    m->has_res = f->has_res & ((1u << FEATURES_NRES) - 1);
    for (int r = 0; r < FEATURES_NRES; r++)
        m->res[r] = sim__resource(m->has_res & (1u << r) ? f->res[r] : 0, &m->rdec[r]);
    m->flags = mi->flags;
    m->disk_id = did;
    m->data = mi->data;
    p->nmitems += n;
    p->nm++;
    p->str_member[nid] = p->nm;
    p->finished = 0;
    return 0;
}

static int sim__member_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sim__member *)a)->name, ((const struct sim__member *)b)->name);
}

void sim_pool_finish(struct sim_pool *p)
{
    if (p->finished)
        return;
    qsort(p->m, p->nm, sizeof(*p->m), sim__member_cmp);
    for (uint32_t i = 0; i < p->nm; i++)
        p->str_member[p->m[i].name_id] = i + 1;
    /* The arrays grew by doubling; a finished pool is kept as long as its
     * members do not change, so the slack (up to half of each) goes back
     * (issue 11). */
    sim__fit(&p->str, p->nstr, sizeof(*p->str));
    sim__fit(&p->str_hash, p->nstr, sizeof(*p->str_hash));
    sim__fit(&p->str_member, p->nstr, sizeof(*p->str_member));
    sim__fit(&p->str_cat, p->nstr, sizeof(*p->str_cat));
    p->capstr = p->nstr;
    sim__fit(&p->cat_str, p->ncat, sizeof(*p->cat_str));
    p->capcat = p->ncat;
    sim__fit(&p->item_key, p->nitem, sizeof(*p->item_key));
    sim__fit(&p->item_cat, p->nitem, sizeof(*p->item_cat));
    p->capitem = p->nitem;
    sim__fit(&p->m, p->nm, sizeof(*p->m));
    p->capm = p->nm;
    sim__fit(&p->mitems, p->nmitems, sizeof(*p->mitems));
    p->capmitems = p->nmitems;
    p->finished = 1;
}

size_t sim_pool_size(const struct sim_pool *p)
{
    return p->nm;
}

const char *sim_pool_name(const struct sim_pool *p, size_t i)
{
    return p->m[i].name;
}

const char *sim_pool_vm(const struct sim_pool *p, size_t i)
{
    return p->m[i].vm_id == SIM__NONE ? NULL : p->str[p->m[i].vm_id];
}

const void *sim_pool_data(const struct sim_pool *p, size_t i)
{
    return p->m[i].data;
}

int sim_pool_find(const struct sim_pool *p, const char *name, size_t *i)
{
    uint32_t id;

    if (!p->finished)
        return -ENOENT;
    id = sim__str_lookup(p, name);
    if (id == SIM__NONE || !p->str_member[id])
        return -ENOENT;
    *i = p->str_member[id] - 1;
    return 0;
}

/* ---- ranking ---- */

struct sim_ranker *sim_ranker_new(void)
{
    return xcalloc(1, sizeof(struct sim_ranker));
}

void sim_ranker_free(struct sim_ranker *r)
{
    if (!r)
        return;
    free(r->stamp);
    free(r->catw);
    free(r->catk);
    free(r->catreq);
    free(r->qreq);
    free(r->mreq);
    free(r->kcount);
    free(r->kw);
    free(r->qitems);
    free(r->rec);
    free(r->rec2);
    free(r->tmp);
    free(r->ci);
    free(r->cd);
    free(r);
}

void sim_result_free(struct sim_result *res)
{
    if (!res)
        return;
    free(res->cand);
    memset(res, 0, sizeof(*res));
}

/* Grows a scratch array to n entries, never shrinking; the contents are
 * kept. */
static void *sim__scratch(void *p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return p;
    p = xreallocarray(p, n, sz);
    *cap = n;
    return p;
}

static int sim__item_cmp(const void *a, const void *b)
{
    const struct features_item *x = *(const struct features_item *const *)a;
    const struct features_item *y = *(const struct features_item *const *)b;
    int c = strcmp(x->category, y->category);

    return c ? c : strcmp(x->value, y->value);
}

/* The index of category in pol->required, or -1. */
static int32_t sim__required_index(const struct policy *pol, const char *category)
{
    for (size_t k = 0; k < pol->nrequired; k++)
        if (strcmp(pol->required[k], category) == 0)
            return (int32_t)k;
    return -1;
}

/* Turns the policy and the failed VM into r's tables for pool p. */
static void sim__prepare(struct sim_ranker *r, const struct sim_pool *p, const struct policy *pol,
                         const struct features *qf)
{
    size_t cap, n;

    r->mode = pol->mode;
    r->thr = sim__units(pol->threshold);
    /* per category */
    cap = r->ncat;
    r->catw = sim__scratch(r->catw, &cap, p->ncat, sizeof(*r->catw));
    cap = r->ncat;
    r->catk = sim__scratch(r->catk, &cap, p->ncat, sizeof(*r->catk));
    cap = r->ncat;
    r->catreq = sim__scratch(r->catreq, &cap, p->ncat, sizeof(*r->catreq));
    r->ncat = cap;
    if (p->ncat) {
        memset(r->catw, 0, p->ncat * sizeof(*r->catw));
        memset(r->catreq, 0, p->ncat * sizeof(*r->catreq));
        for (uint32_t c = 0; c < p->ncat; c++)
            r->catk[c] = -1;
    }
    for (int x = 0; x < FEATURES_NRES; x++) {
        r->resw[x] = 0;
        r->resreq[x] = sim__required_index(pol, features_res_name((enum features_res)x));
    }
    r->nk = pol->nweights;
    r->kw = sim__scratch(r->kw, &r->capkw, r->nk ? r->nk : 1, sizeof(*r->kw));
    for (size_t k = 0; k < pol->nweights; k++) {
        const char *cat = pol->weights[k].category;
        int64_t w = r->kw[k] = sim__units(pol->weights[k].weight);
        int x = features_res_lookup(cat);
        uint32_t s;

        if (x >= 0) {
            r->resw[x] = w;
            continue;
        }
        s = sim__str_lookup(p, cat);
        if (s != SIM__NONE && p->str_cat[s]) {
            r->catw[p->str_cat[s] - 1] = w;
            r->catk[p->str_cat[s] - 1] = (int32_t)k;
        }
    }
    r->nreq = pol->nrequired;
    n = r->nreq ? r->nreq : 1;
    cap = r->capreq;
    r->qreq = sim__scratch(r->qreq, &cap, n, sizeof(*r->qreq));
    cap = r->capreq;
    r->mreq = sim__scratch(r->mreq, &cap, n, sizeof(*r->mreq));
    r->capreq = cap;
    memset(r->qreq, 0, n * sizeof(*r->qreq));
    for (size_t k = 0; k < pol->nrequired; k++) {
        uint32_t s = sim__str_lookup(p, pol->required[k]);

        if (s != SIM__NONE && p->str_cat[s] && !r->catreq[p->str_cat[s] - 1])
            r->catreq[p->str_cat[s] - 1] = (uint32_t)k + 1;
    }
    r->kcount = sim__scratch(r->kcount, &r->capk, r->nk ? r->nk : 1, sizeof(*r->kcount));
    memset(r->kcount, 0, (r->nk ? r->nk : 1) * sizeof(*r->kcount));

    /* per item: stamps, fresh for this ranking */
    cap = r->nstamp;
    r->stamp = sim__scratch(r->stamp, &cap, p->nitem, sizeof(*r->stamp));
    if (cap > r->nstamp)
        memset(r->stamp + r->nstamp, 0, (cap - r->nstamp) * sizeof(*r->stamp));
    r->nstamp = cap;
    if (++r->gen == 0) {
        memset(r->stamp, 0, r->nstamp * sizeof(*r->stamp));
        r->gen = 1;
    }

    /* the failed VM's items, each counted once */
    cap = r->nqitems;
    r->qitems = sim__scratch(r->qitems, &cap, qf->n ? qf->n : 1, sizeof(*r->qitems));
    r->nqitems = cap;
    for (size_t i = 0; i < qf->n; i++)
        r->qitems[i] = &qf->items[i];
    if (qf->n > 1)
        qsort(r->qitems, qf->n, sizeof(*r->qitems), sim__item_cmp);
    r->wa = 0;
    for (size_t i = 0; i < qf->n; i++) {
        const struct features_item *it = r->qitems[i];
        int32_t k, q;
        uint32_t id;

        if (i && sim__item_cmp(&r->qitems[i - 1], &r->qitems[i]) == 0)
            continue;
        id = sim__item_lookup(p, it->category, it->value);
        if (id != SIM__NONE) {
            r->stamp[id] = r->gen;
            r->wa += r->catw[p->item_cat[id]];
        } else {
            /* unknown to the pool: it weighs in W(A) and matches nothing */
            for (k = 0; k < (int32_t)pol->nweights; k++)
                if (strcmp(pol->weights[k].category, it->category) == 0)
                    break;
            if (k < (int32_t)pol->nweights)
                r->wa += r->kw[k];
        }
        for (k = 0; k < (int32_t)pol->nweights; k++)
            if (strcmp(pol->weights[k].category, it->category) == 0)
                r->kcount[k]++;
        if ((q = sim__required_index(pol, it->category)) >= 0)
            r->qreq[q]++;
    }
    r->qhas_res = qf->has_res & ((1u << FEATURES_NRES) - 1);
    for (int x = 0; x < FEATURES_NRES; x++)
        r->qres[x] = sim__resource(r->qhas_res & (1u << x) ? qf->res[x] : 0, &r->qdec[x]);
}

/* min(a, b) / max(a, b), 1 when both are 0. */
static double sim__ratio(double a, double b)
{
    double hi = a > b ? a : b, lo = a > b ? b : a;

    return hi > 0 ? lo / hi : 1.0;
}

/* min(1, b / a), 1 when a is 0. */
static double sim__cover(double a, double b)
{
    return a > 0 && b < a ? b / a : 1.0;
}

/* The first required category (index in pol->required) on which member m
 * differs from the failed VM, or -1. */
static int32_t sim__required(const struct sim_ranker *r, const struct sim_pool *p,
                             const struct sim__member *m)
{
    const uint32_t *ids = p->mitems + m->off;
    int32_t first = -1;

    memset(r->mreq, 0, r->nreq * sizeof(*r->mreq));
    for (uint32_t j = 0; j < m->nitems; j++) {
        uint32_t k = r->catreq[p->item_cat[ids[j]]];

        if (!k)
            continue;
        if (r->stamp[ids[j]] != r->gen) {
            if (first < 0 || (int32_t)k - 1 < first)
                first = (int32_t)k - 1;
        } else {
            r->mreq[k - 1]++;
        }
    }
    for (size_t k = 0; k < r->nreq && (first < 0 || (int32_t)k < first); k++)
        if (r->mreq[k] != r->qreq[k])
            first = (int32_t)k;
    for (int x = 0; x < FEATURES_NRES; x++) {
        unsigned bit = 1u << x;
        int32_t k = r->resreq[x];

        if (k < 0 || (first >= 0 && k >= first))
            continue;
        if ((m->has_res & bit) != (r->qhas_res & bit) ||
            ((m->has_res & bit) && m->res[x] != r->qres[x]))
            first = k;
    }
    return first;
}

static uint32_t sim__field(const struct sim__rec *x, int lo)
{
    return lo ? x->lo : x->hi;
}

/* A stable LSD radix sort of a[0..n) by hi (lo == 0) or lo, in digits of
 * 11, 11 and 10 bits, skipping digits in which all keys agree; b is scratch
 * of n records. Returns a or b, whichever holds the result. */
static struct sim__rec *sim__radix(struct sim__rec *a, struct sim__rec *b, size_t n, int lo)
{
    static const int shift[3] = {0, 11, 22};
    uint32_t count[3][2048];
    size_t i;

    memset(count, 0, sizeof(count));
    for (i = 0; i < n; i++) {
        uint32_t k = sim__field(&a[i], lo);

        count[0][k & 2047]++;
        count[1][(k >> 11) & 2047]++;
        count[2][k >> 22]++;
    }
    for (int d = 0; d < 3; d++) {
        uint32_t sum = 0, *c = count[d];
        struct sim__rec *t;

        if (c[(sim__field(&a[0], lo) >> shift[d]) & 2047] == n)
            continue; /* every key has this digit: nothing to do */
        for (int v = 0; v < 2048; v++) {
            uint32_t x = c[v];

            c[v] = sum;
            sum += x;
        }
        for (i = 0; i < n; i++)
            b[c[(sim__field(&a[i], lo) >> shift[d]) & 2047]++] = a[i];
        t = a;
        a = b;
        b = t;
    }
    return a;
}

/* Orders rec[0..n), whose hi are equal and whose idx ascend, by lo, keeping
 * idx order among equal lo; scratch holds n records. Equal scores are the
 * common case and need nothing. */
static void sim__ties(struct sim__rec *rec, struct sim__rec *scratch, size_t n)
{
    size_t i;

    for (i = 1; i < n && rec[i - 1].lo <= rec[i].lo; i++)
        ;
    if (i == n)
        return;
    if (n <= 32) {
        /* insertion sort: stable, and cheapest for a handful */
        for (i = 1; i < n; i++) {
            struct sim__rec x = rec[i];
            size_t j = i;

            for (; j > 0 && rec[j - 1].lo > x.lo; j--)
                rec[j] = rec[j - 1];
            rec[j] = x;
        }
        return;
    }
    if (sim__radix(rec, scratch, n, 1) != rec)
        memcpy(rec, scratch, n * sizeof(*rec));
}

/* Sorts r->rec[0..n) (idx ascending on entry) by score descending, then idx
 * ascending: stable radix sorts by hi, then by lo within runs of equal hi
 * (scores within a relative 2^-20 of each other). */
static void sim__sort(struct sim_ranker *r, size_t n)
{
    struct sim__rec *a, *b;
    size_t i, j;

    if (n < 2)
        return;
    a = sim__radix(r->rec, r->rec2, n, 0);
    b = a == r->rec ? r->rec2 : r->rec;
    r->rec = a;
    r->rec2 = b;
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && a[j].hi == a[i].hi; j++)
            ;
        if (j - i > 1)
            sim__ties(a + i, b + i, j - i);
    }
}

/*
 * The exact comparison.
 *
 * A score is (I + sum_x w_x * lo_x / hi_x) / D: I and D are sums of weights
 * in integers of 10^-9 (I the matched items, D the denominator with every
 * counted resource's weight), and each resource x adds its weight times a
 * ratio of two exact decimals (sim__term()). sim_rank() computes it in
 * doubles: I and D convert with a relative error of at most u = 2^-53, each
 * resource value is the double nearest to its decimal (error u), a ratio
 * adds one rounding, w * ratio one, the at most four additions of
 * non-negative terms one each, the division one: at most 10u in all, so the
 * double is within 2^-49 of the exact score, relatively. Two doubles more
 * than SIM__NEAR = 2^-40 apart (relatively) therefore order their exact
 * scores the same way; closer ones, and the threshold when a score is that
 * close to it, are decided by sim__exact().
 *
 * sim__exact() writes the score as the fraction P/Q of big naturals: with
 * the ratios lo_x / hi_x as integers p_x / q_x over a common power of ten,
 * H = prod q_x, P = I * H + sum_x w_x * p_x * H / q_x and Q = D * H. Bounds:
 * a resource is below 2^63 with at most 9 decimals, so p, q < 2^63 * 10^9 <
 * 2^93, H < 2^279, D < 2^63 (policy.h: 2^20 items of at most 10^12 each,
 * and three resources) and Q < 2^342; P <= Q as the score is at most 1. The
 * cross products of two scores are below 2^684: EXACT_BIG_LIMBS holds them.
 * Ratios of 1 (equal sides) fold into I and ratios of 0 drop, so the big
 * arithmetic only sees resources that differ.
 */

/* The ratio resource x adds to member m's score, as lo / hi with lo <= hi
 * (equal when it is 1, lo 0 when it is 0); 0 when x adds nothing. As
 * sim__ratio() and sim__cover(), on the exact decimals. */
static int sim__term(const struct sim_ranker *r, const struct sim__member *m, int x,
                     struct exact_dec *lo, struct exact_dec *hi)
{
    unsigned bit = 1u << x;
    struct exact_dec a = r->qdec[x], b = m->rdec[x];

    if (!r->resw[x] || !(r->qhas_res & m->has_res & bit))
        return 0;
    if (r->mode == POLICY_COVERAGE) {
        /* min(1, b / a), 1 when a is 0 */
        *hi = a;
        *lo = a.digits && exact_dec_cmp(b, a) < 0 ? b : a;
        return 1;
    }
    /* min / max, 1 when both are 0 */
    if (exact_dec_cmp(a, b) <= 0) {
        *lo = a;
        *hi = b;
    } else {
        *lo = b;
        *hi = a;
    }
    if (!hi->digits)
        *lo = *hi;
    return 1;
}

/* A candidate's score in exact form: (inter + sum_i w[i] * lo[i] / hi[i]) /
 * den, with 0 < lo[i] < hi[i]; ratios of 1 are folded into inter, ratios
 * of 0 dropped. */
struct sim__form {
    int64_t inter, den;
    int nt;
    int64_t w[FEATURES_NRES];
    struct exact_dec lo[FEATURES_NRES], hi[FEATURES_NRES];
};

static void sim__form(const struct sim_ranker *r, const struct sim_pool *p, size_t c,
                      struct sim__form *f)
{
    const struct sim__member *m = &p->m[r->tmp[c].member];

    f->inter = r->ci[c];
    f->den = r->cd[c];
    f->nt = 0;
    if (f->den <= 0) { /* scores 0 */
        f->inter = 0;
        f->den = 1;
        return;
    }
    for (int x = 0; x < FEATURES_NRES; x++) {
        struct exact_dec lo, hi;

        if (!sim__term(r, m, x, &lo, &hi))
            continue;
        if (exact_dec_cmp(lo, hi) == 0) { /* 1, also as 0 / 0 */
            f->inter += r->resw[x];
            continue;
        }
        if (!lo.digits)
            continue;
        f->w[f->nt] = r->resw[x];
        f->lo[f->nt] = lo;
        f->hi[f->nt++] = hi;
    }
}

/* Whether a and b have the same fractional terms. */
static int sim__same_terms(const struct sim__form *a, const struct sim__form *b)
{
    if (a->nt != b->nt)
        return 0;
    for (int i = 0; i < a->nt; i++)
        if (a->w[i] != b->w[i] || exact_dec_cmp(a->lo[i], b->lo[i]) ||
            exact_dec_cmp(a->hi[i], b->hi[i]))
            return 0;
    return 1;
}

/* f as the fraction *num / *den of big naturals (see above). */
static void sim__frac(const struct sim__form *f, struct exact_big *num, struct exact_big *den)
{
    struct exact_big pq[FEATURES_NRES][2], h, t, u;

    for (int i = 0; i < f->nt; i++) {
        int e = f->lo[i].exp < f->hi[i].exp ? f->lo[i].exp : f->hi[i].exp;

        exact_big_set(&pq[i][0], f->lo[i].digits);
        exact_big_pow10(&pq[i][0], f->lo[i].exp - e);
        exact_big_set(&pq[i][1], f->hi[i].digits);
        exact_big_pow10(&pq[i][1], f->hi[i].exp - e);
    }
    exact_big_set(&h, 1);
    for (int i = 0; i < f->nt; i++) {
        t = h;
        exact_big_mul(&h, &t, &pq[i][1]);
    }
    exact_big_set(&t, (uint64_t)f->inter);
    exact_big_mul(num, &t, &h);
    exact_big_set(&t, (uint64_t)f->den);
    exact_big_mul(den, &t, &h);
    for (int i = 0; i < f->nt; i++) {
        /* w_i * p_i * prod of the other q */
        exact_big_set(&u, (uint64_t)f->w[i]);
        exact_big_mul(&t, &u, &pq[i][0]);
        for (int j = 0; j < f->nt; j++) {
            if (j == i)
                continue;
            u = t;
            exact_big_mul(&t, &u, &pq[j][1]);
        }
        exact_big_add(num, &t);
    }
}

/* Whether scores a and b (doubles) are close enough to need sim__exact(). */
static int sim__near(double a, double b)
{
    double d = a > b ? a - b : b - a;

    return d <= SIM__NEAR * (a > b ? a : b);
}

/* The exact order of candidates a and b's scores: -1, 0 or 1 as a's is
 * lower, equal or higher. */
static int sim__cmp_exact(const struct sim_ranker *r, const struct sim_pool *p, size_t a, size_t b)
{
    struct sim__form fa, fb;
    struct exact_big pa, qa, pb, qb, x, y;

    /* a double is 0 exactly when the score is: every term is >= 10^-28 */
    if (r->tmp[a].score == 0 && r->tmp[b].score == 0)
        return 0;
    sim__form(r, p, a, &fa);
    sim__form(r, p, b, &fb);
    /* the common cases need no big arithmetic */
    if (sim__same_terms(&fa, &fb)) {
        if (fa.den == fb.den)
            return (fa.inter > fb.inter) - (fa.inter < fb.inter);
        if (!fa.nt && fa.inter == 0 && fb.inter == 0)
            return 0;
    }
    sim__frac(&fa, &pa, &qa);
    sim__frac(&fb, &pb, &qb);
    exact_big_mul(&x, &pa, &qb);
    exact_big_mul(&y, &pb, &qa);
    return exact_big_cmp(&x, &y);
}

/* Whether candidate c's score (double: score) is below the threshold. */
static int sim__below(const struct sim_ranker *r, const struct sim_pool *p, size_t c, double score)
{
    struct exact_big num, den, x, y;
    struct sim__form f;
    double t = (double)r->thr / 1e9;

    if (!sim__near(score, t))
        return score < t;
    sim__form(r, p, c, &f);
    sim__frac(&f, &num, &den);
    exact_big_set(&x, 1000000000u);
    exact_big_mul(&y, &num, &x);
    exact_big_set(&num, (uint64_t)r->thr);
    exact_big_mul(&x, &num, &den);
    return exact_big_cmp(&y, &x) < 0;
}

/* Whether record a goes before record b: a higher exact score, or an equal
 * one and a lower index (the name order). */
static int sim__before(const struct sim_ranker *r, const struct sim_pool *p,
                       const struct sim__rec *a, const struct sim__rec *b)
{
    int c = sim__cmp_exact(r, p, a->idx, b->idx);

    return c > 0 || (c == 0 && a->idx < b->idx);
}

/* A stable merge sort of a[0..n) by sim__before(); tmp holds n records. */
static void sim__msort(const struct sim_ranker *r, const struct sim_pool *p, struct sim__rec *a,
                       struct sim__rec *tmp, size_t n)
{
    size_t h = n / 2, i = 0, j, k = 0;

    if (n < 2)
        return;
    sim__msort(r, p, a, tmp, h);
    sim__msort(r, p, a + h, tmp + h, n - h);
    if (sim__before(r, p, &a[h - 1], &a[h]))
        return;
    memcpy(tmp, a, n * sizeof(*a));
    for (j = h; i < h && j < n;)
        a[k++] = sim__before(r, p, &tmp[j], &tmp[i]) ? tmp[j++] : tmp[i++];
    while (i < h)
        a[k++] = tmp[i++];
    while (j < n)
        a[k++] = tmp[j++];
}

/* Whether records a[0..n) are in exact order; candidates whose scores are
 * equal in exact arithmetic get the first one's double, so that they are
 * equal in the result too. */
static int sim__in_order(struct sim_ranker *r, const struct sim_pool *p, const struct sim__rec *a,
                         size_t n)
{
    for (size_t k = 1; k < n; k++) {
        int c = sim__cmp_exact(r, p, a[k - 1].idx, a[k].idx);

        if (c < 0 || (c == 0 && a[k - 1].idx > a[k].idx))
            return 0;
        if (c == 0)
            r->tmp[a[k].idx].score = r->tmp[a[k - 1].idx].score;
    }
    return 1;
}

/* Puts r->rec[0..n), sorted by double, in exact order: only runs of near
 * doubles can be out of it (see above), and a run that is already in order,
 * as runs of equal scores are, costs one comparison per record. Unless all,
 * stops after the first run that holds an eligible candidate (or at once
 * when none is eligible): the runs up to it are all that decide the
 * selection. */
static void sim__exact_order(struct sim_ranker *r, const struct sim_pool *p, size_t n, int all)
{
    struct sim__rec *a = r->rec;
    size_t i, j, k;
    int eligible = 0;

    for (k = 0; k < n && !all && !eligible; k++)
        eligible = r->tmp[k].reason == SIM_ELIGIBLE;
    if (!all && !eligible)
        return;
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && sim__near(r->tmp[a[j - 1].idx].score, r->tmp[a[j].idx].score); j++)
            ;
        if (j - i > 1 && !sim__in_order(r, p, a + i, j - i)) {
            sim__msort(r, p, a + i, r->rec2 + i, j - i);
            sim__in_order(r, p, a + i, j - i);
        }
        for (k = i; k < j && !all; k++)
            if (r->tmp[a[k].idx].reason == SIM_ELIGIBLE)
                return;
    }
}

/* Fills out from r's sorted records: the candidates and the selection. */
static void sim__fill(const struct sim_ranker *r, struct sim_result *out, size_t n)
{
    out->n = n;
    out->selected = -1;
    for (size_t i = 0; i < n; i++) {
        out->cand[i] = r->tmp[r->rec[i].idx];
        if (out->selected < 0 && out->cand[i].reason == SIM_ELIGIBLE)
            out->selected = (long)i;
    }
}

int sim_rank(struct sim_ranker *r, const struct sim_pool *p, const struct policy *pol,
             const struct sim_query *q, struct sim_result *out)
{
    const struct features empty = {0};
    const struct features *qf = q->features ? q->features : &empty;
    uint32_t qname, alias;
    size_t n = 0, cap;

    if (!p->finished)
        return -EINVAL;
    if (qf->n > FEATURES_MAX_ITEMS)
        return -E2BIG;
    sim__prepare(r, p, pol, qf);
    qname = sim__str_lookup(p, q->name);
    alias = sim__str_lookup(p, q->alias);
    if (out->cap < p->nm) {
        out->cand = xreallocarray(out->cand, p->nm, sizeof(*out->cand));
        out->cap = p->nm;
    }
    cap = r->nrec;
    r->rec = sim__scratch(r->rec, &cap, p->nm ? p->nm : 1, sizeof(*r->rec));
    cap = r->nrec;
    r->rec2 = sim__scratch(r->rec2, &cap, p->nm ? p->nm : 1, sizeof(*r->rec2));
    cap = r->nrec;
    r->tmp = sim__scratch(r->tmp, &cap, p->nm ? p->nm : 1, sizeof(*r->tmp));
    cap = r->nrec;
    r->ci = sim__scratch(r->ci, &cap, p->nm ? p->nm : 1, sizeof(*r->ci));
    cap = r->nrec;
    r->cd = sim__scratch(r->cd, &cap, p->nm ? p->nm : 1, sizeof(*r->cd));
    r->nrec = cap;

    for (uint32_t i = 0; i < p->nm; i++) {
        const struct sim__member *m = &p->m[i];
        const uint32_t *ids = p->mitems + m->off;
        int64_t inter = 0, wb = 0, den;
        double score, num;
        struct sim_candidate *c;
        int32_t req = -1;
        uint64_t bits;

        if (m->name_id == qname || m->name_id == alias ||
            (m->vm_id != SIM__NONE && m->vm_id == qname))
            continue;
        for (uint32_t j = 0; j < m->nitems; j++) {
            int64_t w = r->catw[p->item_cat[ids[j]]];

            wb += w;
            if (r->stamp[ids[j]] == r->gen)
                inter += w;
        }
        num = (double)inter;
        if (pol->mode == POLICY_COVERAGE) {
            den = r->wa;
            for (int x = 0; x < FEATURES_NRES; x++) {
                if (!r->resw[x] || !(r->qhas_res & (1u << x)))
                    continue;
                den += r->resw[x];
                if (m->has_res & (1u << x))
                    num += (double)r->resw[x] * sim__cover(r->qres[x], m->res[x]);
            }
        } else {
            den = r->wa + wb - inter;
            for (int x = 0; x < FEATURES_NRES; x++) {
                unsigned bit = 1u << x;

                if (!r->resw[x] || !((r->qhas_res | m->has_res) & bit))
                    continue;
                den += r->resw[x];
                if (r->qhas_res & m->has_res & bit)
                    num += (double)r->resw[x] * sim__ratio(r->qres[x], m->res[x]);
            }
        }
        score = den > 0 ? num / (double)den : 0.0;
        if (!(score > 0))
            score = 0.0;
        if (score > 1)
            score = 1.0;
        if (r->nreq)
            req = sim__required(r, p, m);
        c = &r->tmp[n];
        c->member = i;
        c->required = req >= 0 ? (uint32_t)req : 0;
        c->score = score;
        r->ci[n] = inter;
        r->cd[n] = den;
        if (req >= 0)
            c->reason = SIM_REQUIRED_MISMATCH;
        else if (sim__below(r, p, n, score))
            c->reason = SIM_BELOW_THRESHOLD;
        else if (!(m->flags & SIM_MEMBER_TEMPLATE))
            c->reason = SIM_NO_TEMPLATE;
        else if (m->flags & SIM_MEMBER_SHARED_DISK)
            c->reason = SIM_SHARED_DISK;
        else
            c->reason = SIM_ELIGIBLE;
        c->disk =
            c->reason == SIM_SHARED_DISK && m->disk_id != SIM__NONE ? p->str[m->disk_id] : NULL;
        memcpy(&bits, &score, sizeof(bits));
        bits = ~bits;
        r->rec[n].hi = (uint32_t)(bits >> 32);
        r->rec[n].lo = (uint32_t)bits;
        r->rec[n].idx = (uint32_t)n;
        n++;
    }
    sim__sort(r, n);
    sim__exact_order(r, p, n, 0);
    sim__fill(r, out, n);
    r->nranked = n;
    return 0;
}

int sim_rank_exact(struct sim_ranker *r, const struct sim_pool *p, struct sim_result *res)
{
    if (res->n != r->nranked)
        return -EINVAL;
    sim__exact_order(r, p, r->nranked, 1);
    sim__fill(r, res, r->nranked);
    return 0;
}

void sim_explain(const struct sim_ranker *r, const struct sim_pool *p, const struct policy *pol,
                 uint32_t member, double *contrib, unsigned char *present)
{
    const struct sim__member *m = &p->m[member];
    const uint32_t *ids = p->mitems + m->off;

    for (size_t k = 0; k < pol->nweights; k++) {
        contrib[k] = 0;
        present[k] = k < r->nk && r->kcount[k] > 0;
    }
    /* per category: the weight times the number of matched items, so that
     * the figures read as the policy's weights ("0.3"), not as sums of
     * fixed-point fractions */
    for (size_t k = 0; k < pol->nweights; k++) {
        uint32_t matched = 0;
        int x = features_res_lookup(pol->weights[k].category);

        if (x >= 0) {
            unsigned bit = 1u << x;
            double w = pol->weights[k].weight;

            present[k] = ((r->qhas_res | m->has_res) & bit) != 0;
            if (!(r->qhas_res & m->has_res & bit))
                continue;
            contrib[k] = pol->mode == POLICY_COVERAGE ? w * sim__cover(r->qres[x], m->res[x])
                                                      : w * sim__ratio(r->qres[x], m->res[x]);
            continue;
        }
        for (uint32_t j = 0; j < m->nitems; j++) {
            uint32_t c = p->item_cat[ids[j]];

            if (r->catk[c] != (int32_t)k)
                continue;
            present[k] = 1;
            matched += r->stamp[ids[j]] == r->gen;
        }
        contrib[k] = pol->weights[k].weight * matched;
    }
}

const char *sim_reason_name(enum sim_reason reason)
{
    switch (reason) {
    case SIM_ELIGIBLE:
        return "";
    case SIM_REQUIRED_MISMATCH:
        return "RequiredMismatch";
    case SIM_BELOW_THRESHOLD:
        return "BelowThreshold";
    case SIM_NO_TEMPLATE:
        return "NoTemplate";
    case SIM_SHARED_DISK:
        return "SharedDisk";
    case SIM_NO_CAPACITY:
        return "NoCapacity";
    }
    return "Unknown";
}

char *sim_candidate_detail(const struct sim_candidate *c, const struct policy *pol)
{
    switch (c->reason) {
    case SIM_ELIGIBLE:
        break;
    case SIM_REQUIRED_MISMATCH:
        if (c->required < pol->nrequired)
            return xasprintf("required category %s differs", pol->required[c->required]);
        return xstrdup("a required category differs");
    case SIM_BELOW_THRESHOLD:
        return xasprintf("score %.4f is below the threshold %g", c->score, pol->threshold);
    case SIM_NO_TEMPLATE:
        return xstrdup("no data.vm to build a replacement from");
    case SIM_SHARED_DISK:
        return xstrdup(c->disk ? c->disk : "its template uses a disk that is not its own");
    case SIM_NO_CAPACITY:
        return xstrdup("its replacement fits no Ready, schedulable node");
    }
    return xstrdup("");
}

int sim_result_refuse(struct sim_result *res, size_t i, enum sim_reason reason)
{
    if (i >= res->n || reason == SIM_ELIGIBLE || reason > SIM_NO_CAPACITY)
        return -EINVAL;
    if (res->cand[i].reason == SIM_ELIGIBLE)
        res->cand[i].reason = reason;
    res->selected = -1;
    for (size_t k = 0; k < res->n; k++)
        if (res->cand[k].reason == SIM_ELIGIBLE) {
            res->selected = (long)k;
            break;
        }
    return 0;
}

double sim_round6(double x)
{
    return round(x * 1e6) / 1e6;
}

cJSON *sim_result_json(const struct sim_ranker *r, const struct sim_pool *p,
                       const struct policy *pol, const struct sim_query *q,
                       const struct sim_result *res, unsigned flags)
{
    cJSON *root = cJSON_CreateObject(), *cands;
    size_t nk = pol->nweights ? pol->nweights : 1;
    double *contrib = xcalloc(nk, sizeof(*contrib));
    unsigned char *present = xcalloc(nk, sizeof(*present));

    if (!root)
        abort();
    cJSON_AddItemToObject(root, "failed",
                          q->name ? cJSON_CreateString(q->name) : cJSON_CreateNull());
    cJSON_AddStringToObject(root, "mode", policy_mode_name(pol->mode));
    cJSON_AddNumberToObject(root, "threshold", pol->threshold);
    if (res->selected >= 0)
        cJSON_AddStringToObject(root, "selected",
                                sim_pool_name(p, res->cand[res->selected].member));
    else
        cJSON_AddNullToObject(root, "selected");
    cands = cJSON_AddArrayToObject(root, "candidates");
    for (size_t i = 0; i < res->n; i++) {
        const struct sim_candidate *c = &res->cand[i];
        cJSON *o = cJSON_CreateObject(), *co;

        cJSON_AddItemToArray(cands, o);
        cJSON_AddStringToObject(o, "name", sim_pool_name(p, c->member));
        cJSON_AddNumberToObject(o, "score", sim_round6(c->score));
        cJSON_AddBoolToObject(o, "eligible", c->reason == SIM_ELIGIBLE);
        cJSON_AddStringToObject(o, "reason", sim_reason_name(c->reason));
        if ((flags & SIM_JSON_DETAIL) && c->reason != SIM_ELIGIBLE) {
            char *d = sim_candidate_detail(c, pol);

            cJSON_AddStringToObject(o, "detail", d);
            free(d);
        }
        co = cJSON_AddObjectToObject(o, "contributions");
        sim_explain(r, p, pol, c->member, contrib, present);
        for (size_t k = 0; k < pol->nweights; k++)
            if (pol->weights[k].weight > 0 && present[k])
                cJSON_AddNumberToObject(co, pol->weights[k].category, sim_round6(contrib[k]));
    }
    free(contrib);
    free(present);
    return root;
}
