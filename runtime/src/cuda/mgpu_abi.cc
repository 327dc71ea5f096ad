// mgpu_abi.cc - MLIR's GPU runtime ABI (the `mgpu*` functions that
// gpu-to-llvm emits calls to), implemented over the runtime's CudaDevice.
//
// Compiled GPU layers are host shared objects whose code loads their PTX and
// launches kernels through these functions; the runtime exports them, so a
// layer needs neither the CUDA runtime library nor MLIR's wrappers. Semantics
// that differ from MLIR's CUDA wrappers, on purpose:
// - streams: every stream is the device's stream. A layer's kernels run in
//   order on it, and mgpuStreamSynchronize does not wait: the runtime waits
//   when it reads results, so a call has no device-to-host synchronisation
//   and can be captured in a CUDA graph.
// - memory: mgpuMemAlloc takes buffers from the device pool into the call's
//   arena; mgpuMemFree leaves them there until the call's results are read.
// Failures are recorded on the current call (these functions return nothing)
// and reported by Layer::run.
#include "gpu_call.h"
#include "moe/runtime/gpu_entry_points.h"

#include "driver.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace moe::runtime {
namespace {
thread_local GpuCall *current = nullptr;

/// The current call; a call made outside one (a layer used without the
/// runtime) is reported once on stderr.
GpuCall *call(const char *fn) {
  if (!current)
    std::fprintf(stderr, "moe runtime: %s called outside a layer call\n", fn);
  return current;
}

} // namespace

GpuCallScope::GpuCallScope(GpuCall &call) : previous(current) { current = &call; }
GpuCallScope::~GpuCallScope() { current = previous; }
GpuCall *currentGpuCall() { return current; }

} // namespace moe::runtime

using namespace moe::runtime;
using namespace moe::runtime::cuda;

