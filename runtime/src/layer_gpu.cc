// layer_gpu.cc - running a cuda-* layer: parameters kept on the device,
// inputs uploaded, the host code called under a GpuCall (its launches are
// enqueued on the device's stream), outputs downloaded; CUDA-graph benchmarks.
#include "moe/runtime/layer.h"

#include "cuda/gpu_call.h"
#include "layer_abi.h"
#include "layer_gpu.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>

namespace moe::runtime {

moe_status_t openGpuFor(const Target &target, std::unique_ptr<CudaDevice> &out) {
  // "cuda-sm_90a": the architecture-specific variant runs on exactly 9.0.
  const std::string &arch = target.chip;
  bool specific = target.archSpecific;
  int wanted = target.computeCapability;
  // One GPU a rank (torchrun's LOCAL_RANK, Open MPI's local rank), as the
  // NCCL communicator opens it.
  if (moe_status_t s = CudaDevice::open(static_cast<int>(detectLaunch().localRank), out))
    return s;
  int have = out->computeCapability();
  if (specific ? have != wanted : have < wanted)
    return fail(MOE_UNAVAILABLE,
                "artifact for " + arch + " cannot run on " + out->name() + " (sm_" + std::to_string(have) + ")");
  return MOE_OK;
}

std::string Layer::deviceName() const { return gpu ? gpu->name() : "cpu"; }

moe_status_t Layer::uploadParameters() {
  if (deviceParams.size() == params.size())
    return MOE_OK;
  deviceParams.clear();
  // The parameters must fit the device's free memory, checked before the
  // first allocation so that the answer names the bytes, not a CUDA error.
  size_t needed = 0, freeBytes = 0, totalBytes = 0;
  for (const Tensor &p : params)
    needed += p.data.size();
  if (moe_status_t s = gpu->memoryInfo(freeBytes, totalBytes))
    return s;
  if (needed > freeBytes)
    return fail(MOE_OUT_OF_MEMORY, "the layer's parameters need " + std::to_string(needed) + " bytes on " +
                                       gpu->name() + ", which has " + std::to_string(freeBytes) + " of " +
                                       std::to_string(totalBytes) + " bytes free");
  for (const Tensor &p : params) {
    DeviceBuffer buffer;
    if (moe_status_t s = gpu->allocate(p.data.size(), buffer))
      return s;
    if (moe_status_t s = gpu->upload(buffer, p.data.data(), p.data.size()))
      return s;
    deviceParams.push_back(std::move(buffer));
  }
  return gpu->synchronize();
}

moe_status_t Layer::pullParameters() {
  if (!hostParametersBehind)
    return MOE_OK;
  if (moe_status_t s = gpu->makeCurrent())
    return s;
  for (size_t i = 0; i < params.size(); ++i)
    if (moe_status_t s = gpu->download(params[i].data.data(), deviceParams[i], params[i].data.size()))
      return s;
  hostParametersBehind = false;
  return MOE_OK;
}

moe_status_t placeArguments(CudaDevice &gpu, const std::vector<const Tensor *> &ordered,
                            const std::vector<DeviceBuffer> &deviceParams, size_t numInputs, DeviceArguments &out) {
  for (size_t i = 0; i < ordered.size(); ++i) {
    const Tensor &t = *ordered[i];
    uint64_t address;
    // Inputs, and a backward's cotangents after the parameters, are uploaded.
    if (i < numInputs || i >= numInputs + deviceParams.size()) {
      DeviceBuffer buffer;
      if (moe_status_t s = gpu.allocate(t.data.size(), buffer))
        return s;
      if (moe_status_t s = gpu.upload(buffer, t.data.data(), t.data.size()))
        return s;
      address = buffer.address();
      out.inputs.push_back(std::move(buffer));
    } else {
      address = deviceParams[i - numInputs].address();
    }
    out.descriptors.push_back(descriptor(reinterpret_cast<const void *>(address), t.shape));
  }
  return MOE_OK;
}

moe_status_t callEntry(void (*entry)(void **), GpuCall &call, DeviceArguments &args, std::vector<int64_t> &results,
                       Collectives collectives) {
  std::vector<void *> pointers{results.data()};
  for (auto &d : args.descriptors)
    pointers.push_back(d.data());
  moe_status_t exchanged = MOE_OK;
  {
    GpuCallScope scope(call);
    std::optional<CallCommunicator> onMesh;
    if (collectives.comm)
      onMesh.emplace(collectives.comm, *collectives.mesh);
    entry(pointers.data());
    if (collectives.comm)
      exchanged = CallCommunicator::status();
  }
  if (exchanged != MOE_OK)
    return exchanged; // its message is the collective's
  if (call.errorStatus != MOE_OK)
    return fail(call.errorStatus, call.error);
  return MOE_OK;
}

namespace {

/// A layer's collectives (unsharded: none).
Collectives collectivesOf(const Layer &layer) { return {layer.communicator(), &layer.signature().mesh}; }

} // namespace

moe_status_t Layer::prepareGpuCall(const std::vector<const Tensor *> &ordered, DeviceArguments &args) {
  if (moe_status_t s = gpu->makeCurrent())
    return s;
  if (moe_status_t s = uploadParameters())
    return s;
  return placeArguments(*gpu, ordered, deviceParams, signature().inputs.size(), args);
}

moe_status_t Layer::runOnGpu(void (*fn)(void **), const std::vector<TensorSpec> &resultSpecs,
                             const std::vector<const Tensor *> &ordered, std::map<std::string, int64_t> &symbols,
                             std::vector<Tensor> &outputs, bool residualsFirst, const KeptResiduals *residuals,
                             KeptResiduals *keepResults) {
  if (isSharded() && !comm)
    return fail(MOE_INVALID_ARGUMENT, "the artifact is placed on mesh " + signature().mesh.toString() +
                                          "; attach the rank's NCCL communicator first (moe-run does)");
  DeviceArguments args;
  if (moe_status_t s = prepareGpuCall(ordered, args))
    return s;
  GpuCall call;
  call.device = gpu.get();
  if (residualsFirst) {
    // The train forward in this call: its residuals stay in the call's arena.
    const Signature &sig = signature();
    DeviceArguments forwardArgs;
    forwardArgs.descriptors.assign(args.descriptors.begin(),
                                   args.descriptors.begin() + sig.inputs.size() + sig.params.size());
    std::vector<TensorSpec> trainSpecs = trainForwardResults(sig);
    std::vector<int64_t> trained = resultSlots(trainSpecs);
    if (moe_status_t s = callEntry(trainEntry, call, forwardArgs, trained, collectivesOf(*this)))
      return s;
    appendResultDescriptors(trainSpecs, trained, sig.outputs.size(), args.descriptors);
  }
  if (residuals)
    args.descriptors.insert(args.descriptors.end(), residuals->deviceDescriptors.begin(),
                            residuals->deviceDescriptors.end());
  std::vector<int64_t> results = resultSlots(resultSpecs);
  if (moe_status_t s = callEntry(fn, call, args, results, collectivesOf(*this)))
    return s;
  std::vector<uint64_t> data;
  moe_status_t status = resultShapes(resultSpecs, results, symbols, outputs, data);
  // A train forward's residuals: their buffers move out of the call's arena,
  // their descriptors kept; only the outputs are downloaded.
  const size_t downloaded = keepResults ? signature().outputs.size() : outputs.size();
  if (keepResults) {
    appendResultDescriptors(resultSpecs, results, downloaded, keepResults->deviceDescriptors);
    for (size_t i = downloaded; i < data.size(); ++i) {
      const DeviceBuffer *holder = call.find(data[i]);
      if (!holder) {
        if (outputs[i].numElements() == 0)
          continue;
        return fail(MOE_INTERNAL, "residual \"" + outputs[i].name + "\" does not lie in GPU memory of this call");
      }
      auto at = call.buffers.begin() + (holder - call.buffers.data());
      keepResults->deviceBuffers.push_back(std::move(*at));
      call.buffers.erase(at);
    }
    outputs.resize(downloaded);
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    size_t bytes = static_cast<size_t>(outputs[i].numElements()) * moe_dtype_size(outputs[i].dtype);
    outputs[i].data.resize(bytes);
    // An output must lie in a buffer of this call or be an argument (never
    // copy from an address the code did not produce).
    const DeviceBuffer *holder = call.find(data[i]);
    bool inArgument = false;
    for (const DeviceBuffer &b : args.inputs)
      inArgument = inArgument || (data[i] >= b.address() && data[i] + bytes <= b.address() + b.size());
    for (const DeviceBuffer &b : deviceParams)
      inArgument = inArgument || (data[i] >= b.address() && data[i] + bytes <= b.address() + b.size());
    if (bytes && !inArgument && (!holder || data[i] + bytes > holder->address() + holder->size()))
      return fail(MOE_INTERNAL, "output \"" + outputs[i].name + "\" does not lie in GPU memory of this call");
    if (bytes)
      if (moe_status_t s = gpu->download(outputs[i].data.data(), data[i], bytes))
        return s;
  }
  // Kernel faults surface at the latest here.
  if (moe_status_t s = gpu->synchronize())
    return s;
  return status;
}

moe_status_t Layer::benchmark(const std::vector<Tensor> &inputs, unsigned iterations, std::vector<double> &seconds,
                              bool eager, std::vector<double> *collectiveSeconds) {
  seconds.clear();
  if (collectiveSeconds)
    collectiveSeconds->clear();
  // `iterations` calls of `once`, each timed on the host (and its time in collectives).
  auto timeCalls = [&](const std::function<moe_status_t()> &once) {
    auto collectiveTime = [&] { return comm ? comm->collectiveSeconds() : 0.0; };
    for (unsigned i = 0; i < iterations; ++i) {
      double inCollectives = collectiveTime();
      auto t0 = std::chrono::steady_clock::now();
      if (moe_status_t s = once())
        return s;
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (collectiveSeconds)
        collectiveSeconds->push_back(collectiveTime() - inCollectives);
    }
    return MOE_OK;
  };
  if (!gpu) {
    std::vector<Tensor> outputs;
    if (moe_status_t s = run(inputs, outputs)) // warm-up
      return s;
    return timeCalls([&] { return run(inputs, outputs); });
  }
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = orderArguments(inputs, ordered, symbols))
    return s;
  return benchmarkOnGpu({{entry, &signature().outputs, ordered}}, iterations, seconds, eager, timeCalls);
}

