// c_api.cc - the C ABI over moe::runtime::Layer.
#include "moe/runtime/moe_runtime.h"

#include "moe/runtime/layer.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/trainer.h"

#include <cstring>

using namespace moe::runtime;

struct moe_layer {
  std::unique_ptr<Layer> layer;
  std::vector<Tensor> inputs, outputs, cotangents, gradients;
  std::unique_ptr<Trainer> trainer; ///< made by the first moe_layer_step
  bool stepped = false;             ///< the last backward's gradients were applied
};

namespace {

/// A tensor from C arguments (checked, copied), into `list` by name.
moe_status_t setNamed(std::vector<Tensor> &list, const char *what, const char *name, moe_dtype_t dtype,
                      const int64_t *shape, int rank, const void *data) {
  if (!name || (rank > 0 && !shape) || rank < 0 || rank > 8 || !data)
    return fail(MOE_INVALID_ARGUMENT, std::string(what) + ": bad argument");
  int code; // read as an int: C callers may pass any value
  std::memcpy(&code, &dtype, sizeof code);
  if (code < MOE_F32 || code > MOE_I32)
    return fail(MOE_INVALID_ARGUMENT, std::string(what) + ": unknown dtype " + std::to_string(code));
  std::vector<int64_t> dims(shape, shape + rank);
  for (int64_t d : dims)
    if (d < 0)
      return fail(MOE_INVALID_ARGUMENT, std::string(what) + ": negative dimension");
  Tensor t = Tensor::zeros(name, dtype, dims);
  std::memcpy(t.data.data(), data, t.data.size());
  for (Tensor &existing : list)
    if (existing.name == name) {
      existing = std::move(t);
      return MOE_OK;
    }
  list.push_back(std::move(t));
  return MOE_OK;
}

/// A tensor's description through the C ABI's out-parameters (each optional).
moe_status_t describe(const Tensor &t, moe_dtype_t *dtype, const int64_t **shape, int *rank, const void **data) {
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

} // namespace

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
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_set_input: null layer");
  return setNamed(layer->inputs, "moe_layer_set_input", name, dtype, shape, rank, data);
}

extern "C" moe_status_t moe_layer_run(moe_layer_t *layer) {
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_run: null layer");
  // A train artifact's forward keeps what moe_layer_backward on these inputs takes.
  if (layer->layer->hasBackward())
    return layer->layer->forwardForBackward(layer->inputs, layer->outputs);
  return layer->layer->run(layer->inputs, layer->outputs);
}

extern "C" moe_status_t moe_layer_get_output(const moe_layer_t *layer, size_t index, moe_dtype_t *dtype,
                                             const int64_t **shape, int *rank, const void **data) {
  if (!layer || index >= layer->outputs.size())
    return fail(MOE_INVALID_ARGUMENT,
                "moe_layer_get_output: no output #" + std::to_string(index) + " (run the layer first)");
  return describe(layer->outputs[index], dtype, shape, rank, data);
}

extern "C" moe_status_t moe_layer_set_cotangent(moe_layer_t *layer, const char *name, moe_dtype_t dtype,
                                                const int64_t *shape, int rank, const void *data) {
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_set_cotangent: null layer");
  return setNamed(layer->cotangents, "moe_layer_set_cotangent", name, dtype, shape, rank, data);
}

extern "C" moe_status_t moe_layer_backward(moe_layer_t *layer) {
  if (!layer)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_backward: null layer");
  layer->stepped = false;
  return layer->layer->backward(layer->inputs, layer->cotangents, layer->gradients);
}

extern "C" size_t moe_layer_num_gradients(const moe_layer_t *layer) { return layer ? layer->gradients.size() : 0; }

extern "C" moe_status_t moe_layer_get_gradient(const moe_layer_t *layer, const char *name, moe_dtype_t *dtype,
                                               const int64_t **shape, int *rank, const void **data) {
  if (!layer || !name)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_get_gradient: null argument");
  for (const Tensor &t : layer->gradients)
    if (t.name == name)
      return describe(t, dtype, shape, rank, data);
  return fail(MOE_NOT_FOUND, std::string("moe_layer_get_gradient: no gradient \"") + name +
                                 "\" (run moe_layer_backward first; names are grad.<input or parameter>)");
}

extern "C" moe_status_t moe_layer_step(moe_layer_t *layer, const moe_adamw_t *options, double balanceRate) {
  if (!layer || !options)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_step: null argument");
  if (layer->gradients.empty() || layer->stepped)
    return fail(MOE_INVALID_ARGUMENT, "moe_layer_step: no fresh gradients (call moe_layer_backward first)");
  AdamWOptions adamw{options->lr, options->beta1, options->beta2, options->eps, options->weight_decay};
  if (!layer->trainer)
    layer->trainer = std::make_unique<Trainer>(*layer->layer, adamw, balanceRate);
  layer->trainer->setOptions(adamw);
  layer->trainer->setBalanceRate(balanceRate);
  layer->stepped = true;
  return layer->trainer->apply(layer->gradients);
}
