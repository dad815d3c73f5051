/*
 * kvrecover-controller — entry point. Being built (issue 5): for now it only
 * answers --version so that the build links.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("kvrecover-controller 0.1.0-dev");
        return 0;
    }
    fputs("kvrecover-controller: not built yet\n", stderr);
    return 1;
}
