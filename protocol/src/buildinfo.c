#include "storefl/buildinfo.h"

#include <cbor.h>
#include <coap3/coap.h>
#include <mbedtls/version.h>
#include <sqlite3.h>
#include <stdio.h>
#include <zlib.h>

#include "storefl/error.h"

/* From OpenBLAS; declared here to avoid depending on which cblas.h variant is installed. */
extern char *openblas_get_config(void);

void storefl_print_versions(FILE *out, const char *program) {
  char mbed[32];
  mbedtls_version_get_string(mbed);
  const coap_tls_version_t *tls = coap_get_tls_library_version();
  unsigned long tv = tls ? (unsigned long)tls->version : 0;
  fprintf(out, "%s %s (storefl protocol v1)\n", program, STOREFL_VERSION);
  fprintf(out, "%s (DTLS %s, TLS library %s %lu.%lu.%lu, Q-Block %s)\n", coap_package_version(),
          coap_dtls_is_supported() ? "yes" : "no",
          tls && tls->type == COAP_TLS_LIBRARY_MBEDTLS ? "Mbed TLS" : "other", (tv >> 24) & 0xff,
          (tv >> 16) & 0xff, (tv >> 8) & 0xff, coap_q_block_is_supported() ? "yes" : "no");
  fprintf(out, "Mbed TLS %s\n", mbed);
  fprintf(out, "libcbor %d.%d.%d\n", CBOR_MAJOR_VERSION, CBOR_MINOR_VERSION, CBOR_PATCH_VERSION);
  fprintf(out, "SQLite %s\n", sqlite3_libversion());
  fprintf(out, "%s\n", openblas_get_config()); /* starts with "OpenBLAS" */
  fprintf(out, "zlib %s\n", zlibVersion());
}
