/*
 * text — normalising and quoting strings. See text.h.
 *
 * Must never: depend on the locale (tolower() would), or let an input byte
 * break an error message over two lines.
 */
#include "base/text.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "base/xalloc.h"

static int text__space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char *text_norm(const char *s)
{
    size_t len = strlen(s);
    char *out;

    while (len && text__space(*s))
        s++, len--;
    while (len && text__space(s[len - 1]))
        len--;
    out = xstrndup(s, len);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

char *text_quote(const char *s)
{
    struct buf b = {0};
    size_t i;

    if (!s)
        return xstrdup("null");
    buf_puts(&b, "\"");
    for (i = 0; i < TEXT_QUOTE_MAX && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            buf_printf(&b, "\\%c", c);
        else if (c == '\n')
            buf_puts(&b, "\\n");
        else if (c == '\t')
            buf_puts(&b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(&b, "\\x%02x", c);
        else
            buf_append(&b, &s[i], 1);
    }
    buf_puts(&b, "\"");
    if (s[i])
        buf_puts(&b, "...");
    return buf_steal(&b);
}

char *text_name(const char *s)
{
    const char *p = s;

    for (; p && *p && p - s <= TEXT_QUOTE_MAX; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("\"\\:[]", *p))
            break;
    return p && p != s && !*p && p - s <= TEXT_QUOTE_MAX ? xstrdup(s) : text_quote(s);
}

int text_check_len(const char *s, size_t max, const char *where, char **err)
{
    /* strnlen first: a field far over its cap is measured in full only to
     * say how large it is */
    if (!s || max == SIZE_MAX || strnlen(s, max + 1) <= max)
        return 0;
    *err = xasprintf("%s: too large: %zu bytes (at most %zu)", where, strlen(s), max);
    return -EINVAL;
}

const char *text_json_type(const cJSON *v)
{
    if (cJSON_IsObject(v))
        return "a mapping";
    if (cJSON_IsArray(v))
        return "a list";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    return "null";
}
