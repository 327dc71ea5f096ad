/* c_api_main.c - a C embedding of a compiled layer (test/Runtime/c-api.test). */
#include "moe/runtime/moe_runtime.h"

#include <stdio.h>

int main(int argc, char **argv) {
  moe_layer_t *layer;
  if (argc < 2 || moe_layer_load(argv[1], &layer) != MOE_OK) {
    fprintf(stderr, "error: %s\n", moe_last_error());
    return 1;
  }
  printf("inputs %zu (%s), outputs %zu\n", moe_layer_num_inputs(layer), moe_layer_input_name(layer, 0),
         moe_layer_num_outputs(layer));
  float x[5 * 16];
  for (int i = 0; i < 5 * 16; ++i)
    x[i] = (float)(i % 7) - 3.0f;
  int64_t shape[2] = {5, 16};
  if (moe_layer_bind_random(layer, 1) != MOE_OK || moe_layer_set_input(layer, "x", MOE_F32, shape, 2, x) != MOE_OK ||
      moe_layer_run(layer) != MOE_OK) {
    fprintf(stderr, "error: %s\n", moe_last_error());
    return 1;
  }
  moe_dtype_t dtype;
  const int64_t *out_shape;
  int rank;
  const void *data;
  moe_layer_get_output(layer, 0, &dtype, &out_shape, &rank, &data);
  printf("output 0: rank %d [%lld, %lld]\n", rank, (long long)out_shape[0], (long long)out_shape[1]);
  moe_layer_free(layer);
  return 0;
}
