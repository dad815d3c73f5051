/*
 * quantity — Kubernetes quantities. See quantity.h.
 *
 * The grammar is checked by hand before strtod() sees the text, because
 * strtod() alone accepts far more than Kubernetes does (hex, "inf", "nan",
 * leading spaces). Must never: accept a value the API server would refuse,
 * or read past the string.
 */
#include "sim/quantity.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/xalloc.h"

struct quantity__suffix {
    const char *text; /* as written after the number */
    double factor;    /* base units per 1 */
};

static const struct quantity__suffix quantity__suffixes[] = {
    {"", 1.0},
    {"n", 1e-9},
    {"u", 1e-6},
    {"m", 1e-3},
    {"k", 1e3},
    {"M", 1e6},
    {"G", 1e9},
    {"T", 1e12},
    {"P", 1e15},
    {"E", 1e18},
    {"Ki", 1024.0},
    {"Mi", 1048576.0},
    {"Gi", 1073741824.0},
    {"Ti", 1099511627776.0},
    {"Pi", 1125899906842624.0},
    {"Ei", 1152921504606846976.0},
};

static int quantity__digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Returns the suffix's factor, or 0 when suf is neither an SI suffix nor a
 * decimal exponent ("e3", "E-2": strtod() has read those with the number). */
static double quantity__factor(const char *suf)
{
    const char *p = suf;

    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (quantity__digit(*p)) {
            while (quantity__digit(*p))
                p++;
            return *p ? 0.0 : 1.0;
        }
    }
    for (size_t i = 0; i < sizeof(quantity__suffixes) / sizeof(quantity__suffixes[0]); i++)
        if (strcmp(suf, quantity__suffixes[i].text) == 0)
            return quantity__suffixes[i].factor;
    return 0.0;
}

static int quantity__fail(const char *s, const char *what, char **err)
{
    char *q = text_quote(s);

    *err = xasprintf("%s %s", q, what);
    free(q);
    return -EINVAL;
}

int quantity_parse(const char *s, double *out, char **err)
{
    const char *p = s;
    int digits = 0, negative = 0;
    double factor, v;
    char *end;

    *err = NULL;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    while (quantity__digit(*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (quantity__digit(*p))
            p++, digits++;
    }
    if (!digits)
        return quantity__fail(s, "is not a valid quantity", err);
    factor = quantity__factor(p);
    if (factor == 0.0)
        return quantity__fail(s, "is not a valid quantity", err);
    if (negative)
        return quantity__fail(s, "must not be negative", err);
    /* The grammar is checked: strtod() reads the number and, for "1e3", the
     * exponent; for "1E" or "1Ei" it stops at the suffix. */
    errno = 0;
    v = strtod(s, &end);
    v *= factor;
    if (!isfinite(v) || v >= QUANTITY_LIMIT)
        return quantity__fail(s, "is too large (at most 2^63-1)", err);
    *out = v;
    return 0;
}

int quantity_from_json(const cJSON *v, double *out, char **err)
{
    char text[64];

    *err = NULL;
    if (cJSON_IsString(v))
        return quantity_parse(v->valuestring, out, err);
    if (!cJSON_IsNumber(v)) {
        *err = xasprintf("must be a quantity, not %s", text_json_type(v));
        return -EINVAL;
    }
    if (v->valuestring)
        return quantity_parse(v->valuestring, out, err);
    snprintf(text, sizeof(text), "%.17g", v->valuedouble);
    if (!isfinite(v->valuedouble))
        return quantity__fail(text, "is not a valid quantity", err);
    if (v->valuedouble < 0)
        return quantity__fail(text, "must not be negative", err);
    if (v->valuedouble >= QUANTITY_LIMIT)
        return quantity__fail(text, "is too large (at most 2^63-1)", err);
    *out = v->valuedouble;
    return 0;
}

void quantity_format(double q, char *out, size_t n)
{
    static const char *const bin[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
    double f = 1152921504606846976.0;

    if (n == 0)
        return;
    if (q >= 1024.0 && q == floor(q)) {
        for (size_t i = 0; i < sizeof(bin) / sizeof(bin[0]); i++, f /= 1024.0) {
            if (q >= f && fmod(q, f) == 0.0) {
                snprintf(out, n, "%.0f%s", q / f, bin[i]);
                return;
            }
        }
    }
    snprintf(out, n, "%.6g", q);
}
