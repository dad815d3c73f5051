/*
 * yaml — YAML text into cJSON trees, with libyaml's event parser. See yaml.h.
 *
 * The tree is built with an explicit stack of open collections, so nesting
 * costs no C stack; the stack is capped at YAML_MAX_DEPTH because cJSON's own
 * printing, copying and freeing recurse. Aliases are refused (the API policy)
 * or expanded by copying the anchored subtree, after checking the copy
 * against the node budget and the byte budget: an alias bomb is refused
 * before it is built, not after memory runs out. Each anchor remembers how
 * many nodes and bytes it holds, so that check costs nothing.
 *
 * Must never: trust the input's size, depth or encoding; leave a partly built
 * tree behind on error; return a tree missing nodes cJSON failed to allocate.
 */
#include "base/yaml.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/hash.h"
#include "base/xalloc.h"

const struct yaml_opts yaml_opts_file = {.alias_bytes = YAML_MAX_ALIAS_BYTES};

/* Mapping keys are checked for duplicates through this small hash set once a
 * mapping outgrows a linear scan; without it a hostile mapping with a million
 * keys would take a quadratic time to load. */
#define YAML__SCAN_KEYS 16

struct yaml__keyset {
    const char **slot; /* key strings owned by the mapping's items, or NULL */
    size_t cap;        /* slots, a power of two */
    size_t used;       /* keys stored */
};

struct yaml__frame {
    cJSON *node;              /* the open sequence or mapping */
    char *anchor;             /* its anchor, registered when it closes */
    size_t first_node;        /* node count when it opened: its size later */
    size_t first_byte;        /* byte count when it opened, likewise */
    char *key;                /* a mapping's key awaiting its value */
    struct yaml__keyset keys; /* a large mapping's keys */
    size_t nkeys;             /* a mapping's keys so far */
};

struct yaml__anchor {
    char *name;   /* the anchor's name */
    cJSON *node;  /* the anchored node, owned by the document tree... */
    int owned;    /* ...or by this entry, when it was a mapping key */
    size_t nodes; /* how many nodes it holds, for the node budget */
    size_t bytes; /* how many bytes it holds, for the alias byte budget */
};

struct yaml__state {
    struct yaml__frame *stack; /* open collections, innermost last */
    size_t depth;              /* frames in use */
    struct yaml__anchor *anchors;
    size_t nanchors, anchors_cap;
    size_t nodes;       /* nodes created so far in this document, aliases expanded */
    size_t bytes;       /* bytes they hold (see yaml__bytes), aliases expanded */
    size_t alias_bytes; /* bytes alias expansion added in the whole stream */
    size_t max_nodes;   /* the node budget per document */
    const struct yaml_opts *opts;
    cJSON *root;    /* the current document's root, once attached */
    char *err;      /* the first error */
    yaml_mark_t at; /* where the current event starts */
};

/* What a node costs, as the byte budget counts it: its struct and the string
 * it holds (a scalar's text, which becomes a value or a key). */
static size_t yaml__bytes(size_t text_len)
{
    return sizeof(cJSON) + text_len + 1;
}

/* cJSON returns NULL when an allocation fails and xalloc_init() was not
 * called; a dropped node would leave a truncated tree, so fail loudly. */
static cJSON *yaml__node(cJSON *node)
{
    if (!node)
        xalloc_oom(sizeof(cJSON));
    return node;
}

static uint64_t yaml__hash(const char *s)
{
    return hash_fnv_str(HASH_TABLE_INIT, s);
}

/* Adds key to the set; returns 0, or -EEXIST when it is already there. */
static int yaml__keyset_add(struct yaml__keyset *ks, const char *key)
{
    if (ks->used * 2 >= ks->cap) {
        struct yaml__keyset bigger = {.cap = ks->cap ? ks->cap * 2 : 64};

        bigger.slot = xcalloc(bigger.cap, sizeof(*bigger.slot));
        for (size_t i = 0; i < ks->cap; i++)
            if (ks->slot[i])
                yaml__keyset_add(&bigger, ks->slot[i]);
        free(ks->slot);
        *ks = bigger;
    }
    for (size_t i = yaml__hash(key) & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
        if (!ks->slot[i]) {
            ks->slot[i] = key;
            ks->used++;
            return 0;
        }
        if (strcmp(ks->slot[i], key) == 0)
            return -EEXIST;
    }
}

