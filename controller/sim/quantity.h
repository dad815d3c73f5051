/*
 * quantity — Kubernetes resource quantities ("500m", "2", "1.5", "4Gi",
 * "4096Mi", "1G", "1e3") as plain numbers of base units.
 *
 * The grammar is Kubernetes' (apimachinery resource.Quantity): an optionally
 * signed decimal number, then one suffix — a binary SI suffix (Ki Mi Gi Ti Pi
 * Ei), a decimal SI suffix (n u m k M G T P E, or none) or a decimal exponent
 * (e3, E-2). Values are doubles: similarity only ever divides two quantities,
 * so an exact decimal type would buy nothing here.
 *
 * Refused with a message: anything outside the grammar, negative values, and
 * values of 2^63 or more (beyond Kubernetes' own int64 limit).
 */
#ifndef KVR_QUANTITY_H
#define KVR_QUANTITY_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Quantities must be below this, in base units: 2^63, so that every
 * accepted value fits Kubernetes' int64 (a double cannot hold 2^63 - 1). */
#define QUANTITY_LIMIT 9223372036854775808.0

/**
 * Parses s (the whole string, no surrounding spaces) into *out, in base
 * units: "500m" gives 0.5, "4Gi" gives 4294967296. Returns 0; or -EINVAL with
 * *err set to a one-line message that quotes s ("\"4Qi\" is not a valid
 * quantity", "\"-1\" must not be negative", "\"9Ei0\" ..."). The caller
 * frees *err; *out is untouched on error.
 */
int quantity_parse(const char *s, double *out, char **err);

/**
 * A quantity from a JSON or YAML value: a string is parsed as above; a number
 * is parsed from the text it was written with when the YAML loader kept it
 * (valuestring), else taken as it is, and must be finite, >= 0 and below
 * QUANTITY_LIMIT. Any other type is -EINVAL ("must be a quantity, not a
 * mapping"). Errors as quantity_parse().
 */
int quantity_from_json(const cJSON *v, double *out, char **err);

/**
 * Writes q into out (size n) for people: base units with a binary suffix when
 * q is a whole multiple of one ("4Gi"), else up to 6 significant digits
 * ("0.5", "1.5e+12"). Always NUL-terminates when n > 0.
 */
void quantity_format(double q, char *out, size_t n);

#endif
