/*
 * Small order statistics for reports (latency percentiles of the load generator and the simulation).
 */
#ifndef STOREFL_STATS_H
#define STOREFL_STATS_H

#include <stddef.h>

/* The nearest-rank p-th percentile (0 < p <= 100) of v[0..n): the smallest value with at least p% of
 * the values at or below it. Sorts v in place. 0 when n is 0. */
double storefl_percentile(double *v, size_t n, double p);

#endif