static void yaml__fail(struct yaml__state *st, const char *fmt, const char *arg)
{
    char *what;

    if (st->err)
        return;
    what = xasprintf(fmt, arg ? arg : "");
    st->err = xasprintf("line %zu column %zu: %s", st->at.line + 1, st->at.column + 1, what);
    free(what);
}

/* Counts n more nodes holding bytes more bytes against the node budget. */
static int yaml__count(struct yaml__state *st, size_t n, size_t bytes)
{
    if (n > st->max_nodes || st->nodes > st->max_nodes - n) {
        char max[32];

        snprintf(max, sizeof(max), "%zu", st->max_nodes);
        yaml__fail(st, "document too large: more than %s nodes (aliases expanded)", max);
        return -EINVAL;
    }
    st->nodes += n;
    st->bytes += bytes;
    return 0;
}

/* The API policy (yaml.h): any alias, known anchor or not, is refused. */
static int yaml__alias_refused(struct yaml__state *st)
{
    const struct yaml_opts *o = st->opts;

    if (o->alias_bytes)
        return 0;
    if (!st->err)
        st->err = xasprintf("aliases are not allowed in %s (at line %zu)",
                            o->source ? o->source : "this text", st->at.line + 1);
    return -EINVAL;
}

/* The file policy (yaml.h): the copy a counts against the byte budget and
 * the node budget. */
static int yaml__alias_fits(struct yaml__state *st, const struct yaml__anchor *a)
{
    const struct yaml_opts *o = st->opts;
    char *what;

    if (a->bytes > o->alias_bytes - st->alias_bytes) {
        what =
            xasprintf("too large once aliases are expanded: more than %zu bytes", o->alias_bytes);
        yaml__fail(st, "%s", what);
        free(what);
        return -EINVAL;
    }
    if (yaml__count(st, a->nodes, a->bytes))
        return -EINVAL;
    st->alias_bytes += a->bytes;
    return 0;
}

