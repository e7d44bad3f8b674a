/* The start-up transport check, in its own file so that tests/interop can compile it against a
 * different libcoap (Debian's OpenSSL build) without the version printer, which calls functions
 * that older libcoap releases lack. */
#include <coap3/coap.h>
#include <stdio.h>

#include "storefl/buildinfo.h"
#include "storefl/error.h"

int storefl_check_transport(char *err, size_t errlen) {
  if (!coap_dtls_is_supported()) {
    if (err)
      snprintf(err, errlen, "%s was built without DTLS support", coap_package_version());
    return STOREFL_ERR_INTERNAL;
  }
  const coap_tls_version_t *tls = coap_get_tls_library_version();
  if (!tls || tls->type != COAP_TLS_LIBRARY_MBEDTLS) {
    if (err)
      snprintf(err, errlen, "%s uses TLS library type %d, not Mbed TLS; rebuild it with scripts/setup.sh",
               coap_package_version(), tls ? (int)tls->type : -1);
    return STOREFL_ERR_INTERNAL;
  }
  return STOREFL_OK;
}
