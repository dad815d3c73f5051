/*
 * fuzz_quantity — Kubernetes quantities from untrusted text: quantity_parse()
 * on the input as a string, quantity_from_json() on the same text as a JSON
 * string and on the value as a number, and quantity_format() into buffers of
 * every small size.
 *
 * Checks: a parsed value is finite, >= 0 and below QUANTITY_LIMIT; formatting
 * always NUL-terminates within the buffer; what quantity_format() writes
 * parses back to (nearly) the same value.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/xalloc.h"
#include "fuzz_check.h"
#include "sim/quantity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = xstrndup((const char *)data, size);
    char *err = NULL, out[64];
    double v = -1, back = -1;
    cJSON *j;
    int rc;

    rc = quantity_parse(s, &v, &err);
    fuzz_check_result(rc, err, "quantity_parse");
    err = NULL;
    j = cJSON_CreateString(s);
    {
        double w = -1;
        int rj = quantity_from_json(j, &w, &err);

        fuzz_check_result(rj, err, "quantity_from_json(string)");
        FUZZ_ASSERT((rj == 0) == (rc == 0), "a JSON string parses as the bare text does");
        FUZZ_ASSERT(rj || w == v, "same value from a JSON string");
    }
    cJSON_Delete(j);
    if (rc == 0) {
        FUZZ_ASSERT(isfinite(v) && v >= 0 && v < QUANTITY_LIMIT, "a quantity is in [0, 2^63)");
        for (size_t n = 0; n <= sizeof(out); n++) {
            memset(out, 'x', sizeof(out));
            quantity_format(v, out, n);
            if (n)
                FUZZ_ASSERT(memchr(out, '\0', n) != NULL, "quantity_format NUL-terminates");
            FUZZ_ASSERT(n == sizeof(out) || out[n] == 'x', "no write past the buffer");
        }
        quantity_format(v, out, sizeof(out));
        err = NULL;
        rc = quantity_parse(out, &back, &err);
        if (rc)
            fprintf(stderr, "format %.17g -> \"%s\": %s\n", v, out, err ? err : "");
        fuzz_check_result(rc, err, "quantity_parse(quantity_format())");
        FUZZ_ASSERT(rc == 0, "what quantity_format writes parses");
        /* six significant digits, so 5e-6 relative; subnormals lose more */
        FUZZ_ASSERT(v < 1e-300 || fabs(back - v) <= 1e-5 * v, "formatting round-trips");

        err = NULL;
        j = cJSON_CreateNumber(v);
        rc = quantity_from_json(j, &back, &err);
        fuzz_check_result(rc, err, "quantity_from_json(number)");
        FUZZ_ASSERT(rc == 0 && back == v, "a valid value is a valid JSON number");
        cJSON_Delete(j);
    }
    free(s);
    return 0;
}
