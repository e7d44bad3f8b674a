/*
 * Hand-made Block1 sequences against POST /v1/update over DTLS (PSK), bypassing libcoap's client-side
 * block handling so that the server sees exactly the blocks we choose:
 *   block1_peer PORT ID KEYFILE BODY SCENARIO
 * SCENARIO: gap (blocks 0, 2), conflict (0, 1, then 1 with other bytes), dup (every block twice,
 * then the body completes), inflated (Size1 = 1 GB on block 0), beyond (block 0, then a block whose
 * offset is past the upload cap), whole (all blocks once, in order), hold (block 0, 3 s pause with the
 * upload in progress, then the rest), qb2-b1 (GET /v1/model with Q-Block2, then Block1 block 0 with
 * M=1 and no Size1: crashed libcoap 4.3.5's reassembly, see screen_blocks in coap_server.c),
 * qb1-inflated (Q-Block1 block 0 announcing Size1 = 1 GB).
 * Prints the code of every response ("0=2.31 2=4.08 ..."), then "final=CODE".
 */
#include <coap3/coap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/transport.h"

#define BS 1024 /* SZX 6 */

static int got, code;

static coap_response_t on_resp(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *recv,
                               const coap_mid_t mid) {
  (void)s;
  (void)sent;
  (void)mid;
  coap_pdu_code_t c = coap_pdu_get_code(recv);
  code = (int)(c >> 5) * 100 + (int)(c & 0x1f);
  got = 1;
  return COAP_RESPONSE_OK;
}

/* Sends block num (bytes from body at num*BS, or flipped bytes if flip) and waits for the answer. */
static uint16_t block_opt = COAP_OPTION_BLOCK1;
static int omit_size1;

static int wait_answer(coap_context_t *ctx) {
  for (int i = 0; i < 200 && !got; i++)
    coap_io_process(ctx, 100);
  return got ? code : -1;
}

