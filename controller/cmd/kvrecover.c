/*
 * kvrecover — the offline CLI: `kvrecover score` ranks a spec pool against a
 * failed VM from YAML files, as the controller would (see cli.h).
 *
 * main() holds the whole output in memory and writes it only once the
 * command has finished, so that the output is all or nothing: a run that
 * dies half-way (out of memory aborts, xalloc.h) prints no partial ranking
 * a script could take for a whole one. Must never: exit 0 without having
 * written every byte of the result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "cmd/cli.h"

int main(int argc, char **argv)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out;
    int rc, failed;

    xalloc_init();
    out = open_memstream(&text, &len);
    if (!out)
        xalloc_oom(0); /* open_memstream fails only for lack of memory */
    rc = cli_main(argc, argv, out, stderr);
    /* a memory stream fails to grow only for lack of memory */
    failed = ferror(out) != 0;
    failed |= fclose(out) != 0;
    if (failed) {
        free(text);
        if (rc == CLI_EXIT_IO)
            return rc; /* cli_main() has said it could not write */
        xalloc_oom(0);
    }
    if (len && (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)) {
        fprintf(stderr, "kvrecover: cannot write the output: %s\n", strerror(errno));
        rc = CLI_EXIT_IO;
    }
    free(text);
    return rc;
}
