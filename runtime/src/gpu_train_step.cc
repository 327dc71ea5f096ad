// gpu_train_step.cc - a GPU layer's training step on the device
// (gpu_train_step.h): forward, the squared error's cotangent, backward and
// AdamW enqueued on the device's stream, the host waiting once, for the
// loss.
#include "gpu_train_step.h"

#include "layer_abi.h"
#include "layer_gpu.h"

#include "moe/runtime/train_kernels.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>

namespace moe::runtime {

namespace {

/// A kernel's arguments: each value kept at a stable address for the launch.
class KernelArguments {
public:
  void memref(uint64_t address, int64_t elements) {
    for (int64_t word : memrefArgument(address, elements))
      index(word);
  }
  void index(int64_t v) {
    words_.push_back(v);
    pointers_.push_back(&words_.back());
  }
  void f32(float v) {
    floats_.push_back(v);
    pointers_.push_back(&floats_.back());
  }
  std::vector<void *> pointers() const { return pointers_; }

private:
  std::deque<int64_t> words_; // a deque never moves what it holds
  std::deque<float> floats_;
  std::vector<void *> pointers_;
};

unsigned blocksFor(int64_t threads, unsigned block) { return static_cast<unsigned>((threads + block - 1) / block); }

/// `count` elements of `dtype` at `address` set to `value` (0 or 1).
moe_status_t fillWith(CudaDevice &gpu, uint64_t address, moe_dtype_t dtype, int64_t count, float value) {
  Tensor one = Tensor::zeros("", dtype, {1});
  storeFloats(one, 0, &value, 1);
  const size_t size = moe_dtype_size(dtype);
  if (size == 4) {
    uint32_t bits;
    std::memcpy(&bits, one.data.data(), 4);
    return gpu.fill32(address, bits, static_cast<size_t>(count));
  }
  uint16_t bits;
  std::memcpy(&bits, one.data.data(), 2);
  return gpu.fill16(address, bits, static_cast<size_t>(count));
}

} // namespace

bool GpuTrainStep::available(const Layer &layer) {
  return layer.onGpu() && !layer.isSharded() && layer.hasBackward() &&
         layer.artifact.section(kTrainKernelsPtxSection) != nullptr;
}

moe_status_t GpuTrainStep::create(Layer &layer, std::unique_ptr<GpuTrainStep> &out) {
  if (!available(layer))
    return fail(MOE_INVALID_ARGUMENT, "layer " + layer.signature().layer +
                                          " takes no GPU training steps (an unsharded CUDA train artifact of "
                                          "this moec carries their kernels)");
  std::unique_ptr<GpuTrainStep> step(new GpuTrainStep(layer));
  CudaDevice &gpu = *layer.gpu;
  if (moe_status_t s = gpu.makeCurrent())
    return s;
  // The cubin when this GPU is the chip it was assembled for, else the PTX.
  const std::vector<uint8_t> *cubin = layer.artifact.section(kTrainKernelsCubinSection);
  const std::vector<uint8_t> *ptx = layer.artifact.section(kTrainKernelsPtxSection);
  // Held by value: a reference into parseTarget's temporary would dangle.
  std::optional<Target> target = parseTarget(layer.signature().target);
  if (!target)
    return fail(MOE_INVALID_FORMAT,
                "the artifact's target '" + layer.signature().target + "' is not one this runtime knows");
  bool exact = gpu.computeCapability() == target->computeCapability;
  std::string image =
      cubin && exact ? std::string(cubin->begin(), cubin->end()) : std::string(ptx->begin(), ptx->end());
  if (moe_status_t s = gpu.loadModule(image, step->module_))
    return s;
  out = std::move(step);
  return MOE_OK;
}

moe_status_t GpuTrainStep::launchAdamW(size_t param, uint64_t grad, moe_dtype_t gradType, const AdamWScalars &c,
                                       const std::map<std::string, AdamW::State> &initial) {
  Layer &layer = layer_;
  CudaDevice &gpu = *layer.gpu;
  const Tensor &p = layer.params[param];
  const int64_t n = p.numElements();
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  Moments &mo = moments_[p.name];
  if (!mo.master) {
    mo.count = n;
    for (DeviceBuffer *b : {&mo.master, &mo.m, &mo.v})
      if (moe_status_t s = gpu.allocate(bytes, *b))
        return s;
    auto saved = initial.find(p.name);
    if (saved != initial.end()) {
      const AdamW::State &st = saved->second;
      if (static_cast<int64_t>(st.master.size()) != n || st.m.size() != st.master.size() ||
          st.v.size() != st.master.size())
        return fail(MOE_INVALID_ARGUMENT, "the optimizer state of \"" + p.name + "\" holds " +
                                              std::to_string(st.master.size()) + " values; the parameter has " +
                                              std::to_string(n));
      for (auto [buffer, values] : {std::pair{&mo.master, &st.master}, {&mo.m, &st.m}, {&mo.v, &st.v}})
        if (moe_status_t s = gpu.upload(*buffer, values->data(), bytes))
          return s;
    } else {
      // The master starts as the bound value (the host's copy is current
      // until the first GPU step), the moments at zero.
      std::vector<float> master(static_cast<size_t>(n));
      loadFloats(p, 0, n, master.data());
      if (moe_status_t s = gpu.upload(mo.master, master.data(), bytes))
        return s;
      for (DeviceBuffer *b : {&mo.m, &mo.v})
        if (moe_status_t s = gpu.fill32(b->address(), 0, static_cast<size_t>(n)))
          return s;
    }
  }
  const std::string name = adamwKernelName(p.dtype, gradType);
  void *&fn = kernels_[name];
  if (!fn)
    if (moe_status_t s = module_.function(name, fn))
      return s;
  KernelArguments args;
  args.memref(layer.deviceParams[param].address(), n);
  args.memref(grad, n);
  for (const DeviceBuffer *b : {&mo.master, &mo.m, &mo.v})
    args.memref(b->address(), n);
  args.index(n);
  args.f32(takesWeightDecay(layer.signature().params[param].shape.size()) ? c.decay : c.undecayed);
  for (float v : {c.oneMinusBeta1, c.beta2, c.oneMinusBeta2, c.correction2Sqrt, c.eps, c.stepSize})
    args.f32(v);
  return gpu.launch(fn, {blocksFor(n, kAdamWThreads), 1, 1}, {kAdamWThreads, 1, 1}, args.pointers());
}

moe_status_t GpuTrainStep::step(const std::vector<Tensor> &inputs, const Tensor &target, const AdamWOptions &options,
                                int64_t t, double balanceRate, const std::map<std::string, AdamW::State> &initial,
                                double &loss) {
  Layer &layer = layer_;
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = layer.orderArguments(inputs, ordered, symbols))
    return s;
  // The inputs and the target uploaded for this step.
  DeviceArguments forwardArgs;
  if (moe_status_t s = layer.prepareGpuCall(ordered, forwardArgs))
    return s;
  DeviceBuffer targetOnDevice;
  if (moe_status_t s = layer.gpu->allocate(target.data.size(), targetOnDevice))
    return s;
  if (moe_status_t s = layer.gpu->upload(targetOnDevice, target.data.data(), target.data.size()))
    return s;
  return run(forwardArgs, symbols, targetOnDevice.address(), target.dtype, target.shape, options, t, balanceRate,
             initial, loss);
}

