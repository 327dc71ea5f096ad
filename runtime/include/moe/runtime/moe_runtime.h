/* moe_runtime.h - the runtime's C ABI for embedding compiled layers.
 *
 *   moe_layer_t *layer;
 *   if (moe_layer_load("switch.moeb", &layer) != MOE_OK) fprintf(stderr, "%s\n", moe_last_error());
 *   moe_layer_bind_safetensors(layer, "switch.safetensors");
 *   int64_t shape[2] = {128, 768};
 *   moe_layer_set_input(layer, "x", MOE_F32, shape, 2, x_data);
 *   moe_layer_run(layer);
 *   const void *y; const int64_t *y_shape; int rank; moe_dtype_t dtype;
 *   moe_layer_get_output(layer, 0, &dtype, &y_shape, &rank, &y);
 *   moe_layer_free(layer);
 *
 * Every function returns a moe_status_t; moe_last_error() explains a failure.
 * Input data is copied; output pointers stay valid until the next run or free. */
#ifndef MOE_RUNTIME_MOE_RUNTIME_H
#define MOE_RUNTIME_MOE_RUNTIME_H

#include "moe/runtime/dtype.h"
#include "moe/runtime/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_layer moe_layer_t;

moe_status_t moe_layer_load(const char *artifact_path, moe_layer_t **out);
void moe_layer_free(moe_layer_t *layer);

/* Parameters from a safetensors file (names are checkpoint paths; float tensors
 * are converted to the dtype the layer declares), or random
 * ones following each parameter's init. */
moe_status_t moe_layer_bind_safetensors(moe_layer_t *layer, const char *path);
moe_status_t moe_layer_bind_random(moe_layer_t *layer, uint64_t seed);

/* Signature. */
size_t moe_layer_num_inputs(const moe_layer_t *layer);
size_t moe_layer_num_outputs(const moe_layer_t *layer);
const char *moe_layer_input_name(const moe_layer_t *layer, size_t index);

moe_status_t moe_layer_set_input(moe_layer_t *layer, const char *name, moe_dtype_t dtype, const int64_t *shape,
                                 int rank, const void *data);
moe_status_t moe_layer_run(moe_layer_t *layer);
moe_status_t moe_layer_get_output(const moe_layer_t *layer, size_t index, moe_dtype_t *dtype, const int64_t **shape,
                                  int *rank, const void **data);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_MOE_RUNTIME_H */
