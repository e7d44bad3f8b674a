#include "benchutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
  if (n == 0)
    return 0;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_memcpy_bandwidth(size_t nbytes, int reps) {
  unsigned char *a = malloc(nbytes), *b = malloc(nbytes);
  if (!a || !b) {
    free(a);
    free(b);
    return 0;
  }
  memset(a, 1, nbytes);
  memset(b, 2, nbytes);
  double best = 1e30;
  for (int i = 0; i < reps; i++) {
    double t0 = bench_now();
    memcpy(b, a, nbytes);
    double t = bench_now() - t0;
    a[i % nbytes] = b[(i * 7) % nbytes]; /* keep the copy observable */
    if (t < best)
      best = t;
  }
  free(a);
  free(b);
  return (double)nbytes / best;
}

size_t bench_peak_rss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (size_t)ru.ru_maxrss * 1024;
}