static int yaml__matches(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* YAML 1.2 core schema numbers: decimal ints and floats, 0x/0o ints, and
 * .inf/.nan. Returns 1 with *out set when s is one. */
static int yaml__number(const char *s, double *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninf[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
    const char *p = s;
    char *end;
    int digits = 0;

    if (yaml__matches(s, inf)) {
        *out = INFINITY;
        return 1;
    }
    if (yaml__matches(s, ninf)) {
        *out = -INFINITY;
        return 1;
    }
    if (yaml__matches(s, nan)) {
        *out = NAN;
        return 1;
    }
    if ((s[0] == '0') && (s[1] == 'x' || s[1] == 'o') && s[2]) {
        int base = s[1] == 'x' ? 16 : 8;

        for (p = s + 2; *p; p++)
            if (base == 16 ? !isxdigit((unsigned char)*p) : (*p < '0' || *p > '7'))
                return 0;
        errno = 0;
        unsigned long long v = strtoull(s + 2, &end, base);
        if (errno)
            return 0;
        *out = (double)v;
        return 1;
    }
    /* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    if (*p == '-' || *p == '+')
        p++;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits++;
    }
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return 0;
    *out = strtod(s, &end);
    return 1;
}

static cJSON *yaml__scalar(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    const char *text = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    double num;

    if (tag && strcmp(tag, YAML_STR_TAG) == 0)
        return yaml__node(cJSON_CreateString(text));
    if (!plain && !(tag && strcmp(tag, "!") != 0))
        return yaml__node(cJSON_CreateString(text));
    if (yaml__matches(text, nulls))
        return yaml__node(cJSON_CreateNull());
    if (yaml__matches(text, trues))
        return yaml__node(cJSON_CreateTrue());
    if (yaml__matches(text, falses))
        return yaml__node(cJSON_CreateFalse());
    if (yaml__number(text, &num)) {
        cJSON *n = yaml__node(cJSON_CreateNumber(num));

        /* Keep the text as written: "1.10" is not "1.1" as a feature value.
         * cJSON prints numbers from valuedouble and frees valuestring. */
        n->valuestring = xstrdup(text);
        return n;
    }
    return yaml__node(cJSON_CreateString(text));
}

/* Hands a finished node to its parent (or makes it the root), registering
 * its anchor. Takes ownership of node and anchor. */
static int yaml__attach(struct yaml__state *st, cJSON *node, char *anchor, size_t nodes,
                        size_t bytes)
{
    struct yaml__frame *top = st->depth ? &st->stack[st->depth - 1] : NULL;

    if (anchor) {
        /* A redefined anchor shadows the earlier one: search from the end. */
        if (st->nanchors == st->anchors_cap) {
            st->anchors_cap = st->anchors_cap ? st->anchors_cap * 2 : 8;
            st->anchors = xreallocarray(st->anchors, st->anchors_cap, sizeof(*st->anchors));
        }
        st->anchors[st->nanchors++] = (struct yaml__anchor){anchor, node, 0, nodes, bytes};
    }
    if (!top) {
        st->root = node;
        return 0;
    }
    if (cJSON_IsArray(top->node)) {
        cJSON_AddItemToArray(top->node, node);
        return 0;
    }
    if (!top->key) {
        /* The node is a key: only scalars make keys. */
        if (cJSON_IsArray(node) || cJSON_IsObject(node)) {
            if (anchor)
                st->anchors[st->nanchors - 1].owned = 1;
            else
                cJSON_Delete(node);
            yaml__fail(st, "a mapping key must be a scalar%s", NULL);
            return -EINVAL;
        }
        if (node->valuestring)
            top->key = xstrdup(node->valuestring);
        else
            top->key = xstrdup(cJSON_IsNull(node) ? "null" : cJSON_IsTrue(node) ? "true" : "false");
        if (anchor)
            st->anchors[st->nanchors - 1].owned = 1; /* "&k key: v" may be aliased later */
        else
            cJSON_Delete(node);
        return 0;
    }
    int dup = 0;
    if (top->nkeys < YAML__SCAN_KEYS) {
        dup = cJSON_GetObjectItemCaseSensitive(top->node, top->key) != NULL;
    } else {
        if (top->nkeys == YAML__SCAN_KEYS)
            for (cJSON *it = top->node->child; it; it = it->next)
                yaml__keyset_add(&top->keys, it->string);
    }
    if (!cJSON_AddItemToObject(top->node, top->key, node))
        xalloc_oom(strlen(top->key) + 1); /* the key's copy failed */
    if (!dup && top->nkeys >= YAML__SCAN_KEYS)
        dup = yaml__keyset_add(&top->keys, node->string) == -EEXIST;
    if (dup) {
        yaml__fail(st, "duplicate mapping key \"%s\"", top->key);
        free(top->key);
        top->key = NULL;
        return -EINVAL;
    }
    top->nkeys++;
    free(top->key);
    top->key = NULL;
    return 0;
}

static char *yaml__anchor_name(const yaml_char_t *a)
{
    return a ? xstrdup((const char *)a) : NULL;
}

static int yaml__event(struct yaml__state *st, const yaml_event_t *ev)
{
    struct yaml__frame *f;
    cJSON *node;

    st->at = ev->start_mark;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        size_t bytes = yaml__bytes(ev->data.scalar.length);

        if (yaml__count(st, 1, bytes))
            return -EINVAL;
        return yaml__attach(st, yaml__scalar(ev), yaml__anchor_name(ev->data.scalar.anchor), 1,
                            bytes);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (st->depth == YAML_MAX_DEPTH) {
            yaml__fail(st, "nested deeper than %s levels", "64");
            return -EINVAL;
        }
        if (yaml__count(st, 1, yaml__bytes(0)))
            return -EINVAL;
        f = &st->stack[st->depth++];
        memset(f, 0, sizeof(*f));
        f->first_node = st->nodes - 1;
        f->first_byte = st->bytes - yaml__bytes(0);
        if (ev->type == YAML_SEQUENCE_START_EVENT) {
            f->node = yaml__node(cJSON_CreateArray());
            f->anchor = yaml__anchor_name(ev->data.sequence_start.anchor);
        } else {
            f->node = yaml__node(cJSON_CreateObject());
            f->anchor = yaml__anchor_name(ev->data.mapping_start.anchor);
        }
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        f = &st->stack[--st->depth];
        free(f->key); /* a key without a value is not possible in valid YAML */
        free(f->keys.slot);
        return yaml__attach(st, f->node, f->anchor, st->nodes - f->first_node,
                            st->bytes - f->first_byte);
    case YAML_ALIAS_EVENT:
        if (yaml__alias_refused(st))
            return -EINVAL;
        for (size_t i = st->nanchors; i-- > 0;) {
            struct yaml__anchor *a = &st->anchors[i];

            if (strcmp(a->name, (const char *)ev->data.alias.anchor) != 0)
                continue;
            if (yaml__alias_fits(st, a))
                return -EINVAL;
            node = yaml__node(cJSON_Duplicate(a->node, 1));
            return yaml__attach(st, node, NULL, a->nodes, a->bytes);
        }
        yaml__fail(st, "unknown alias \"*%s\"", (const char *)ev->data.alias.anchor);
        return -EINVAL;
    default:
        return 0;
    }
}

