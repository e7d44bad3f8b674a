/* libFuzzer target: the PSK keys file parser (storefl_psk_table_load) on arbitrary bytes. The parser
 * reads a file (it checks the file's mode), so each input is written to a private 0600 file first
 * (in /dev/shm when it exists).
 * Every accepted table must answer lookups consistently. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storefl/error.h"
#include "storefl/transport.h"

static char path[64];

static void remove_file(void) {
  unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!path[0]) {
    /* On tmpfs when there is one: a disk-backed /tmp made this target 15 times slower (1,700 vs
     * 25,000 exec/s in the long campaign, docs/RELIABILITY.md). */
    snprintf(path, sizeof path, "%s/fuzz_psk_table.%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (int)getpid());
    atexit(remove_file);
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return 0;
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  close(fd);
  storefl_psk_table *t = NULL;
  char err[256];
  int rc = storefl_psk_table_load(path, &t, err, sizeof err);
  if (rc == 0) {
    /* Look up every whitespace-separated token: found keys must have a valid length. */
    for (size_t i = 0; i < size;) {
      size_t j = i;
      while (j < size && data[j] > ' ')
        j++;
      const coap_bin_const_t *k = storefl_psk_table_find(t, data + i, j - i);
      if (k && (k->length < STOREFL_PSK_MIN_KEY || k->length > STOREFL_PSK_MAX_KEY))
        abort();
      i = j + 1;
    }
    storefl_psk_table_free(t);
  } else if (t) {
    abort(); /* no table on failure */
  }
  return 0;
}
