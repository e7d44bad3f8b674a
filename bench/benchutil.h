/* Helpers for benchmarks: monotonic time, medians, and reference limits measured in the same run. */
#ifndef STOREFL_BENCHUTIL_H
#define STOREFL_BENCHUTIL_H
#include <stddef.h>

double bench_now(void);                      /* seconds, CLOCK_MONOTONIC */
double bench_median(double *v, size_t n);    /* sorts v in place */
/* Memory bandwidth of a read+write pass (memcpy) over nbytes, best of reps, in bytes/s. */
double bench_memcpy_bandwidth(size_t nbytes, int reps);
/* Peak RSS of this process so far, in bytes. */
size_t bench_peak_rss(void);

#endif