moe_status_t GpuTrainStep::holdData(const Tensor &x, const Tensor &target) {
  CudaDevice &gpu = *layer_.gpu;
  if (moe_status_t s = gpu.makeCurrent())
    return s;
  size_t freeBytes = 0, totalBytes = 0;
  if (moe_status_t s = gpu.memoryInfo(freeBytes, totalBytes))
    return s;
  // At most a quarter of the free memory: the step's own buffers come first.
  const size_t bytes = x.data.size() + target.data.size();
  if (bytes > freeBytes / 4)
    return fail(MOE_OUT_OF_MEMORY, "the training data (" + std::to_string(bytes) +
                                       " bytes) is more than a quarter of " + gpu.name() + "'s free memory");
  for (auto [buffer, tensor] : {std::pair{&data_.x, &x}, {&data_.target, &target}}) {
    if (moe_status_t s = gpu.allocate(tensor->data.size(), *buffer))
      return s;
    if (moe_status_t s = gpu.upload(*buffer, tensor->data.data(), tensor->data.size()))
      return s;
  }
  data_.xType = x.dtype;
  data_.targetType = target.dtype;
  data_.xShape = x.shape;
  data_.targetShape = target.shape;
  return gpu.synchronize();
}

moe_status_t GpuTrainStep::stepBatch(int64_t b, const AdamWOptions &options, int64_t t, double balanceRate,
                                     const std::map<std::string, AdamW::State> &initial, double &loss) {
  Layer &layer = layer_;
  const Signature &sig = layer.signature();
  if (!data_.x || sig.inputs.size() != 1 || data_.xShape.empty() || b < 0 || b >= data_.xShape[0])
    return fail(MOE_INVALID_ARGUMENT, "no training data batch " + std::to_string(b) + " on the device");
  // Batch b of the held x [batches, ...] and target [batches, ...], in place.
  auto batchOf = [&](const std::vector<int64_t> &all, moe_dtype_t dtype, uint64_t base, std::vector<int64_t> &shape) {
    shape.assign(all.begin() + 1, all.end());
    int64_t elements = 1;
    for (int64_t d : shape)
      elements *= d;
    return base + static_cast<uint64_t>(b * elements) * moe_dtype_size(dtype);
  };
  std::vector<int64_t> xShape, targetShape;
  uint64_t x = batchOf(data_.xShape, data_.xType, data_.x.address(), xShape);
  uint64_t target = batchOf(data_.targetShape, data_.targetType, data_.target.address(), targetShape);
  std::map<std::string, int64_t> symbols;
  if (moe_status_t s = checkShape(sig.inputs[0], data_.xType, xShape, "input", &symbols))
    return s;
  if (layer.params.size() != sig.params.size())
    return fail(MOE_INVALID_ARGUMENT, "bind the layer's parameters before running it");
  if (moe_status_t s = layer.gpu->makeCurrent())
    return s;
  if (moe_status_t s = layer.uploadParameters())
    return s;
  DeviceArguments forwardArgs;
  forwardArgs.descriptors.push_back(descriptor(reinterpret_cast<const void *>(x), xShape));
  for (size_t i = 0; i < layer.params.size(); ++i)
    forwardArgs.descriptors.push_back(
        descriptor(reinterpret_cast<const void *>(layer.deviceParams[i].address()), layer.params[i].shape));
  return run(forwardArgs, symbols, target, data_.targetType, targetShape, options, t, balanceRate, initial, loss);
}

