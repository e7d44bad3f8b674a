/*
 * Build and runtime checks shared by both executables.
 */
#ifndef STOREFL_BUILDINFO_H
#define STOREFL_BUILDINFO_H
#include <stddef.h>
#include <stdio.h>

/* Checks that the linked libcoap supports DTLS and that its TLS library is Mbed TLS.
 * Returns 0, or STOREFL_ERR_INTERNAL with a sentence in err (err may be NULL). */
int storefl_check_transport(char *err, size_t errlen);

/* Prints "name version" lines for storefl and every library it links (libcoap and its TLS
 * library, Mbed TLS, libcbor, SQLite, OpenBLAS, zlib) to out. */
void storefl_print_versions(FILE *out, const char *program);

#endif
