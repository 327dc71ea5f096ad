// layer_gpu.h - how a GPU layer's entry points are called: the arguments on
// the device and one call under a GpuCall (layer_gpu.cc), shared by Layer
// and the GPU training step (gpu_train_step.cc).
#ifndef MOE_RUNTIME_LAYER_GPU_H
#define MOE_RUNTIME_LAYER_GPU_H

#include "moe/runtime/comm.h"
#include "moe/runtime/cuda.h"
#include "moe/runtime/mesh.h"
#include "moe/runtime/tensor.h"

#include "cuda/gpu_call.h"

#include <vector>

namespace moe::runtime {

/// Inputs on the device (the buffers uploaded for the call), with the
/// descriptors of every argument.
struct DeviceArguments {
  std::vector<DeviceBuffer> inputs;
  std::vector<std::vector<int64_t>> descriptors;
};

/// The communicator and mesh a sharded layer's collectives run on (null
/// communicator: unsharded).
struct Collectives {
  Communicator *comm = nullptr;
  const Mesh *mesh = nullptr;
};

/// The descriptors of `ordered` (inputs, then the parameters, then a
/// backward's cotangents): inputs and cotangents uploaded into `out.inputs`,
/// the parameters' from `deviceParams`.
moe_status_t placeArguments(CudaDevice &gpu, const std::vector<const Tensor *> &ordered,
                            const std::vector<DeviceBuffer> &deviceParams, size_t numInputs, DeviceArguments &out);

/// Calls the entry point once under `call` (and, sharded, the layer's
/// communicator); results land in `results`.
moe_status_t callEntry(void (*entry)(void **), GpuCall &call, DeviceArguments &args, std::vector<int64_t> &results,
                       Collectives collectives);

} // namespace moe::runtime

#endif // MOE_RUNTIME_LAYER_GPU_H