moe_status_t GpuTrainStep::run(DeviceArguments &forwardArgs, std::map<std::string, int64_t> &symbols, uint64_t target,
                               moe_dtype_t targetType, const std::vector<int64_t> &targetShape,
                               const AdamWOptions &options, int64_t t, double balanceRate,
                               const std::map<std::string, AdamW::State> &initial, double &loss) {
  Layer &layer = layer_;
  CudaDevice &gpu = *layer.gpu;
  const Signature &sig = layer.signature();
  GpuCall forward;
  forward.device = &gpu;
  // The train forward where the backward takes residuals (the outputs, then
  // those); they stay in `forward`'s arena until the backward has run.
  const std::vector<TensorSpec> trainSpecs = trainForwardResults(sig);
  std::vector<int64_t> forwardResults = resultSlots(trainSpecs);
  if (moe_status_t s =
          callEntry(layer.trainEntry ? layer.trainEntry : layer.entry, forward, forwardArgs, forwardResults, {}))
    return s;
  std::vector<Tensor> outputs;
  std::vector<uint64_t> outputAt;
  if (moe_status_t s = resultShapes(sig.outputs, forwardResults, symbols, outputs, outputAt))
    return s;
  const Tensor &y = outputs[0];
  if (targetShape != y.shape || targetType != y.dtype)
    return fail(MOE_INVALID_ARGUMENT, "the target is " + std::string(moe_dtype_name(targetType)) + " " +
                                          shapeString(targetShape) + ", the layer's " + y.name + " " +
                                          moe_dtype_name(y.dtype) + " " + shapeString(y.shape));

  // The loss's cotangents: the squared error's for the first output (its
  // row sums for the loss), 1 for a scalar output (an auxiliary loss, part
  // of the loss), zeros for any other.
  const int64_t n = y.numElements();
  const int64_t rows = y.shape.empty() ? 1 : y.shape[0], cols = rows ? n / rows : 0;
  const size_t eltSize = moe_dtype_size(y.dtype);
  DeviceBuffer rowSums;
  std::vector<DeviceBuffer> cotangents(outputs.size());
  if (moe_status_t s = gpu.allocate(static_cast<size_t>(n) * eltSize, cotangents[0]))
    return s;
  if (moe_status_t s = gpu.allocate(static_cast<size_t>(std::max<int64_t>(rows, 1)) * sizeof(float), rowSums))
    return s;
  const std::string squaredError = squaredErrorKernelName(y.dtype);
  void *&errorFn = kernels_[squaredError];
  if (!errorFn)
    if (moe_status_t s = module_.function(squaredError, errorFn))
      return s;
  KernelArguments errorArgs;
  for (uint64_t at : {outputAt[0], target, cotangents[0].address()})
    errorArgs.memref(at, n);
  errorArgs.memref(rowSums.address(), rows);
  errorArgs.index(rows);
  errorArgs.index(cols);
  errorArgs.f32(n > 0 ? static_cast<float>(2.0 / static_cast<double>(n)) : 0.0f);
  if (rows > 0)
    if (moe_status_t s = gpu.launch(errorFn, {blocksFor(rows * 32, kSquaredErrorThreads), 1, 1},
                                    {kSquaredErrorThreads, 1, 1}, errorArgs.pointers()))
      return s;
  for (size_t o = 1; o < outputs.size(); ++o) {
    const int64_t count = outputs[o].numElements();
    if (moe_status_t s = gpu.allocate(static_cast<size_t>(count) * moe_dtype_size(outputs[o].dtype), cotangents[o]))
      return s;
    if (moe_status_t s =
            fillWith(gpu, cotangents[o].address(), outputs[o].dtype, count, outputs[o].shape.empty() ? 1.0f : 0.0f))
      return s;
  }

  // The backward on the forward's device inputs and parameters and these cotangents.
  DeviceArguments backwardArgs;
  backwardArgs.descriptors = forwardArgs.descriptors;
  for (size_t o = 0; o < outputs.size(); ++o)
    backwardArgs.descriptors.push_back(
        descriptor(reinterpret_cast<const void *>(cotangents[o].address()), outputs[o].shape));
  appendResultDescriptors(trainSpecs, forwardResults, sig.outputs.size(), backwardArgs.descriptors);
  GpuCall backward;
  backward.device = &gpu;
  std::vector<int64_t> backwardResults = resultSlots(sig.backward->gradients);
  if (moe_status_t s = callEntry(layer.backwardEntry, backward, backwardArgs, backwardResults, {}))
    return s;
  std::vector<Tensor> gradients;
  std::vector<uint64_t> gradientAt;
  if (moe_status_t s = resultShapes(sig.backward->gradients, backwardResults, symbols, gradients, gradientAt))
    return s;

  // AdamW on each trainable parameter with a gradient.
  const AdamWScalars scalars = adamwScalars(options, t);
  for (size_t i = 0; i < sig.params.size(); ++i) {
    if (!sig.params[i].trainable)
      continue;
    for (size_t g = 0; g < gradients.size(); ++g)
      if (gradients[g].name == "grad." + sig.params[i].name)
        if (moe_status_t s = launchAdamW(i, gradientAt[g], gradients[g].dtype, scalars, initial))
          return s;
  }

  // The loss (the one wait of the step), and the auxiliary losses' values.
  std::vector<float> sums(static_cast<size_t>(rows));
  if (rows > 0)
    if (moe_status_t s = gpu.download(sums.data(), rowSums.address(), sums.size() * sizeof(float)))
      return s;
  double squares = 0;
  for (float r : sums)
    squares += r;
  loss = n > 0 ? squares / static_cast<double>(n) : 0.0;
  for (size_t o = 1; o < outputs.size(); ++o)
    if (outputs[o].shape.empty()) {
      Tensor value = Tensor::zeros(outputs[o].name, outputs[o].dtype, {});
      if (moe_status_t s = gpu.download(value.data.data(), outputAt[o], value.data.size()))
        return s;
      loss += value.at(0);
    }

  // DeepSeek-V3's balance rule on the host: a bias and its loads are small.
  for (size_t i = 0; i < sig.params.size(); ++i) {
    if (sig.params[i].update != "balance")
      continue;
    size_t load = gradients.size();
    for (size_t g = 0; g < gradients.size(); ++g)
      if (gradients[g].name == "load." + sig.params[i].name)
        load = g;
    if (load == gradients.size())
      return fail(MOE_INTERNAL, "the backward returned no load for \"" + sig.params[i].name + "\"");
    Tensor loads = gradients[load], &bias = layer.params[i];
    loads.data.resize(static_cast<size_t>(loads.numElements()) * moe_dtype_size(loads.dtype));
    if (moe_status_t s = gpu.download(loads.data.data(), gradientAt[load], loads.data.size()))
      return s;
    if (moe_status_t s = gpu.download(bias.data.data(), layer.deviceParams[i].address(), bias.data.size()))
      return s;
    if (moe_status_t s = updateBalanceBias(bias, loads, balanceRate))
      return s;
    if (moe_status_t s = gpu.upload(layer.deviceParams[i], bias.data.data(), bias.data.size()))
      return s;
  }
  layer.hostParametersBehind = true;
  // Kernel faults surface here at the latest; the calls' buffers go back to
  // the pool after their last use.
  return gpu.synchronize();
}

moe_status_t GpuTrainStep::state(std::map<std::string, AdamW::State> &out) const {
  out.clear();
  CudaDevice &gpu = *layer_.gpu;
  if (moe_status_t s = gpu.makeCurrent())
    return s;
  for (const auto &[name, mo] : moments_) {
    AdamW::State &st = out[name];
    const size_t n = static_cast<size_t>(mo.count);
    for (auto [values, buffer] : {std::pair{&st.master, &mo.master}, {&st.m, &mo.m}, {&st.v, &mo.v}}) {
      values->resize(n);
      if (moe_status_t s = gpu.download(values->data(), *buffer, n * sizeof(float)))
        return s;
    }
  }
  return MOE_OK;
}

} // namespace moe::runtime
