/*
 * The evaluation loop: every test event of a split is ranked by every method against all new
 * products launched by its time, and scored with storefl_rank_metrics (HR@10, NDCG@10, AUC).
 *
 * Events are visited client by client (each client's in time order); metrics do not depend on the
 * visiting order, and this order lets a method hold one client's state at a time (a local-only
 * model, a personalised head, a TF-IDF profile).
 */
#ifndef STOREFL_EVAL_RUN_H
#define STOREFL_EVAL_RUN_H
#include <stddef.h>
#include <stdint.h>

#include "eval_data.h"

/* What a method sees for one event. */
typedef struct storefl_eval_ctx {
  const storefl_eval_data *data;
  const storefl_eval_split *split;
  const storefl_eval_event *event;
  uint32_t client;
  /* The client's clean lines (data line indices, time order) and how many are strictly before the
   * event's time: history = lines[0 .. nhistory). Later lines must not be used. */
  const uint32_t *lines;
  size_t nlines;
  size_t nhistory;
  /* Other products of the event's invoice (data product indices, distinct, target excluded): the
   * basket context. The order of lines within an invoice is unknown, so the whole rest of the
   * basket is the context. */
  const uint32_t *basket;
  size_t nbasket;
} storefl_eval_ctx;

/* A ranking method. Callbacks may be NULL when not needed. All return 0 or a storefl_err. */
typedef struct storefl_eval_method {
  const char *name;
  void *state;
  /* Before a client's events (lines/nlines as in the ctx, nhistory unused). */
  int (*begin_client)(void *state, const storefl_eval_ctx *ctx);
  /* scores[i] for candidate data product cands[i]; higher ranks first; ties count as random. */
  int (*score)(void *state, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n, float *scores);
  void (*destroy)(void *state);
} storefl_eval_method;

typedef struct storefl_eval_result {
  char method[32];
  size_t events, clients;
  double hr10, ndcg10, auc;       /* mean over events */
  double c_hr10, c_ndcg10, c_auc; /* mean over clients (each client's mean over its events) */
  double seconds; /* wall time in begin_client + score: per-client training (local, personal) included,
                     up-front training (central, federated) not */
} storefl_eval_result;

typedef void (*storefl_eval_progress)(void *arg, const char *method, size_t done, size_t total);

/* Runs every method over every event of s. results[i] belongs to methods[i]. */
int storefl_eval_run(const storefl_eval_data *d, const storefl_eval_split *s, storefl_eval_method *methods,
                     size_t nmethods, storefl_eval_result *results, storefl_eval_progress progress,
                     void *progress_arg);

/* Per-client line lists of a split (all clean lines of eligible clients with t < split end). */
typedef struct storefl_eval_client_lines {
  uint32_t *offsets; /* nclients + 1 */
  uint32_t *lines;
} storefl_eval_client_lines;
int storefl_eval_client_lines_build(const storefl_eval_data *d, const storefl_eval_split *s,
                                    storefl_eval_client_lines *out);
void storefl_eval_client_lines_free(storefl_eval_client_lines *cl);

/* Baselines. Each creates a method (state owned by the method; release with method->destroy). */
/* random: a constant score, i.e. the expected metrics of a random ranking. */
int storefl_eval_method_random(storefl_eval_method *m);
/* popularity: the client's own purchase lines of each new product in the adaptation window
 * [cut, adapt_end) (what a single store can count); zero-shot has no window, so every count is 0
 * and the method equals random. global = 1: counts over all clean lines of the retailer instead
 * (not computable by a single store; shown for reference). */
int storefl_eval_method_popularity(const storefl_eval_data *d, const storefl_eval_split *s, int global,
                                   storefl_eval_method *m);
/* tfidf: cosine between the TF-IDF vector of the descriptions of everything the client bought
 * before the event (history lines + the rest of the basket, one count per line) and the product's
 * description. Tokens: maximal runs of ASCII letters/digits, upper-cased; idf = ln(N / df) over the
 * N products of the catalogue (public data). */
int storefl_eval_method_tfidf(const storefl_eval_data *d, const storefl_eval_split *s,
                              storefl_eval_method *m);

#endif