moe_status_t Layer::benchmarkBackward(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                                      unsigned iterations, std::vector<double> &seconds, bool eager) {
  seconds.clear();
  auto timeCalls = [&](const std::function<moe_status_t()> &once) {
    for (unsigned i = 0; i < iterations; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      if (moe_status_t s = once())
        return s;
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return MOE_OK;
  };
  std::vector<Tensor> outputs, gradients;
  if (!gpu || isSharded()) {
    // A training step: the forward keeping its residuals, then the backward.
    auto step = [&] {
      moe_status_t s = forwardForBackward(inputs, outputs);
      return s != MOE_OK ? s : backward(inputs, cotangents, gradients);
    };
    if (moe_status_t s = step()) // warm-up
      return s;
    return timeCalls(step);
  }
  if (!backwardEntry)
    return fail(MOE_INVALID_ARGUMENT, "the artifact has no backward: build it with moec build --train");
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = orderArguments(inputs, ordered, symbols))
    return s;
  // The forward a training step runs: the train forward where it keeps residuals.
  const std::vector<TensorSpec> trainSpecs = trainForwardResults(signature());
  GpuBenchCall forward{trainEntry ? trainEntry : entry, &trainSpecs, ordered};
  for (const TensorSpec &spec : signature().outputs)
    for (const Tensor &t : cotangents)
      if (t.name == spec.name)
        ordered.push_back(&t);
  if (ordered.size() != signature().inputs.size() + signature().params.size() + signature().outputs.size())
    return fail(MOE_INVALID_ARGUMENT, "the backward's benchmark needs a cotangent per output, named as the output");
  GpuBenchCall back{backwardEntry, &signature().backward->gradients, ordered, /*residualsFromPrevious=*/true};
  return benchmarkOnGpu({forward, back}, iterations, seconds, eager, timeCalls);
}

