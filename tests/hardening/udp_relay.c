/*
 * UDP impairment relay for the hardening tests: sits between agents and the aggregator on
 * 127.0.0.1, forwarding every datagram through the real DTLS/CoAP stacks of both ends while
 * dropping a fraction of them and reordering others, reproducibly from a seed.
 *
 *   udp_relay LISTEN_PORT TARGET_PORT [--loss P] [--reorder R] [--seed S]
 *
 * Each client address gets its own upstream socket, so the aggregator sees one peer (one DTLS
 * session) per client, as without the relay. In each direction of each client, a datagram is dropped
 * with probability P; otherwise, with probability R, it is held back and sent after the next datagram
 * of the same direction (or after 50 ms if none follows): a swap of neighbours, which is what
 * reordering on a real path mostly looks like. At most MAX_CLIENTS clients are relayed (later ones
 * are ignored): memory is bounded. SIGINT/SIGTERM print the counters as one JSON line on stdout.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_DGRAM 65536
#define HOLD_MS 50
#define MAX_HELD 8192 /* larger datagrams are never held (DTLS records here are ~1.1 KB) */

typedef struct held {
  int used;
  size_t len;
  double since_ms;
  uint8_t buf[MAX_HELD];
} held;

typedef struct client {
  struct sockaddr_in addr; /* the agent's address, as seen on the listening socket */
  int up;                  /* socket connected to the aggregator */
  held hold[2];            /* [0] towards the aggregator, [1] towards the agent */
} client;

typedef struct counters {
  unsigned long long seen[2], dropped[2], reordered[2], sent[2];
} counters;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static uint64_t rng_state;
static double uniform(void) { /* xorshift64*: reproducible from the seed */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int lsock;
static client clients[MAX_CLIENTS];
static int nclients;
static struct sockaddr_in target;
static counters cnt;
static double p_loss, p_reorder;

/* Sends one datagram in direction dir (0: to the aggregator, 1: to the agent). A send failure is
 * counted as a loss: the relay models an unreliable network. */
static void emit(client *c, int dir, const uint8_t *b, size_t len) {
  ssize_t n = dir == 0 ? send(c->up, b, len, 0)
                       : sendto(lsock, b, len, 0, (const struct sockaddr *)&c->addr, sizeof c->addr);
  if (n == (ssize_t)len)
    cnt.sent[dir]++;
}

static void relay(client *c, int dir, const uint8_t *b, size_t len) {
  cnt.seen[dir]++;
  double u = uniform();
  if (u < p_loss) {
    cnt.dropped[dir]++;
    return;
  }
  held *h = &c->hold[dir];
  if (!h->used && len <= MAX_HELD && uniform() < p_reorder) {
    memcpy(h->buf, b, len);
    h->len = len;
    h->used = 1;
    h->since_ms = now_ms();
    cnt.reordered[dir]++;
    return;
  }
  emit(c, dir, b, len);
  if (h->used) { /* the held one goes after its successor */
    h->used = 0;
    emit(c, dir, h->buf, h->len);
  }
}

static client *client_of(const struct sockaddr_in *a) {
  for (int i = 0; i < nclients; i++)
    if (clients[i].addr.sin_port == a->sin_port && clients[i].addr.sin_addr.s_addr == a->sin_addr.s_addr)
      return &clients[i];
  if (nclients == MAX_CLIENTS)
    return NULL;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0)
    return NULL;
  if (connect(s, (const struct sockaddr *)&target, sizeof target) != 0) {
    close(s);
    return NULL;
  }
  client *c = &clients[nclients++];
  memset(c, 0, sizeof *c);
  c->addr = *a;
  c->up = s;
  return c;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: udp_relay LISTEN_PORT TARGET_PORT [--loss P] [--reorder R] [--seed S]\n");
    return 2;
  }
  uint64_t seed = 1;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--loss"))
      p_loss = strtod(argv[i + 1], NULL);
    else if (!strcmp(argv[i], "--reorder"))
      p_reorder = strtod(argv[i + 1], NULL);
    else if (!strcmp(argv[i], "--seed"))
      seed = strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "udp_relay: bad argument %s\n", argv[i]);
      return 2;
    }
  }
  rng_state = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(argv[2]));
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct sockaddr_in la = target;
  la.sin_port = htons((uint16_t)atoi(argv[1]));
  lsock = socket(AF_INET, SOCK_DGRAM, 0);
  if (lsock < 0 || bind(lsock, (const struct sockaddr *)&la, sizeof la) != 0) {
    perror("udp_relay: bind");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  static uint8_t buf[MAX_DGRAM];
  static struct pollfd pf[MAX_CLIENTS + 1];
  fprintf(stderr, "udp_relay: %s -> %s loss=%.3f reorder=%.3f seed=%llu\n", argv[1], argv[2], p_loss,
          p_reorder, (unsigned long long)seed);
  while (!stop_flag) {
    pf[0].fd = lsock;
    pf[0].events = POLLIN;
    for (int i = 0; i < nclients; i++) {
      pf[i + 1].fd = clients[i].up;
      pf[i + 1].events = POLLIN;
    }
    int r = poll(pf, (nfds_t)nclients + 1, 10);
    if (r < 0 && errno != EINTR) {
      perror("udp_relay: poll");
      return 1;
    }
    if (r > 0 && (pf[0].revents & POLLIN)) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(lsock, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      client *c = n >= 0 ? client_of(&from) : NULL;
      if (c)
        relay(c, 0, buf, (size_t)n);
    }
    int nc = nclients;
    for (int i = 0; r > 0 && i < nc; i++) {
      if (!(pf[i + 1].revents & (POLLIN | POLLERR)))
        continue;
      ssize_t n = recv(clients[i].up, buf, sizeof buf, 0); /* ECONNREFUSED: aggregator down, ignore */
      if (n >= 0)
        relay(&clients[i], 1, buf, (size_t)n);
    }
    double t = now_ms();
    for (int i = 0; i < nclients; i++)
      for (int d = 0; d < 2; d++) {
        held *h = &clients[i].hold[d];
        if (h->used && t - h->since_ms >= HOLD_MS) {
          h->used = 0;
          emit(&clients[i], d, h->buf, h->len);
        }
      }
  }
  printf("{\"clients\":%d,\"to_server\":{\"seen\":%llu,\"dropped\":%llu,\"reordered\":%llu,\"sent\":%llu},"
         "\"to_client\":{\"seen\":%llu,\"dropped\":%llu,\"reordered\":%llu,\"sent\":%llu}}\n",
         nclients, cnt.seen[0], cnt.dropped[0], cnt.reordered[0], cnt.sent[0], cnt.seen[1], cnt.dropped[1],
         cnt.reordered[1], cnt.sent[1]);
  fflush(stdout);
  for (int i = 0; i < nclients; i++)
    close(clients[i].up);
  close(lsock);
  return 0;
}