static int send_block(coap_session_t *sess, coap_context_t *ctx, const uint8_t *body, size_t len,
                      unsigned num, int flip, uint64_t size1) {
  size_t off = (size_t)num * BS;
  size_t n = off < len ? (len - off < BS ? len - off : BS) : BS;
  int more = off + n < len;
  static uint8_t buf[BS];
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)((off + i < len ? body[off + i] : 0x5a) ^ (flip ? 0xff : 0));
  coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, coap_new_message_id(sess),
                                  coap_session_max_pdu_size(sess));
  if (!pdu)
    return -1;
  uint8_t tok[8];
  size_t tl;
  coap_session_new_token(sess, &tl, tok);
  uint8_t ob[8];
  int ok = coap_add_token(pdu, tl, tok) &&
           coap_add_option(pdu, COAP_OPTION_URI_PATH, 2, (const uint8_t *)"v1") &&
           coap_add_option(pdu, COAP_OPTION_URI_PATH, 6, (const uint8_t *)"update") &&
           coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(ob, sizeof ob, 60), ob) &&
           coap_add_option(pdu, block_opt,
                           coap_encode_var_safe(ob, sizeof ob, (num << 4) | (more ? 8u : 0u) | 6u), ob);
  if (ok && num == 0 && !omit_size1)
    ok = coap_add_option(pdu, COAP_OPTION_SIZE1, coap_encode_var_safe8(ob, sizeof ob, size1), ob) != 0;
  if (ok)
    ok = coap_add_data(pdu, n, buf);
  if (!ok) {
    coap_delete_pdu(pdu);
    return -1;
  }
  got = 0;
  if (coap_send(sess, pdu) == COAP_INVALID_MID || wait_answer(ctx) < 0)
    return -1;
  printf("%u=%d.%02d ", num, code / 100, code % 100);
  return code;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: block1_peer PORT ID KEYFILE BODY SCENARIO\n");
    return 2;
  }
  uint8_t key[STOREFL_PSK_MAX_KEY];
  size_t keylen;
  char err[256];
  if (storefl_psk_key_file_read(argv[3], key, sizeof key, &keylen, err, sizeof err) != 0) {
    fprintf(stderr, "block1_peer: %s\n", err);
    return 1;
  }
  FILE *f = fopen(argv[4], "rb");
  static uint8_t body[1 << 20];
  size_t len = f ? fread(body, 1, sizeof body, f) : 0;
  if (f)
    fclose(f);
  if (len < 3 * BS) {
    fprintf(stderr, "block1_peer: %s must be over 3 KiB\n", argv[4]);
    return 1;
  }
  coap_startup();
  coap_context_t *ctx = coap_new_context(NULL);
  coap_address_t dst;
  coap_address_init(&dst);
  dst.addr.sin.sin_family = AF_INET;
  dst.addr.sin.sin_port = htons((uint16_t)atoi(argv[1]));
  dst.addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  dst.size = sizeof dst.addr.sin;
  coap_dtls_cpsk_t psk;
  memset(&psk, 0, sizeof psk);
  psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
  psk.client_sni = "127.0.0.1";
  psk.psk_info.identity.s = (const uint8_t *)argv[2];
  psk.psk_info.identity.length = strlen(argv[2]);
  psk.psk_info.key.s = key;
  psk.psk_info.key.length = keylen;
  coap_session_t *sess = ctx ? coap_new_client_session_psk2(ctx, NULL, &dst, COAP_PROTO_DTLS, &psk) : NULL;
  if (!sess) {
    fprintf(stderr, "block1_peer: no session\n");
    return 1;
  }
  coap_register_response_handler(ctx, on_resp);
  const char *sc = argv[5];
  unsigned nblk = (unsigned)((len + BS - 1) / BS);
  int c = -1;
  if (!strcmp(sc, "gap")) {
    if ((c = send_block(sess, ctx, body, len, 0, 0, len)) == 231)
      c = send_block(sess, ctx, body, len, 2, 0, len);
  } else if (!strcmp(sc, "conflict")) {
    if ((c = send_block(sess, ctx, body, len, 0, 0, len)) == 231 &&
        (c = send_block(sess, ctx, body, len, 1, 0, len)) == 231)
      c = send_block(sess, ctx, body, len, 1, 1, len);
  } else if (!strcmp(sc, "dup") || !strcmp(sc, "whole")) {
    int twice = !strcmp(sc, "dup");
    for (unsigned b = 0; b < nblk; b++) {
      c = send_block(sess, ctx, body, len, b, 0, len);
      if (twice && b + 1 < nblk && c == 231)
        c = send_block(sess, ctx, body, len, b, 0, len);
      if (b + 1 < nblk && c != 231)
        break;
    }
  } else if (!strcmp(sc, "hold")) {
    /* Block 0, then a pause (the upload holds its server slot), then the rest. */
    c = send_block(sess, ctx, body, len, 0, 0, len);
    printf("holding ");
    fflush(stdout);
    for (int i = 0; i < 30 && c == 231; i++)
      coap_io_process(ctx, 100); /* 3 s, keeping the session alive */
    for (unsigned b = 1; c == 231 && b < nblk; b++)
      c = send_block(sess, ctx, body, len, b, 0, len);
  } else if (!strcmp(sc, "qb2-b1")) {
    /* GET /v1/model with Q-Block2 (the session is now in Q-Block mode), then a Block1 upload whose
     * first block already covers the announced body (no Size1). */
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, COAP_REQUEST_CODE_GET, coap_new_message_id(sess),
                                    coap_session_max_pdu_size(sess));
    uint8_t tok[8], ob[4];
    size_t tl;
    coap_session_new_token(sess, &tl, tok);
    if (!pdu || !coap_add_token(pdu, tl, tok) ||
        !coap_add_option(pdu, COAP_OPTION_URI_PATH, 2, (const uint8_t *)"v1") ||
        !coap_add_option(pdu, COAP_OPTION_URI_PATH, 5, (const uint8_t *)"model") ||
        !coap_add_option(pdu, COAP_OPTION_Q_BLOCK2, coap_encode_var_safe(ob, sizeof ob, 6u), ob))
      return 1;
    /* The server switches the session to Q-Block mode when it handles this request; its answer
     * does not matter (this bare client RSTs Q-Block2 responses it has no state for). */
    if (coap_send(sess, pdu) == COAP_INVALID_MID)
      return 1;
    for (int i = 0; i < 5; i++)
      coap_io_process(ctx, 100);
    printf("model=sent ");
    omit_size1 = 1;
    c = send_block(sess, ctx, body, BS + 1, 0, 0, 0);
    /* The same block again: the server must still be there. */
    if (c > 0)
      c = send_block(sess, ctx, body, BS + 1, 0, 0, 0);
  } else if (!strcmp(sc, "qb1-inflated")) {
    block_opt = COAP_OPTION_Q_BLOCK1;
    c = send_block(sess, ctx, body, len, 0, 0, (uint64_t)1 << 30);
  } else if (!strcmp(sc, "inflated")) {
    c = send_block(sess, ctx, body, len, 0, 0, (uint64_t)1 << 30);
  } else if (!strcmp(sc, "beyond")) {
    if ((c = send_block(sess, ctx, body, len, 0, 0, len)) == 231)
      c = send_block(sess, ctx, body, len, 200000, 0, len);
  } else {
    fprintf(stderr, "block1_peer: unknown scenario %s\n", sc);
    return 2;
  }
  printf("final=%d\n", c);
  coap_session_release(sess);
  coap_free_context(ctx);
  coap_cleanup();
  return c < 0 ? 1 : 0;
}