namespace {

/// The device's loadImage; a failure is recorded on the call unless `quiet`.
void *loadImage(GpuCall *c, const void *image, int optLevel, bool quiet) {
  void *module = nullptr;
  if (moe_status_t s = c->device->loadImage(image, optLevel, module)) {
    if (!quiet)
      c->failWith(s);
    return nullptr;
  }
  return module;
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) void *mgpuModuleLoadJIT(void *ptx, int optLevel) {
  GpuCall *c = call("mgpuModuleLoadJIT");
  return c ? loadImage(c, ptx, optLevel, /*quiet=*/false) : nullptr;
}

// A cubin; on a GPU it was not built for (CUDA_ERROR_NO_BINARY_FOR_GPU, 209),
// the artifact's PTX instead, compiled by the driver.
__attribute__((visibility("default"))) void *mgpuModuleLoad(void *image, size_t) {
  GpuCall *c = call("mgpuModuleLoad");
  if (!c)
    return nullptr;
  bool canFallBack = c->fallbackPtx && !c->fallbackPtx->empty();
  void *module = loadImage(c, image, 4, /*quiet=*/canFallBack);
  if (module || !canFallBack)
    return module;
  std::string ptx(c->fallbackPtx->begin(), c->fallbackPtx->end());
  return loadImage(c, ptx.c_str(), 4, /*quiet=*/false);
}

__attribute__((visibility("default"))) void mgpuModuleUnload(void *module) {
  const Driver *d = nullptr;
  if (module && loadDriver(d) == MOE_OK)
    d->cuModuleUnload(static_cast<CUmodule>(module));
}

__attribute__((visibility("default"))) void *mgpuModuleGetFunction(void *module, const char *name) {
  GpuCall *c = call("mgpuModuleGetFunction");
  const Driver *d = nullptr;
  if (!c || !module || loadDriver(d) != MOE_OK) {
    if (c && !module)
      c->failWith(fail(MOE_INVALID_FORMAT, std::string("kernel ") + name + ": the layer's GPU module did not load"));
    return nullptr;
  }
  CUfunction fn = nullptr;
  if (moe_status_t s = check(d->cuModuleGetFunction(&fn, static_cast<CUmodule>(module), name),
                             std::string("finding kernel ") + name))
    c->failWith(s);
  return fn;
}

__attribute__((visibility("default"))) void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                                             intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                                                             intptr_t blockZ, int32_t smem, void *, void **params,
                                                             void **extra, size_t) {
  GpuCall *c = call("mgpuLaunchKernel");
  const Driver *d = nullptr;
  if (!c || !function || c->errorStatus != MOE_OK || loadDriver(d) != MOE_OK)
    return;
  if (gridX == 0 || gridY == 0 || gridZ == 0)
    return; // an empty launch (no tokens): nothing to do
  // Set on every such launch (a host-side call, cheap next to a launch): a
  // cache keyed by the function handle could outlive an unloaded module whose
  // handle the driver hands out again.
  if (smem > 48 * 1024)
    if (moe_status_t s = check(d->cuFuncSetAttribute(static_cast<CUfunction>(function),
                                                     CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                               "allowing " + std::to_string(smem) + " bytes of shared memory")) {
      c->failWith(s);
      return;
    }
  if (moe_status_t s = c->device->launch(
          function, {static_cast<unsigned>(gridX), static_cast<unsigned>(gridY), static_cast<unsigned>(gridZ)},
          {static_cast<unsigned>(blockX), static_cast<unsigned>(blockY), static_cast<unsigned>(blockZ)}, params, extra,
          static_cast<unsigned>(smem)))
    c->failWith(s);
}

// Not MLIR's: the TMA descriptor the wgmma GEMM with --gpu-gemm-tma loads its
// weights through (CudaDevice::tensorMap): the device address of a CUtensorMap
// for the [d2][d1][d0] tensor of 2-byte elements at `base`, or 0 with the
// failure recorded (the call then launches nothing more).
__attribute__((visibility("default"))) uint64_t moeCudaTensorMap(uint64_t base, int64_t bf16, int64_t d0, int64_t d1,
                                                                 int64_t d2, int64_t box0, int64_t box1) {
  GpuCall *c = call("moeCudaTensorMap");
  if (!c || c->errorStatus != MOE_OK)
    return 0;
  uint64_t address = 0;
  if (moe_status_t s = c->device->tensorMap(
          base, bf16 != 0, {static_cast<uint64_t>(d0), static_cast<uint64_t>(d1), static_cast<uint64_t>(d2)},
          {static_cast<uint32_t>(box0), static_cast<uint32_t>(box1)}, address)) {
    c->failWith(s);
    return 0;
  }
  return address;
}

// Not MLIR's: the device's multiprocessors, which a persistent GEMM
// (--gpu-gemm-persistent) launches one block on each of; 1 outside a call.
__attribute__((visibility("default"))) int64_t moeCudaMultiprocessors() {
  GpuCall *c = call("moeCudaMultiprocessors");
  return c ? c->device->multiprocessors() : 1;
}

__attribute__((visibility("default"))) void *mgpuStreamCreate() {
  GpuCall *c = call("mgpuStreamCreate");
  return c ? c->device->streamHandle() : nullptr;
}
__attribute__((visibility("default"))) void mgpuStreamDestroy(void *) {}
// Deliberately no wait: see the file comment.
__attribute__((visibility("default"))) void mgpuStreamSynchronize(void *) {}
__attribute__((visibility("default"))) void mgpuStreamWaitEvent(void *, void *) {}
// One stream: an event between two points of it orders nothing new.
__attribute__((visibility("default"))) void *mgpuEventCreate() { return reinterpret_cast<void *>(1); }
__attribute__((visibility("default"))) void mgpuEventDestroy(void *) {}
__attribute__((visibility("default"))) void mgpuEventSynchronize(void *) {}
__attribute__((visibility("default"))) void mgpuEventRecord(void *, void *) {}

__attribute__((visibility("default"))) void *mgpuMemAlloc(uint64_t bytes, void *, bool) {
  GpuCall *c = call("mgpuMemAlloc");
  if (!c)
    return nullptr;
  DeviceBuffer buffer;
  if (moe_status_t s = c->device->allocate(bytes ? bytes : 1, buffer)) {
    c->failWith(s);
    return nullptr;
  }
  void *address = reinterpret_cast<void *>(buffer.address());
  c->buffers.push_back(std::move(buffer));
  return address;
}

__attribute__((visibility("default"))) void mgpuMemFree(void *, void *) {}

__attribute__((visibility("default"))) void mgpuMemcpy(void *dst, void *src, size_t bytes, void *) {
  GpuCall *c = call("mgpuMemcpy");
  if (c && bytes)
    if (moe_status_t s = c->device->copy(reinterpret_cast<uint64_t>(dst), reinterpret_cast<uint64_t>(src), bytes))
      c->failWith(s);
}

__attribute__((visibility("default"))) void mgpuMemset32(void *dst, unsigned value, size_t count, void *) {
  GpuCall *c = call("mgpuMemset32");
  if (c && count)
    if (moe_status_t s = c->device->fill32(reinterpret_cast<uint64_t>(dst), value, count))
      c->failWith(s);
}

__attribute__((visibility("default"))) void mgpuMemset16(void *dst, unsigned short value, size_t count, void *) {
  GpuCall *c = call("mgpuMemset16");
  if (c && count)
    if (moe_status_t s = c->device->fill16(reinterpret_cast<uint64_t>(dst), value, count))
      c->failWith(s);
}

} // extern "C"