static void yaml__reset_document(struct yaml__state *st)
{
    while (st->depth) {
        struct yaml__frame *f = &st->stack[--st->depth];

        cJSON_Delete(f->node);
        free(f->anchor);
        free(f->key);
        free(f->keys.slot);
    }
    for (size_t i = 0; i < st->nanchors; i++) {
        free(st->anchors[i].name);
        if (st->anchors[i].owned)
            cJSON_Delete(st->anchors[i].node);
    }
    st->nanchors = 0;
    cJSON_Delete(st->root);
    st->root = NULL;
}

int yaml_parse_opts(const char *text, size_t len, const struct yaml_opts *opts, cJSON **docs,
                    char **err)
{
    static const struct yaml_opts api = {0};
    struct yaml__state st = {0};
    yaml_parser_t parser;
    yaml_event_t ev;
    const char *nul = memchr(text, '\0', len);
    cJSON *out = NULL;
    int rc = 0, done = 0;

    *docs = NULL;
    *err = NULL;
    if (nul) {
        *err = xasprintf("binary content: NUL byte at offset %zu", (size_t)(nul - text));
        return -EINVAL;
    }
    st.opts = opts ? opts : &api;
    st.max_nodes = st.opts->max_nodes ? st.opts->max_nodes : YAML_MAX_NODES;
    if (!yaml_parser_initialize(&parser))
        xalloc_oom(sizeof(parser)); /* libyaml fails here only when out of memory */
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    st.stack = xcalloc(YAML_MAX_DEPTH, sizeof(*st.stack));
    out = yaml__node(cJSON_CreateArray());
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            /* libyaml allocates with plain malloc and reports a failure as
             * a parse error; it is not one */
            if (parser.error == YAML_MEMORY_ERROR)
                xalloc_oom(0);
            st.at = parser.problem_mark;
            yaml__fail(&st, "%s", parser.problem ? parser.problem : "invalid YAML");
            rc = -EINVAL;
            goto out;
        }
        if (ev.type == YAML_DOCUMENT_END_EVENT) {
            /* An empty document ("---" alone) is a null: not a document. */
            if (st.root && !cJSON_IsNull(st.root)) {
                cJSON_AddItemToArray(out, st.root);
                st.root = NULL;
            }
            yaml__reset_document(&st);
            /* The node budget is per document: anchors do not cross documents,
             * so only aliases inside one document can multiply its size, and
             * without aliases a stream's nodes are bounded by its bytes. A
             * pool file of 100k small documents is legitimate. */
            st.nodes = 0;
            st.bytes = 0;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = yaml__event(&st, &ev);
        yaml_event_delete(&ev);
        if (rc)
            goto out;
    }
out:
    yaml__reset_document(&st);
    free(st.anchors);
    free(st.stack);
    yaml_parser_delete(&parser);
    if (rc) {
        cJSON_Delete(out);
        *err = st.err ? st.err : xstrdup("invalid YAML");
        return rc;
    }
    free(st.err);
    *docs = out;
    return 0;
}

int yaml_parse(const char *text, size_t len, cJSON **docs, char **err)
{
    return yaml_parse_opts(text, len, NULL, docs, err);
}

int yaml_parse_one_opts(const char *text, size_t len, const struct yaml_opts *opts, cJSON **doc,
                        char **err)
{
    cJSON *docs;
    int rc = yaml_parse_opts(text, len, opts, &docs, err);
    int n;

    *doc = NULL;
    if (rc)
        return rc;
    n = cJSON_GetArraySize(docs);
    if (n > 1) {
        *err = xasprintf("expected one YAML document, found %d", n);
        cJSON_Delete(docs);
        return -EINVAL;
    }
    *doc = n ? cJSON_DetachItemFromArray(docs, 0) : yaml__node(cJSON_CreateNull());
    cJSON_Delete(docs);
    return 0;
}

int yaml_parse_one(const char *text, size_t len, cJSON **doc, char **err)
{
    return yaml_parse_one_opts(text, len, NULL, doc, err);
}
