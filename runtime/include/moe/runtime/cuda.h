// cuda.h - the runtime's CUDA backend: one GPU, its stream, a device memory
// pool, modules loaded from PTX, kernel launches and CUDA-graph capture.
//
// The driver is loaded at run time; on a machine without it every entry point
// returns MOE_UNAVAILABLE with the reason, so callers (and tests) can skip.
//
//   std::unique_ptr<CudaDevice> gpu;
//   if (CudaDevice::open(0, gpu) != MOE_OK) ...;       // moe_last_error() says why
//   CudaModule module;  gpu->loadModule(ptx, module);    // the PTX's JIT log on error
//   void *fn;           module.function("saxpy", fn);
//   DeviceBuffer x = gpu->allocate(bytes);               // from the pool
//   gpu->launch(fn, {blocks, 1, 1}, {256, 1, 1}, args);   // on the device's stream
//   CudaGraph graph;    gpu->capture([&] { ... launches ... }, graph);  gpu->replay(graph);
#ifndef MOE_RUNTIME_CUDA_H
#define MOE_RUNTIME_CUDA_H

#include "moe/runtime/status.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime {

class CudaDevice;
namespace cuda {
class KernelProfile;
}

/// Device memory from the pool; returned to it (not freed) on destruction.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer &&other) noexcept { *this = std::move(other); }
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  ~DeviceBuffer();
  uint64_t address() const { return ptr; }
  size_t size() const { return bytes; }
  explicit operator bool() const { return ptr != 0; }

private:
  friend class CudaDevice;
  CudaDevice *owner = nullptr;
  uint64_t ptr = 0;
  size_t bytes = 0, capacity = 0;
};

class CudaModule {
public:
  CudaModule() = default;
  CudaModule(CudaModule &&other) noexcept { *this = std::move(other); }
  CudaModule &operator=(CudaModule &&other) noexcept;
  ~CudaModule();
  /// A kernel of the module, by its symbol name.
  moe_status_t function(const std::string &name, void *&out) const;

private:
  friend class CudaDevice;
  void *module = nullptr;
};

class CudaGraph {
public:
  CudaGraph() = default;
  CudaGraph(CudaGraph &&other) noexcept { *this = std::move(other); }
  CudaGraph &operator=(CudaGraph &&other) noexcept;
  ~CudaGraph();

private:
  friend class CudaDevice;
  void *graph = nullptr, *exec = nullptr;
};

class CudaDevice {
public:
  ~CudaDevice();
  CudaDevice(const CudaDevice &) = delete;
  CudaDevice &operator=(const CudaDevice &) = delete;

  static moe_status_t open(int ordinal, std::unique_ptr<CudaDevice> &out);

  const std::string &name() const { return deviceName; }
  /// Compute capability, e.g. 90 for sm_90.
  int computeCapability() const { return capability; }
  /// Streaming multiprocessors (132 on an H200): the grid of a persistent kernel.
  int multiprocessors() const { return smCount; }

  /// Loads PTX (or a cubin); a bad image is MOE_INVALID_FORMAT with the JIT log.
  moe_status_t loadModule(const std::string &image, CudaModule &out);
  /// The same for an image in memory (PTX NUL-terminated), at a JIT
  /// optimisation level 0-4; `module` is the raw CUmodule, for code that owns
  /// and unloads it itself (compiled layers).
  moe_status_t loadImage(const void *image, int optLevel, void *&module);

  /// A buffer of at least `bytes` from the pool (sizes rounded to powers of two
  /// from 256 bytes); returned to the pool when the buffer dies.
  moe_status_t allocate(size_t bytes, DeviceBuffer &out);

  moe_status_t upload(const DeviceBuffer &to, const void *from, size_t bytes);
  moe_status_t download(void *to, const DeviceBuffer &from, size_t bytes);
  /// Copies `bytes` from device address `from` and waits for the copy.
  moe_status_t download(void *to, uint64_t from, size_t bytes);
  moe_status_t launch(void *function, std::array<unsigned, 3> grid, std::array<unsigned, 3> block,
                      std::vector<void *> args, unsigned sharedBytes = 0);
  /// The same with the driver's argument arrays (`params`, `extra`), for the
  /// compiled code's runtime ABI; timed when MOE_KERNEL_PROFILE is on.
  moe_status_t launch(void *function, std::array<unsigned, 3> grid, std::array<unsigned, 3> block, void **params,
                      void **extra, unsigned sharedBytes);
  moe_status_t synchronize();
  /// The device's free and total memory in bytes (cuMemGetInfo).
  moe_status_t memoryInfo(size_t &freeBytes, size_t &totalBytes) const;

  /// Records what `body` enqueues on the device's stream as a CUDA graph
  /// (nothing runs while capturing), ready to replay.
  moe_status_t capture(const std::function<moe_status_t()> &body, CudaGraph &out);
  moe_status_t replay(const CudaGraph &graph);

  /// Runs `body` (which enqueues work) between two events; `ms` is the GPU time
  /// between them. Synchronises.
  moe_status_t timed(const std::function<moe_status_t()> &body, double &ms);

  /// Enqueued device-to-device copy and fills, for the compiled code's runtime ABI.
  moe_status_t copy(uint64_t to, uint64_t from, size_t bytes);
  moe_status_t fill32(uint64_t to, uint32_t value, size_t count);
  moe_status_t fill16(uint64_t to, uint16_t value, size_t count);

  /// A TMA descriptor (the driver's CUtensorMap, 128 bytes) in device memory,
  /// for the row-major 3-D tensor of 2-byte elements (bf16, else f16) at
  /// device address `base` with `dims` innermost first: boxes of box[0] x
  /// box[1] x 1 elements, 128-byte swizzle, zeros past the edges. Made and
  /// uploaded (enqueued on the stream) once per tensor, then found again, so
  /// only a layer's first call makes them (a graph captures later calls).
  moe_status_t tensorMap(uint64_t base, bool bf16, std::array<uint64_t, 3> dims, std::array<uint32_t, 2> box,
                         uint64_t &deviceAddress);

  /// The driver's handles (CUstream, CUcontext), for code that calls the driver itself.
  void *streamHandle() const { return stream; }
  void *contextHandle() const { return context; }
  /// Makes this device's context current on the calling thread.
  moe_status_t makeCurrent();

  /// MOE_KERNEL_PROFILE's per-kernel timer, null when off or while a graph
  /// is being captured (its launches are not run then).
  cuda::KernelProfile *kernelProfile() const { return capturing ? nullptr : profile.get(); }

  /// Pool statistics: buffers handed out by cuMemAlloc, and reused ones.
  size_t allocations() const { return deviceAllocations; }
  size_t reuses() const { return poolReuses; }

private:
  CudaDevice() = default;
  friend class DeviceBuffer;
  void release(uint64_t ptr, size_t capacity);

  int ordinal = 0, capability = 0, smCount = 1;
  std::string deviceName;
  void *context = nullptr, *stream = nullptr;
  std::multimap<size_t, uint64_t> freeBuffers; ///< capacity -> address
  std::vector<uint64_t> allBuffers;
  size_t deviceAllocations = 0, poolReuses = 0;
  std::unique_ptr<cuda::KernelProfile> profile;
  bool capturing = false;
  /// tensorMap's descriptors: the host copy (the source of the enqueued
  /// upload) and the device buffer, by what they describe. Declared after the
  /// pool, so their buffers return to it before it goes.
  struct TensorMap {
    std::array<uint64_t, 16> host{};
    DeviceBuffer device;
  };
  std::map<std::array<uint64_t, 7>, TensorMap> tensorMaps;
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_CUDA_H
