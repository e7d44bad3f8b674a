/*
 * CoAP over DTLS plumbing shared by the aggregator (server) and the agent (client), on libcoap 4.3.5
 * built with Mbed TLS 2.28.
 *
 * Identities: a store is authenticated either by a pre-shared key (PSK identity = store id) or by an
 * X.509 certificate (ECDSA P-256) issued by the configured CA (store id = subject CN). The server
 * only ever learns a store's id from the DTLS session (storefl_transport_session_identity()), never
 * from a message body.
 *
 * Handshake cost: Mbed TLS offers its curves strongest first (P-521), which makes an ECDHE-PSK
 * handshake ~2.7x slower than X25519. libcoap exposes no curve setting, so the client narrows its
 * session's curve and cipher-suite lists right after libcoap sends the first ClientHello; the DTLS
 * cookie exchange (HelloVerifyRequest) makes the client send a second ClientHello, built from the
 * narrowed lists, and that is the one the server negotiates on.
 *
 * All functions return 0 or a negative storefl_err and write a human-readable reason into err (when
 * not NULL). Nothing here prints.
 */
#ifndef STOREFL_TRANSPORT_H
#define STOREFL_TRANSPORT_H

#include <coap3/coap.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"

#define STOREFL_COAP_DEFAULT_PORT 5684
#define STOREFL_PSK_MAX_KEY 64 /* bytes */
#define STOREFL_PSK_MIN_KEY 16 /* bytes: shorter keys are refused */
#define STOREFL_PSK_MAX_STORES 100000
#define STOREFL_ETAG_LEN 8 /* CoAP ETag: the first 8 bytes of the model digest */

/* Store ids are checked with storefl_store_id_valid() from storefl/codec.h. */

/* ---------------------------------------------------------------------------------------------- */
/* PSK table (server): "STORE_ID HEXKEY" per line, '#' comments and blank lines allowed.           */

typedef struct storefl_psk_table storefl_psk_table;

/* Loads a keys file. The file must be a regular file not readable or writable by group or others
 * (mode 0600 or stricter): otherwise STOREFL_ERR_FORBIDDEN. Lines over 512 bytes, bad ids, keys that
 * are not hex or shorter than STOREFL_PSK_MIN_KEY / longer than STOREFL_PSK_MAX_KEY bytes, duplicate
 * ids and more than STOREFL_PSK_MAX_STORES entries are STOREFL_ERR_INVALID (with the line number in
 * err). On success *out is owned by the caller (storefl_psk_table_free()). */
int storefl_psk_table_load(const char *path, storefl_psk_table **out, char *err, size_t errlen);
/* The key of a store, or NULL if unknown. The returned view lives as long as the table. */
const coap_bin_const_t *storefl_psk_table_find(const storefl_psk_table *t, const uint8_t *id, size_t idlen);
size_t storefl_psk_table_count(const storefl_psk_table *t);
/* The i-th store id (NUL-terminated, sorted order), or NULL if i >= count. Lives as long as the table. */
const char *storefl_psk_table_id(const storefl_psk_table *t, size_t i);
void storefl_psk_table_free(storefl_psk_table *t);

/* Reads one hex key (a store's own key file, e.g. stores/ID.psk) into key[cap]; same mode check and
 * length bounds as the table. */
int storefl_psk_key_file_read(const char *path, uint8_t *key, size_t cap, size_t *len, char *err,
                              size_t errlen);

/* ---------------------------------------------------------------------------------------------- */
/* Server                                                                                           */

typedef struct storefl_dtls_server_opts {
  const storefl_psk_table *psk; /* PSK identities; NULL disables PSK. Must outlive the context. */
  const char *psk_hint;         /* identity hint sent to clients; NULL -> "storefl" */
  const char *ca_file;          /* PEM CA that signs store certificates; with cert_file and key_file */
  const char *cert_file;        /* PEM server certificate; NULL disables certificates */
  const char *key_file;         /* PEM server private key */
} storefl_dtls_server_opts;

/* Configures PSK and/or certificate authentication on a server context (before any endpoint is
 * created). At least one of the two must be enabled. Errors: STOREFL_ERR_INVALID (no method, missing
 * files), STOREFL_ERR_CRYPTO (libcoap refused the credentials). */
int storefl_dtls_server_setup(coap_context_t *ctx, const storefl_dtls_server_opts *opts, char *err,
                              size_t errlen);

/* The authenticated store id of a server-side session: its PSK identity, or the subject CN of its
 * verified client certificate. Writes a NUL-terminated id into out[STOREFL_MAX_ID_LEN + 1].
 * Errors: STOREFL_ERR_UNAUTHORIZED (plaintext session, no identity, or an identity that is not a
 * valid store id). */
int storefl_transport_session_identity(coap_session_t *session, char out[STOREFL_MAX_ID_LEN + 1]);

/* Name of the negotiated cipher suite and curve of a DTLS session (for logs and benchmarks), or
 * "none" for plaintext. */
const char *storefl_transport_session_cipher(coap_session_t *session);

/* ---------------------------------------------------------------------------------------------- */
/* Client                                                                                           */

