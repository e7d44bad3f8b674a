/*
 * Proves that storefl_check_transport() refuses a libcoap whose DTLS library is not Mbed TLS.
 * tests/interop/tests.cmake compiles protocol/src/transport_check.c (storefl_check_transport) into this
 * program against the libcoap 4.3.5 headers but links Debian's libcoap-3-openssl.so.3 (4.3.1, OpenSSL
 * backend) by full path instead of our Mbed TLS build: the two functions the check calls,
 * coap_dtls_is_supported() and coap_get_tls_library_version(), have kept their ABI.
 * Exit status 0 when the check fails for the right reason.
 */
#include <coap3/coap.h>
#include <stdio.h>
#include <string.h>

#include "storefl/buildinfo.h"
#include "storefl/error.h"

int main(void) {
  const coap_tls_version_t *tls = coap_get_tls_library_version();
  printf("linked: %s, TLS library type %d (OpenSSL is %d)\n", coap_package_version(),
         tls ? (int)tls->type : -1, (int)COAP_TLS_LIBRARY_OPENSSL);
  if (!tls || tls->type != COAP_TLS_LIBRARY_OPENSSL) {
    fprintf(stderr, "FAIL: the program is not running on the OpenSSL libcoap; the test proves nothing\n");
    return 1;
  }
  char err[512] = "";
  int rc = storefl_check_transport(err, sizeof err);
  printf("storefl_check_transport: %d (%s): %s\n", rc, storefl_strerror(rc), err);
  if (rc != STOREFL_ERR_INTERNAL) {
    fprintf(stderr, "FAIL: the transport check accepted a libcoap on OpenSSL\n");
    return 1;
  }
  if (!strstr(err, "not Mbed TLS")) {
    fprintf(stderr, "FAIL: the message does not say the TLS library is not Mbed TLS\n");
    return 1;
  }
  return 0;
}
