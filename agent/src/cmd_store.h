/*
 * storefl-agent subcommands of the local store: ingest (import a CSV export) and partition (split a
 * retailer-wide export into one store per client).
 */
#ifndef STOREFL_CMD_STORE_H
#define STOREFL_CMD_STORE_H

int storefl_cmd_ingest(int argc, char **argv);
int storefl_cmd_partition(int argc, char **argv);

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE". On a match *value points to the
 * value, *i is advanced past it, and 1 is returned; a missing value prints an error and returns -1;
 * 0 means "not this option". */
int storefl_cmd_opt(int argc, char **argv, int *i, const char *name, const char **value);

/* Peak resident set size of this process in MiB (getrusage), for summaries. */
double storefl_cmd_peak_rss_mib(void);

/* Monotonic seconds, for rates. */
double storefl_cmd_now(void);

#endif