typedef struct storefl_client_opts {
  const char *host; /* IPv4/IPv6 literal or name; NULL -> 127.0.0.1 */
  uint16_t port;    /* 0 -> 5684 (DTLS) or 5683 (insecure) */
  /* PSK: identity (the store id) and key. */
  const char *psk_identity;
  const uint8_t *psk_key;
  size_t psk_key_len;
  /* Certificates (used when psk_identity is NULL): CA that signed the server, own cert and key. */
  const char *ca_file, *cert_file, *key_file;
  int insecure;           /* plaintext coap:// (development only; the server must allow it) */
  int q_block;            /* 1: try RFC 9177 Q-Block (falls back to Block1/2 if the server lacks it) */
  unsigned block_size;    /* 16..1024, 0 -> 1024 */
  unsigned q_block_burst; /* Q-Block MAX_PAYLOADS (RFC 9177) before pacing, 0 -> libcoap default 10 */
  unsigned nstart;        /* CoAP NSTART: confirmable messages in flight, 0 -> 1 (RFC 7252 default) */
  int non;                /* 1: send requests with a body as NON (RFC 9177 recommends NON for Q-Block) */
  int default_curves;     /* 1: leave Mbed TLS's curve/suite preference alone (benchmark "before") */
  uint32_t timeout_ms;    /* per request, 0 -> 60000 */
  size_t max_response;    /* bytes; larger bodies are an error (STOREFL_ERR_TOO_LARGE). 0 -> 64 MiB */
} storefl_client_opts;

typedef struct storefl_client storefl_client;

/* Opens a client context and a DTLS (or plaintext) session, and completes the handshake.
 * Errors: STOREFL_ERR_INVALID (options), STOREFL_ERR_UNAUTHORIZED (handshake refused: wrong key,
 * unknown store, untrusted certificate), STOREFL_ERR_UNAVAILABLE (no answer before the timeout),
 * STOREFL_ERR_NOMEM. On success *out is owned by the caller (storefl_client_close()). */
int storefl_client_open(const storefl_client_opts *opts, storefl_client **out, char *err, size_t errlen);
void storefl_client_close(storefl_client *c);
/* The session (e.g. for storefl_transport_session_cipher()). */
coap_session_t *storefl_client_session(storefl_client *c);

typedef struct storefl_response {
  int code;           /* CoAP code as class*100 + detail (205, 403, ...) */
  int content_format; /* -1 if absent */
  uint8_t etag[8];
  size_t etag_len;   /* 0 if absent */
  int64_t max_age_s; /* Max-Age option (e.g. the retry hint of a 5.03), -1 if absent */
  uint8_t *body;     /* malloc'd (NULL if empty); owned by the caller: free() */
  size_t len;
} storefl_response;

/* One request and its complete response (block-wise transfers in both directions are handled by
 * libcoap; Q-Block when opts->q_block). method: COAP_REQUEST_CODE_GET/POST/... path: "v1/model".
 * content_format: -1 for none. etag: If-None-Match-style validation of a cached body (ETag option
 * in a GET: the server answers 2.03 Valid when it still matches), NULL for none.
 * Errors: STOREFL_ERR_UNAVAILABLE (timeout, reset, DTLS failure), STOREFL_ERR_TOO_LARGE (response
 * over max_response), STOREFL_ERR_NOMEM. A CoAP error response is not an error here: see resp->code.
 */
int storefl_client_request(storefl_client *c, coap_pdu_code_t method, const char *path, int content_format,
                           const uint8_t *body, size_t len, const uint8_t *etag, size_t etag_len,
                           storefl_response *resp, char *err, size_t errlen);

/* Conditional GET of a large resource: with the ETag of the body the caller holds, 2.03 Valid means
 * unchanged (no body crosses the network); otherwise the full body is fetched. libcoap 4.3.5's
 * server mishandles a Block2 follow-up request carrying a non-matching ETag (it leaks 80 bytes in
 * coap_handle_request_send_block and drops the ETag from the later blocks, so its client keeps only
 * the first block): on 2.05 the body is therefore fetched again with a plain GET. Callers that can
 * know in advance that the resource changed (the round names the model digest) should not send the
 * ETag at all; see storefl_agent_sync(). */
int storefl_client_fetch(storefl_client *c, const char *path, const uint8_t *etag, size_t etag_len,
                         storefl_response *resp, char *err, size_t errlen);

/* Observe (RFC 7641). Registers for notifications of path; every notification (including the first
 * response) calls cb with a response view valid only during the call. Returns as storefl_client_request
 * for the initial response, which is also passed to cb. */
typedef void (*storefl_observe_cb)(void *arg, const storefl_response *resp);
int storefl_client_observe(storefl_client *c, const char *path, storefl_observe_cb cb, void *arg, char *err,
                           size_t errlen);
/* Runs the client's I/O for up to timeout_ms (delivering notifications). Returns 0, or
 * STOREFL_ERR_UNAVAILABLE if the session failed. */
int storefl_client_poll(storefl_client *c, uint32_t timeout_ms);

void storefl_response_free(storefl_response *r);

/* For clients that drive their own libcoap context (the many-agent engine, agent/src/sim_engine.h):
 * narrows a fresh DTLS client session's curves and suites exactly as storefl_client_open() does
 * (call right after coap_new_client_session_psk2/_pki, before the first coap_io_process), so that its
 * handshakes are the ones real agents make. psk: 1 for PSK sessions, 0 for certificates. */
void storefl_transport_client_narrow(coap_session_t *session, int psk);
/* Fills r from a received PDU (code, Content-Format, ETag, whole body copied, malloc'd: free with
 * storefl_response_free()). Errors: STOREFL_ERR_TOO_LARGE (body over max_body), STOREFL_ERR_NOMEM. */
int storefl_response_from_pdu(const coap_pdu_t *pdu, size_t max_body, storefl_response *r);
/* Adds path ("/v1/update", leading and repeated slashes ignored, anything from '?' on left out) to
 * pdu as Uri-Path options. Errors: STOREFL_ERR_INVALID (libcoap refused an option). */
int storefl_pdu_add_uri_path(coap_pdu_t *pdu, const char *path);

/* Parses "HOST:PORT", "[V6]:PORT" or "HOST" into host[hostcap] and *port (unchanged if absent). */
int storefl_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port);

/* Sets libcoap's and its TLS library's log levels from ours (once per process) and starts libcoap. */
void storefl_transport_init(void);

#endif
