/*
 * text — small string helpers the model parsers share.
 *
 * Normalising feature values and categories (trim, ASCII lower-case),
 * quoting untrusted text for one-line error messages, and naming a JSON
 * value's type in them. Pure: no I/O, no
 * global state.
 */
#ifndef KVR_TEXT_H
#define KVR_TEXT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Longest piece of untrusted input text_quote() copies into a message. */
#define TEXT_QUOTE_MAX 64

/**
 * A copy of s without leading and trailing ASCII whitespace, with ASCII
 * letters lower-cased (other bytes, e.g. UTF-8, are kept as they are). The
 * caller frees. Never NULL; s must not be NULL.
 */
char *text_norm(const char *s);

/**
 * s as a double-quoted, escaped string fit for a one-line message: quotes
 * and backslashes are escaped, control bytes are written as \n, \t or \xNN,
 * and text longer than TEXT_QUOTE_MAX bytes is cut with "..." after the
 * closing quote. NULL gives "null". The caller frees.
 */
char *text_quote(const char *s);

/**
 * s for a message as a name: as it is when it is short (at most
 * TEXT_QUOTE_MAX bytes), not empty and holds nothing that could mislead
 * (space, control bytes, quotes, backslashes, colons, brackets); else
 * text_quote(s). The caller frees.
 */
char *text_name(const char *s);

/**
 * The size cap on a field of untrusted text, checked before it is parsed or
 * copied: returns 0 when s holds at most max bytes (NULL is fine); else
 * -EINVAL with *err set to "WHERE: too large: N bytes (at most MAX)". Reads
 * at most max + 1 bytes of s unless it is too large. The caller frees *err.
 */
int text_check_len(const char *s, size_t max, const char *where, char **err);

/**
 * What kind of value v is, for messages such as "must be a mapping, not a
 * list": "a mapping", "a list", "a string", "a number", "a boolean", or
 * "null" (also for NULL). A static string.
 */
const char *text_json_type(const cJSON *v);

#endif
