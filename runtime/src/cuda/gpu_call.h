// gpu_call.h - the layer call in progress on this thread, as seen by the
// compiled code's GPU runtime ABI (mgpu_abi.cc).
//
// A GPU layer's host code calls MLIR's `mgpu*` functions. The runtime answers
// them against the GpuCall installed on the calling thread: one device, one
// stream (every launch of a call is ordered on it, so nothing waits for the
// GPU inside a call), and an arena of device buffers that lives as long as
// the call (or the CUDA graph captured from it).
#ifndef MOE_RUNTIME_CUDA_GPU_CALL_H
#define MOE_RUNTIME_CUDA_GPU_CALL_H

#include "moe/runtime/cuda.h"

#include "../comm/expert_exchange_plan.h"

#include <string>
#include <vector>

namespace moe::runtime {

struct GpuCall {
  CudaDevice *device = nullptr;
  /// Every buffer the code allocated during the call (mgpuMemFree does not
  /// return them early: the arena is released after the call's results are read).
  std::vector<DeviceBuffer> buffers;
  /// The expert-parallel exchanges planned so far in the call (expert_exchange.cc).
  std::vector<ExpertExchangePlan> exchangePlans;
  /// While an artifact loads: its PTX, for a cubin this GPU cannot run.
  const std::vector<uint8_t> *fallbackPtx = nullptr;
  /// The first failure inside an ABI function, which cannot return one.
  std::string error;
  moe_status_t errorStatus = MOE_OK;

  void failWith(moe_status_t status) {
    if (errorStatus == MOE_OK) {
      errorStatus = status;
      error = moe_last_error();
    }
  }
  /// The buffer that holds `address`, or null.
  const DeviceBuffer *find(uint64_t address) const {
    for (const DeviceBuffer &b : buffers)
      if (address >= b.address() && address < b.address() + b.size())
        return &b;
    return nullptr;
  }
};

/// Installs `call` as the calling thread's current GPU call for its lifetime.
class GpuCallScope {
public:
  explicit GpuCallScope(GpuCall &call);
  ~GpuCallScope();
  GpuCallScope(const GpuCallScope &) = delete;
  GpuCallScope &operator=(const GpuCallScope &) = delete;

private:
  GpuCall *previous;
};

/// The calling thread's current GPU call, or null outside one.
GpuCall *currentGpuCall();

} // namespace moe::runtime

#endif // MOE_RUNTIME_CUDA_GPU_CALL_H
