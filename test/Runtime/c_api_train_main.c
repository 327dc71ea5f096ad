/* c_api_train_main.c - training through the C ABI (test/Runtime/c-api-train.test):
 * the loss 0.5 |y|^2 (cotangent y), gradients read by name, AdamW steps
 * that must lower the loss, and a step without fresh gradients refused. */
#include "moe/runtime/moe_runtime.h"

#include <stdio.h>
#include <string.h>

static double half_square(moe_layer_t *layer, float *dy, int64_t n) {
  const void *data;
  moe_layer_get_output(layer, 0, NULL, NULL, NULL, &data);
  const float *y = (const float *)data;
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    loss += 0.5 * (double)y[i] * (double)y[i];
    dy[i] = y[i];
  }
  return loss;
}

int main(int argc, char **argv) {
  moe_layer_t *layer;
  if (argc < 2 || moe_layer_load(argv[1], &layer) != MOE_OK || moe_layer_bind_random(layer, 3) != MOE_OK) {
    fprintf(stderr, "error: %s\n", moe_last_error());
    return 1;
  }
  enum { T = 8, D = 16 };
  float x[T * D], dy[T * D];
  for (int i = 0; i < T * D; ++i)
    x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
  int64_t shape[2] = {T, D};
  moe_adamw_t adamw = {1e-2, 0.9, 0.999, 1e-8, 0.0};
  if (moe_layer_step(layer, &adamw, 1e-3) == MOE_OK) {
    fprintf(stderr, "error: a step before any backward was taken\n");
    return 1;
  }
  printf("refused: %s\n", moe_last_error());
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    if (moe_layer_set_input(layer, "x", MOE_F32, shape, 2, x) != MOE_OK || moe_layer_run(layer) != MOE_OK) {
      fprintf(stderr, "error: %s\n", moe_last_error());
      return 1;
    }
    last = half_square(layer, dy, T * D);
    if (step == 0)
      first = last;
    if (moe_layer_set_cotangent(layer, "output", MOE_F32, shape, 2, dy) != MOE_OK ||
        moe_layer_backward(layer) != MOE_OK || moe_layer_step(layer, &adamw, 1e-3) != MOE_OK) {
      fprintf(stderr, "error: %s\n", moe_last_error());
      return 1;
    }
  }
  const int64_t *g_shape;
  int rank;
  moe_dtype_t dtype;
  if (moe_layer_get_gradient(layer, "grad.experts.w_gate", &dtype, &g_shape, &rank, NULL) != MOE_OK) {
    fprintf(stderr, "error: %s\n", moe_last_error());
    return 1;
  }
  printf("gradients %zu, grad.experts.w_gate rank %d [%lld, %lld, %lld]\n", moe_layer_num_gradients(layer), rank,
         (long long)g_shape[0], (long long)g_shape[1], (long long)g_shape[2]);
  if (moe_layer_get_gradient(layer, "grad.nothing", NULL, NULL, NULL, NULL) == MOE_OK)
    return 1;
  printf("missing: %s\n", moe_last_error());
  if (moe_layer_step(layer, &adamw, 1e-3) == MOE_OK) {
    fprintf(stderr, "error: a second step on the same gradients was taken\n");
    return 1;
  }
  printf("loss %s after 5 steps\n", last < first ? "fell" : "did not fall");
  moe_layer_free(layer);
  return last < first ? 0 : 1;
}
