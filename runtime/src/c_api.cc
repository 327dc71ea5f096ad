// c_api.cc - the C ABI over moe::runtime::Layer.
#include "moe/runtime/moe_runtime.h"

#include "moe/runtime/layer.h"
#include "moe/runtime/safetensors.h"

#include <cstring>

using namespace moe::runtime;

struct moe_layer {
  std::unique_ptr<Layer> layer;
  std::vector<Tensor> inputs, outputs;
};

extern "C" moe_status_t moe_layer_load(const char *path, moe_layer_t **out) {
  if (!path || !out)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_load: null argument");
  *out = nullptr;
  auto handle = std::make_unique<moe_layer>();
  if (moe_status_t s = Layer::loadFile(path, handle->layer))
    return s;
  *out = handle.release();
  return MOE_OK;
}

extern "C" void moe_layer_free(moe_layer_t *layer) { delete layer; }

extern "C" moe_status_t moe_layer_bind_safetensors(moe_layer_t *layer, const char *path) {
  if (!layer || !path)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_bind_safetensors: null argument");
  std::vector<Tensor> weights;
  if (moe_status_t s = readSafetensors(path, weights))
    return s;
  layer->layer->convertWeightTypes(weights, nullptr); // the C ABI prints nothing
  return layer->layer->bindParameters(std::move(weights));
}

extern "C" moe_status_t moe_layer_bind_random(moe_layer_t *layer, uint64_t seed) {
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_bind_random: null layer");
  if (moe_status_t s = layer->layer->checkParametersFit())
    return s;
  return layer->layer->bindParameters(layer->layer->randomParameters(seed));
}

extern "C" size_t moe_layer_num_inputs(const moe_layer_t *layer) {
  return layer ? layer->layer->signature().inputs.size() : 0;
}
extern "C" size_t moe_layer_num_outputs(const moe_layer_t *layer) {
  return layer ? layer->layer->signature().outputs.size() : 0;
}
extern "C" const char *moe_layer_input_name(const moe_layer_t *layer, size_t index) {
  if (!layer || index >= layer->layer->signature().inputs.size())
    return nullptr;
  return layer->layer->signature().inputs[index].name.c_str();
}

extern "C" moe_status_t moe_layer_set_input(moe_layer_t *layer, const char *name, moe_dtype_t dtype,
                                            const int64_t *shape, int rank, const void *data) {
  if (!layer || !name || (rank > 0 && !shape) || rank < 0 || rank > 8 || !data)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_set_input: bad argument");
  int code; // read as an int: C callers may pass any value
  std::memcpy(&code, &dtype, sizeof code);
  if (code < MOE_F32 || code > MOE_I32)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_set_input: unknown dtype " + std::to_string(code));
  std::vector<int64_t> dims(shape, shape + rank);
  for (int64_t d : dims)
    if (d < 0)
      return fail(MOE_INVALID_ARGUMENT, "moe_layer_set_input: negative dimension");
  Tensor t = Tensor::zeros(name, dtype, dims);
  std::memcpy(t.data.data(), data, t.data.size());
  for (Tensor &existing : layer->inputs)
    if (existing.name == name) {
      existing = std::move(t);
      return MOE_OK;
    }
  layer->inputs.push_back(std::move(t));
  return MOE_OK;
}

extern "C" moe_status_t moe_layer_run(moe_layer_t *layer) {
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_run: null layer");
  return layer->layer->run(layer->inputs, layer->outputs);
}

extern "C" moe_status_t moe_layer_get_output(const moe_layer_t *layer, size_t index, moe_dtype_t *dtype,
                                             const int64_t **shape, int *rank, const void **data) {
  if (!layer || index >= layer->outputs.size())
    return fail(MOE_INVALID_ARGUMENT,
                "moe_layer_get_output: no output #" + std::to_string(index) + " (run the layer first)");
  const Tensor &t = layer->outputs[index];
  if (dtype)
    *dtype = t.dtype;
  if (shape)
    *shape = t.shape.data();
  if (rank)
    *rank = static_cast<int>(t.shape.size());
  if (data)
    *data = t.data.data();
  return MOE_OK;
}
