/*
 * kvrecover — the offline CLI: `kvrecover score` ranks a spec pool against a
 * failed VM from YAML files, as the controller would (see cli.h).
 */
#include <stdio.h>

#include "cmd/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv, stdout, stderr);
}
