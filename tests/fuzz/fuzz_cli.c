/*
 * fuzz_cli — the whole `kvrecover score` command in-process (cli_main), on
 * three untrusted files: the input is a flags byte (bit 0: --output json,
 * bit 1: -v), then the policy, the pool and the failed VM separated by lines
 * "%%%". Covers what fuzz_yaml does not: the CLI's own loading (List items,
 * document counting, kinds), the table and its sanitising of names, and the
 * JSON output.
 *
 * Checks: the exit status is 0 or 2; with 2, exactly one line on the error
 * stream starting "kvrecover: " and nothing on the output; with 0, nothing
 * on the error stream and, for json, one object that parses.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmd/cli.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SEP "\n%%%\n"

static char fuzz_path[3][64];

/* Writes data[0..n) to path, replacing it. */
static void fuzz_write(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    FUZZ_ASSERT(f != NULL, "the temporary file opens");
    if (n)
        FUZZ_ASSERT(fwrite(data, 1, n, f) == n, "the temporary file is written");
    fclose(f);
}

/* The next part of the input up to a separator (or the end); *skip is
 * where the part after it starts. */
static size_t fuzz_part(const uint8_t *data, size_t size, size_t *skip)
{
    size_t k = strlen(FUZZ_SEP);

    for (size_t i = 0; i + k <= size; i++)
        if (memcmp(data + i, FUZZ_SEP, k) == 0) {
            *skip = i + k;
            return i;
        }
    *skip = size;
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[12], *out = NULL, *err = NULL;
    size_t nout = 0, nerr = 0, skip;
    FILE *fo, *fe;
    int argc = 0, rc, flags;

    if (!fuzz_path[0][0])
        for (int i = 0; i < 3; i++)
            snprintf(fuzz_path[i], sizeof(fuzz_path[i]), "/tmp/kvr-fuzz-cli-%d-%d.yaml",
                     (int)getpid(), i);
    if (size < 1)
        return 0;
    flags = data[0];
    data++, size--;
    for (int i = 0; i < 3; i++) {
        size_t n = fuzz_part(data, size, &skip);

        fuzz_write(fuzz_path[i], data, n);
        data += skip;
        size -= skip;
    }
    argv[argc++] = "kvrecover";
    argv[argc++] = "score";
    argv[argc++] = "--policy";
    argv[argc++] = fuzz_path[0];
    argv[argc++] = "--pool";
    argv[argc++] = fuzz_path[1];
    argv[argc++] = "--failed";
    argv[argc++] = fuzz_path[2];
    if (flags & 1)
        argv[argc++] = "--output=json";
    if (flags & 2)
        argv[argc++] = "-v";
    argv[argc] = NULL;

    fo = open_memstream(&out, &nout);
    fe = open_memstream(&err, &nerr);
    rc = cli_main(argc, argv, fo, fe);
    fclose(fo);
    fclose(fe);
    FUZZ_ASSERT(rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE, "exit 0 or 2");
    if (rc == CLI_EXIT_USAGE) {
        FUZZ_ASSERT(nout == 0, "nothing on stdout after bad input");
        FUZZ_ASSERT(nerr > 11 && strncmp(err, "kvrecover: ", 11) == 0, "kvrecover: FILE: ...");
        FUZZ_ASSERT(memchr(err, '\n', nerr) == err + nerr - 1, "exactly one line on stderr");
        FUZZ_ASSERT(strlen(err) == nerr, "no NUL byte in the message");
    } else {
        FUZZ_ASSERT(nerr == 0, "nothing on stderr when scoring ran");
        FUZZ_ASSERT(strlen(out) == nout, "no NUL byte in the output");
        if (flags & 1) {
            cJSON *j = cJSON_Parse(out);

            FUZZ_ASSERT(cJSON_IsObject(j), "--output json prints one object");
            cJSON_Delete(j);
        }
    }
    free(out);
    free(err);
    return 0;
}