moe_status_t
Layer::benchmarkOnGpu(const std::vector<GpuBenchCall> &calls, unsigned iterations, std::vector<double> &seconds,
                      bool eager, const std::function<moe_status_t(const std::function<moe_status_t()> &)> &timeCalls) {
  std::vector<DeviceArguments> args(calls.size());
  std::vector<std::vector<int64_t>> results;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (moe_status_t s = prepareGpuCall(calls[i].ordered, args[i]))
      return s;
    results.push_back(resultSlots(*calls[i].results));
  }
  // The calls in order on `call` (one arena for all of them).
  auto callAll = [&](GpuCall &call, Collectives collectives) {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].residualsFromPrevious && i > 0) {
        // This call's residuals: where the previous call just put them.
        args[i].descriptors.resize(calls[i].ordered.size());
        appendResultDescriptors(*calls[i - 1].results, results[i - 1], signature().outputs.size(), args[i].descriptors);
      }
      if (moe_status_t s = callEntry(calls[i].fn, call, args[i], results[i], collectives))
        return s;
    }
    return MOE_OK;
  };
  {
    GpuCall warm; // loads nothing new: the first call's JIT work stays out of the graph
    warm.device = gpu.get();
    if (moe_status_t s = callAll(warm, collectivesOf(*this)))
      return s;
    if (moe_status_t s = gpu->synchronize())
      return s;
  }
  if (eager || isSharded()) {
    // Plain calls, inputs on the device, each timed to its last kernel.
    return timeCalls([&] {
      GpuCall call;
      call.device = gpu.get();
      if (moe_status_t s = callAll(call, collectivesOf(*this)))
        return s;
      return gpu->synchronize();
    });
  }
  // The graph's buffers belong to `captured` until the graph is gone.
  GpuCall captured;
  captured.device = gpu.get();
  CudaGraph graph;
  if (moe_status_t s = gpu->capture([&] { return callAll(captured, {}); }, graph))
    return s;
  if (moe_status_t s = gpu->replay(graph))
    return s;
  if (moe_status_t s = gpu->synchronize())
    return s;
  for (unsigned i = 0; i < iterations; ++i) {
    double ms = 0;
    if (moe_status_t s = gpu->timed([&] { return gpu->replay(graph); }, ms))
      return s;
    seconds.push_back(ms / 1e3);
  }
  return MOE_OK;
}

} // namespace moe::runtime
