/*
 * kvrecover — the offline CLI. Being built (issue 4): for now it only
 * answers --version so that the build links.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("kvrecover 0.1.0-dev");
        return 0;
    }
    fputs("kvrecover: not built yet\n", stderr);
    return 1;
}
