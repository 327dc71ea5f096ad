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
 * Training (an artifact built with `moec build --train`; docs/training.md):
 *
 *   moe_layer_run(layer);                                   // the forward, as above
 *   moe_layer_set_cotangent(layer, "output", MOE_F32, y_shape, 2, dy_data);
 *   moe_layer_backward(layer);                              // gradients of <output, dy>
 *   moe_layer_get_gradient(layer, "grad.experts.w_gate", &dtype, &shape, &rank, &g);
 *   moe_adamw_t adamw = {1e-3, 0.9, 0.999, 1e-8, 0.01};
 *   moe_layer_step(layer, &adamw, 1e-3);                    // AdamW with the last gradients
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

/* Training. A cotangent per output, named as it ("output", or "output1", ...),
 * like an input. moe_layer_backward computes the gradients of every float
 * input and parameter ("grad.x", "grad.<param>") and the experts' load of an
 * update = :balance parameter ("load.<param>"), readable by name until the
 * next backward or free. moe_layer_step updates the parameters with the last
 * backward's gradients: AdamW (f32 masters and moments kept by the layer;
 * the options may change between steps, e.g. a learning-rate schedule) on
 * the trainable ones, b_e += balance_rate * sign(mean load - load_e) on
 * update = :balance ones. */
typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
} moe_adamw_t;

moe_status_t moe_layer_set_cotangent(moe_layer_t *layer, const char *name, moe_dtype_t dtype, const int64_t *shape,
                                     int rank, const void *data);
moe_status_t moe_layer_backward(moe_layer_t *layer);
size_t moe_layer_num_gradients(const moe_layer_t *layer);
moe_status_t moe_layer_get_gradient(const moe_layer_t *layer, const char *name, moe_dtype_t *dtype,
                                    const int64_t **shape, int *rank, const void **data);
moe_status_t moe_layer_step(moe_layer_t *layer, const moe_adamw_t *options, double balance_rate);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_MOE_RUNTIME_H */
