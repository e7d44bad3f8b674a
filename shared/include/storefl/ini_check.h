/*
 * Section check for INI files read by several loaders.
 *
 * Why: each loader (agent net config, [model], [eval], [columns]; aggregator service, [server]/[dtls])
 * reads only its own sections of a shared file, so a misspelt section ("[ledgr]") was silently
 * ignored by all of them - no ledger, no budget check. Each file is therefore checked once against
 * the union of the sections its loaders know (a NULL-terminated table owned by the program), and each
 * loader reports unknown keys in its own sections.
 *
 * storefl_ini_check_sections(path, known, err, errlen): returns STOREFL_OK when every key lies in a
 * section of `known`; STOREFL_ERR_INVALID when one does not (err: "PATH:LINE: unknown section [S]
 * (key K); known sections: ...", or a key before any section header, or a syntax error);
 * STOREFL_ERR_IO when the file cannot be read. err may be NULL. Nothing is allocated for the caller.
 * storefl_ini_check_sections_string: the same for an in-memory text; `label` names it in messages.
 */
#ifndef STOREFL_INI_CHECK_H
#define STOREFL_INI_CHECK_H
#include <stddef.h>

int storefl_ini_check_sections(const char *path, const char *const *known, char *err, size_t errlen);
int storefl_ini_check_sections_string(const char *text, const char *label, const char *const *known,
                                      char *err, size_t errlen);

#endif
