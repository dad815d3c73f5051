/*
 * sim — the similarity engine. See sim.h.
 *
 * A pool interns every string once (names, vm labels, categories, values)
 * and every (category, value) item once, so that a member is an array of
 * item ids. A ranking first turns the policy and the failed VM into
 * per-category and per-item tables (stamps in the ranker's scratch space),
 * then scores each member with integer additions only, then sorts with a
 * stable radix sort on the score: members are already in name order, so a
 * stable sort by score gives CONTRACT.md's order (score descending, name
 * ascending) without comparing names.
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

#define SIM__NONE UINT32_MAX
/* Most members, strings or items a pool holds: ids are uint32 and
 * SIM__NONE is taken. */
#define SIM__MAX (UINT32_MAX - 1u)
/* A weight of 1.0 relative to the policy's largest weight. Items per side
 * are at most 2^20 and there are three resources, so sums stay below 2^62. */
#define SIM__ONE ((double)(1ull << 40))
/* Scores this close under the threshold still reach it: 0.5 computed as
 * 0.1/0.2 must not be "below 0.5". */
#define SIM__TOLERANCE 1e-9

struct sim__member {
    const char *name; /* owned by the pool's string table */
    uint32_t name_id; /* its string id */
    uint32_t vm_id;   /* string id of the kvrecover.io/vm label, or SIM__NONE */
    size_t off;       /* first item id in pool->mitems */
    uint32_t nitems;  /* item ids, ascending, no duplicates */
    unsigned has_res; /* bit (1u << FEATURES_x) when res[x] is known */
    unsigned flags;   /* SIM_MEMBER_* */
    uint32_t disk_id; /* string id of its disk detail, or SIM__NONE */
    double res[FEATURES_NRES];
    const void *data; /* the caller's */
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
    int64_t *catw;    /* fixed-point weight */
    int32_t *catk;    /* index in pol->weights, or -1 */
    uint32_t *catreq; /* index in pol->required + 1, or 0 */
    size_t ncat;
    /* per resource */
    int64_t resw[FEATURES_NRES];
    int32_t resreq[FEATURES_NRES]; /* index in pol->required, or -1 */
    /* the failed VM */
    int64_t wa;        /* W(A) of its items */
    unsigned qhas_res; /* its resources */
    double qres[FEATURES_NRES];
    uint32_t *qreq; /* per required category: its item count */
    uint32_t *mreq; /* per required category: the member's matched count */
    size_t nreq, capreq;
    uint32_t *kcount; /* per policy weight: its items in that category */
    size_t nk, capk;
    const struct features_item **qitems; /* sorted, for de-duplication */
    size_t nqitems;
    /* sorting */
    struct sim__rec *rec, *rec2;
    struct sim_candidate *tmp;
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
        m->res[r] = m->has_res & (1u << r) ? f->res[r] : 0;
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
    free(r->qitems);
    free(r->rec);
    free(r->rec2);
    free(r->tmp);
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
    double wmax = 0;
    size_t cap, n;

    for (size_t k = 0; k < pol->nweights; k++)
        if (pol->weights[k].weight > wmax)
            wmax = pol->weights[k].weight;
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
    for (size_t k = 0; k < pol->nweights; k++) {
        const char *cat = pol->weights[k].category;
        int64_t w = wmax > 0 ? llround(pol->weights[k].weight / wmax * SIM__ONE) : 0;
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
    r->nk = pol->nweights;
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
            if (k < (int32_t)pol->nweights && wmax > 0)
                r->wa += llround(pol->weights[k].weight / wmax * SIM__ONE);
        }
        for (k = 0; k < (int32_t)pol->nweights; k++)
            if (strcmp(pol->weights[k].category, it->category) == 0)
                r->kcount[k]++;
        if ((q = sim__required_index(pol, it->category)) >= 0)
            r->qreq[q]++;
    }
    r->qhas_res = qf->has_res & ((1u << FEATURES_NRES) - 1);
    for (int x = 0; x < FEATURES_NRES; x++)
        r->qres[x] = r->qhas_res & (1u << x) ? qf->res[x] : 0;
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

/* x >= 0 rounded to the nearest integer: llround() without the libm call,
 * in the ranking loop. */
static int64_t sim__round(double x)
{
    return (int64_t)(x + 0.5);
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
    r->nrec = cap;

    for (uint32_t i = 0; i < p->nm; i++) {
        const struct sim__member *m = &p->m[i];
        const uint32_t *ids = p->mitems + m->off;
        int64_t inter = 0, wb = 0, num, den;
        double score;
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
        num = inter;
        if (pol->mode == POLICY_COVERAGE) {
            den = r->wa;
            for (int x = 0; x < FEATURES_NRES; x++) {
                if (!r->resw[x] || !(r->qhas_res & (1u << x)))
                    continue;
                den += r->resw[x];
                if (m->has_res & (1u << x))
                    num += sim__round((double)r->resw[x] * sim__cover(r->qres[x], m->res[x]));
            }
        } else {
            den = r->wa + wb - inter;
            for (int x = 0; x < FEATURES_NRES; x++) {
                unsigned bit = 1u << x;

                if (!r->resw[x] || !((r->qhas_res | m->has_res) & bit))
                    continue;
                den += r->resw[x];
                if (r->qhas_res & m->has_res & bit)
                    num += sim__round((double)r->resw[x] * sim__ratio(r->qres[x], m->res[x]));
            }
        }
        score = den > 0 ? (double)num / (double)den : 0.0;
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
        if (req >= 0)
            c->reason = SIM_REQUIRED_MISMATCH;
        else if (score < pol->threshold - SIM__TOLERANCE)
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
    out->n = n;
    out->selected = -1;
    for (size_t i = 0; i < n; i++) {
        out->cand[i] = r->tmp[r->rec[i].idx];
        if (out->selected < 0 && out->cand[i].reason == SIM_ELIGIBLE)
            out->selected = (long)i;
    }
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
