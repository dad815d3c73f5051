/*
 * cli — the offline `kvrecover` command.
 *
 * `kvrecover score` reads a RecoveryPolicy, the spec-pool ConfigMaps and a
 * failed VM from YAML files (CONTRACT.md), ranks the pool with the same
 * modules the controller uses (policy, pool, features, sim) and prints the
 * ranking as a table for people or one JSON object for scripts. It talks to
 * no cluster: the files given are the whole pool, and spec.selector and
 * spec.poolSelector are not applied to them.
 *
 * Every bad input ends in exit status 2 and exactly one line on the error
 * stream, "kvrecover: FILE: what is wrong", never in a crash, a hang or a
 * second line. The command lives in the library rather than in kvrecover.c so
 * that tests can run it in-process.
 */
#ifndef KVR_CLI_H
#define KVR_CLI_H

#include <stdio.h>

/* The version `kvrecover --version` prints. */
#define CLI_VERSION "0.1.0"

/* Largest input file read, in bytes; a bound on what a typo can load. */
#define CLI_MAX_FILE (256u << 20)

/* Exit statuses. */
#define CLI_EXIT_OK 0    /* help, version, or scoring ran (selected or not) */
#define CLI_EXIT_IO 1    /* the output could not be written */
#define CLI_EXIT_USAGE 2 /* bad input or a usage error */

/**
 * Runs the command line argv[0..argc) (argv[0] is the program name), writing
 * results and help to out and the one-line diagnostics to err. Returns the
 * process exit status, CLI_EXIT_*. Reads only the files named in argv ("-"
 * is standard input); frees everything it allocates before returning.
 */
int cli_main(int argc, char **argv, FILE *out, FILE *err);

#endif
