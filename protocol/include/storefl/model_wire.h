/*
 * Conversion between a storefl_model (shared/include/storefl/model.h) and the wire's named tensor
 * list (storefl_tensor in messages.h), for the model message and for update deltas.
 *
 * Ownership: storefl_model_to_tensors() produces views into the model's memory (valid while the
 * model lives and is not modified); storefl_model_from_tensors() copies into the model.
 */
#ifndef STOREFL_MODEL_WIRE_H
#define STOREFL_MODEL_WIRE_H
#include <stdint.h>

#include "storefl/messages.h"
#include "storefl/model.h"

/* Fills out[0..STOREFL_MODEL_NPARAMS) with float32 views of m's tensors; *n gets the count.
 * Errors: STOREFL_ERR_TOO_LARGE (max too small). */
int storefl_model_to_tensors(const storefl_model *m, storefl_tensor *out, uint32_t max, uint32_t *n);

/* Infers the model config (B, d, H) from a tensor list's names and shapes.
 * Errors: STOREFL_ERR_INVALID (missing/unknown/duplicate names, inconsistent shapes). */
int storefl_model_config_from_tensors(const storefl_tensor *t, uint32_t n, storefl_model_config *cfg);

/* Copies a tensor list into m: every tensor of the model exactly once, by name, with m's shapes,
 * float32, all finite. m is unchanged on error. Errors: STOREFL_ERR_INVALID (names, shapes, sizes),
 * STOREFL_ERR_FORMAT (dtype other than float32), STOREFL_ERR_NONFINITE. */
int storefl_model_from_tensors(storefl_model *m, const storefl_tensor *t, uint32_t n);

#endif
