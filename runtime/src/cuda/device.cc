// device.cc - one GPU: context, stream, memory pool, modules, launches, graphs.
#include "moe/runtime/cuda.h"

#include "driver.h"
#include "kernel_profile.h"

namespace moe::runtime {

using namespace cuda;

namespace {
const Driver *api() {
  const Driver *d = nullptr;
  (void)loadDriver(d);
  return d;
}
} // namespace

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    if (owner && ptr)
      owner->release(ptr, capacity);
    owner = other.owner;
    ptr = other.ptr;
    bytes = other.bytes;
    capacity = other.capacity;
    other.owner = nullptr;
    other.ptr = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (owner && ptr)
    owner->release(ptr, capacity);
}

CudaModule &CudaModule::operator=(CudaModule &&other) noexcept {
  if (this != &other) {
    if (module)
      api()->cuModuleUnload(static_cast<CUmodule>(module));
    module = other.module;
    other.module = nullptr;
  }
  return *this;
}

CudaModule::~CudaModule() {
  if (module)
    api()->cuModuleUnload(static_cast<CUmodule>(module));
}

moe_status_t CudaModule::function(const std::string &name, void *&out) const {
  CUfunction fn = nullptr;
  CUresult r = api()->cuModuleGetFunction(&fn, static_cast<CUmodule>(module), name.c_str());
  if (r != CUDA_SUCCESS)
    return fail(MOE_NOT_FOUND, "the GPU module has no kernel \"" + name + "\" (CUDA error " + std::to_string(r) + ")");
  out = fn;
  return MOE_OK;
}

CudaGraph &CudaGraph::operator=(CudaGraph &&other) noexcept {
  if (this != &other) {
    this->~CudaGraph();
    graph = other.graph;
    exec = other.exec;
    other.graph = other.exec = nullptr;
  }
  return *this;
}

CudaGraph::~CudaGraph() {
  if (exec)
    api()->cuGraphExecDestroy(static_cast<CUgraphExec>(exec));
  if (graph)
    api()->cuGraphDestroy(static_cast<CUgraph>(graph));
  exec = graph = nullptr;
}

moe_status_t CudaDevice::open(int ordinal, std::unique_ptr<CudaDevice> &out) {
  const Driver *d;
  if (moe_status_t s = loadDriver(d))
    return s;
  int count = 0;
  if (moe_status_t s = check(d->cuDeviceGetCount(&count), "cuDeviceGetCount"))
    return s;
  if (ordinal < 0 || ordinal >= count)
    return fail(MOE_UNAVAILABLE,
                "GPU " + std::to_string(ordinal) + " does not exist (" + std::to_string(count) + " GPUs)");
  std::unique_ptr<CudaDevice> device(new CudaDevice());
  device->ordinal = ordinal;
  CUdevice dev;
  if (moe_status_t s = check(d->cuDeviceGet(&dev, ordinal), "cuDeviceGet"))
    return s;
  char name[256] = {};
  d->cuDeviceGetName(name, sizeof name, dev);
  device->deviceName = name;
  int major = 0, minor = 0;
  d->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  d->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  device->capability = major * 10 + minor;
  d->cuDeviceGetAttribute(&device->smCount, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  CUcontext ctx;
  if (moe_status_t s = check(d->cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain"))
    return s;
  device->context = ctx;
  if (moe_status_t s = check(d->cuCtxSetCurrent(ctx), "cuCtxSetCurrent"))
    return s;
  CUstream stream;
  if (moe_status_t s = check(d->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate"))
    return s;
  device->stream = stream;
  device->profile = cuda::KernelProfile::fromEnvironment();
  out = std::move(device);
  return MOE_OK;
}

CudaDevice::~CudaDevice() {
  const Driver *d = api();
  if (!d || !context)
    return;
  d->cuCtxSetCurrent(static_cast<CUcontext>(context));
  if (profile)
    profile->report(*d, stderr);
  if (stream) {
    d->cuStreamSynchronize(static_cast<CUstream>(stream));
    d->cuStreamDestroy(static_cast<CUstream>(stream));
  }
  for (uint64_t p : allBuffers)
    d->cuMemFree(p);
  d->cuDevicePrimaryCtxRelease(ordinal);
}

moe_status_t CudaDevice::loadModule(const std::string &image, CudaModule &out) {
  // The driver needs a NUL-terminated PTX image.
  std::string terminated = image;
  terminated.push_back('\0');
  void *module = nullptr;
  if (moe_status_t s = loadImage(terminated.data(), 4, module))
    return s;
  out = CudaModule();
  out.module = module;
  return MOE_OK;
}

moe_status_t CudaDevice::loadImage(const void *image, int optLevel, void *&module) {
  const Driver *d = api();
  d->cuCtxSetCurrent(static_cast<CUcontext>(context));
  std::string log(16384, '\0');
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log.data(), reinterpret_cast<void *>(static_cast<uintptr_t>(log.size())),
                    reinterpret_cast<void *>(static_cast<uintptr_t>(optLevel < 0 || optLevel > 4 ? 4 : optLevel))};
  CUmodule loaded = nullptr;
  CUresult r = d->cuModuleLoadDataEx(&loaded, image, 3, options, values);
  if (r != CUDA_SUCCESS) {
    log.resize(log.find('\0'));
    return fail(MOE_INVALID_FORMAT,
                "the GPU code does not load (CUDA error " + std::to_string(r) + ")" + (log.empty() ? "" : ": " + log));
  }
  module = loaded;
  return MOE_OK;
}

moe_status_t CudaDevice::allocate(size_t bytes, DeviceBuffer &out) {
  size_t capacity = 256;
  while (capacity < bytes)
    capacity *= 2;
  uint64_t ptr = 0;
  auto it = freeBuffers.find(capacity);
  if (it != freeBuffers.end()) {
    ptr = it->second;
    freeBuffers.erase(it);
    ++poolReuses;
  } else {
    const Driver *d = api();
    d->cuCtxSetCurrent(static_cast<CUcontext>(context));
    CUdeviceptr p = 0;
    if (moe_status_t s =
            check(d->cuMemAlloc(&p, capacity), "allocating " + std::to_string(capacity) + " bytes on the GPU"))
      return s;
    ptr = p;
    allBuffers.push_back(p);
    ++deviceAllocations;
  }
  out = DeviceBuffer();
  out.owner = this;
  out.ptr = ptr;
  out.bytes = bytes;
  out.capacity = capacity;
  return MOE_OK;
}

void CudaDevice::release(uint64_t ptr, size_t capacity) { freeBuffers.emplace(capacity, ptr); }

moe_status_t CudaDevice::upload(const DeviceBuffer &to, const void *from, size_t bytes) {
  if (bytes > to.size())
    return fail(MOE_INVALID_ARGUMENT,
                "upload of " + std::to_string(bytes) + " bytes into a buffer of " + std::to_string(to.size()));
  return check(api()->cuMemcpyHtoDAsync(to.address(), from, bytes, static_cast<CUstream>(stream)),
               "copying to the GPU");
}

moe_status_t CudaDevice::download(void *to, const DeviceBuffer &from, size_t bytes) {
  if (bytes > from.size())
    return fail(MOE_INVALID_ARGUMENT,
                "download of " + std::to_string(bytes) + " bytes from a buffer of " + std::to_string(from.size()));
  return download(to, from.address(), bytes);
}

moe_status_t CudaDevice::download(void *to, uint64_t from, size_t bytes) {
  if (moe_status_t s =
          check(api()->cuMemcpyDtoHAsync(to, from, bytes, static_cast<CUstream>(stream)), "copying from the GPU"))
    return s;
  return synchronize();
}

moe_status_t CudaDevice::launch(void *function, std::array<unsigned, 3> grid, std::array<unsigned, 3> block,
                                std::vector<void *> args, unsigned sharedBytes) {
  return launch(function, grid, block, args.data(), nullptr, sharedBytes);
}

moe_status_t CudaDevice::launch(void *function, std::array<unsigned, 3> grid, std::array<unsigned, 3> block,
                                void **params, void **extra, unsigned sharedBytes) {
  const Driver *d = api();
  CUstream s = static_cast<CUstream>(stream);
  cuda::KernelProfile *timer = kernelProfile();
  if (timer)
    timer->begin(*d, static_cast<CUfunction>(function), s);
  moe_status_t status = check(d->cuLaunchKernel(static_cast<CUfunction>(function), grid[0], grid[1], grid[2], block[0],
                                                block[1], block[2], sharedBytes, s, params, extra),
                              "launching a kernel");
  if (timer)
    timer->end(*d, s);
  return status;
}

moe_status_t CudaDevice::memoryInfo(size_t &freeBytes, size_t &totalBytes) const {
  return check(api()->cuMemGetInfo(&freeBytes, &totalBytes), "reading the GPU's free memory");
}

moe_status_t CudaDevice::synchronize() {
  return check(api()->cuStreamSynchronize(static_cast<CUstream>(stream)), "waiting for the GPU");
}

moe_status_t CudaDevice::capture(const std::function<moe_status_t()> &body, CudaGraph &out) {
  const Driver *d = api();
  CUstream s = static_cast<CUstream>(stream);
  if (moe_status_t st =
          check(d->cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "beginning a CUDA graph capture"))
    return st;
  capturing = true;
  moe_status_t inner = body();
  capturing = false;
  CUgraph graph = nullptr;
  moe_status_t ended = check(d->cuStreamEndCapture(s, &graph), "ending a CUDA graph capture");
  if (inner != MOE_OK || ended != MOE_OK) {
    if (graph)
      d->cuGraphDestroy(graph);
    return inner != MOE_OK ? inner : ended;
  }
  CUgraphExec exec = nullptr;
  if (moe_status_t st = check(d->cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiating a CUDA graph")) {
    d->cuGraphDestroy(graph);
    return st;
  }
  out = CudaGraph();
  out.graph = graph;
  out.exec = exec;
  return MOE_OK;
}

moe_status_t CudaDevice::timed(const std::function<moe_status_t()> &body, double &ms) {
  const Driver *d = api();
  CUevent start = nullptr, stop = nullptr;
  if (moe_status_t s = check(d->cuEventCreate(&start, 0), "creating a CUDA event"))
    return s;
  if (moe_status_t s = check(d->cuEventCreate(&stop, 0), "creating a CUDA event")) {
    d->cuEventDestroy(start);
    return s;
  }
  CUstream s = static_cast<CUstream>(stream);
  moe_status_t status = check(d->cuEventRecord(start, s), "recording a CUDA event");
  if (status == MOE_OK)
    status = body();
  if (status == MOE_OK)
    status = check(d->cuEventRecord(stop, s), "recording a CUDA event");
  if (status == MOE_OK)
    status = check(d->cuEventSynchronize(stop), "waiting for the GPU");
  float elapsed = 0;
  if (status == MOE_OK)
    status = check(d->cuEventElapsedTime(&elapsed, start, stop), "reading a CUDA event");
  ms = elapsed;
  d->cuEventDestroy(start);
  d->cuEventDestroy(stop);
  return status;
}

moe_status_t CudaDevice::copy(uint64_t to, uint64_t from, size_t bytes) {
  return check(api()->cuMemcpyDtoDAsync(to, from, bytes, static_cast<CUstream>(stream)), "copying on the GPU");
}

moe_status_t CudaDevice::fill32(uint64_t to, uint32_t value, size_t count) {
  return check(api()->cuMemsetD32Async(to, value, count, static_cast<CUstream>(stream)), "filling GPU memory");
}

moe_status_t CudaDevice::fill16(uint64_t to, uint16_t value, size_t count) {
  return check(api()->cuMemsetD16Async(to, value, count, static_cast<CUstream>(stream)), "filling GPU memory");
}

moe_status_t CudaDevice::makeCurrent() {
  return check(api()->cuCtxSetCurrent(static_cast<CUcontext>(context)), "cuCtxSetCurrent");
}

moe_status_t CudaDevice::replay(const CudaGraph &graph) {
  return check(api()->cuGraphLaunch(static_cast<CUgraphExec>(graph.exec), static_cast<CUstream>(stream)),
               "launching a CUDA graph");
}

moe_status_t CudaDevice::tensorMap(uint64_t base, bool bf16, std::array<uint64_t, 3> dims, std::array<uint32_t, 2> box,
                                   uint64_t &deviceAddress) {
  std::array<uint64_t, 7> key{base, bf16 ? 1u : 0u, dims[0], dims[1], dims[2], box[0], box[1]};
  auto found = tensorMaps.find(key);
  if (found != tensorMaps.end()) {
    deviceAddress = found->second.device.address();
    return MOE_OK;
  }
  const Driver *d = api();
  if (!d->cuTensorMapEncodeTiled)
    return fail(MOE_UNAVAILABLE, "the CUDA driver has no cuTensorMapEncodeTiled (TMA needs a driver for sm_90)");
  TensorMap entry;
  const unsigned long long globalDim[3] = {dims[0], dims[1], dims[2]};
  // Byte strides of dimensions 1 and 2 (dimension 0 is contiguous).
  const unsigned long long strides[2] = {dims[0] * 2, dims[0] * dims[1] * 2};
  const unsigned boxDim[3] = {box[0], box[1], 1}, elementStrides[3] = {1, 1, 1};
  if (moe_status_t s =
          check(d->cuTensorMapEncodeTiled(
                    entry.host.data(), bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3,
                    reinterpret_cast<void *>(base), globalDim, strides, boxDim, elementStrides, /*interleave=*/0,
                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, /*oobFill zeros=*/0),
                "making a TMA descriptor for the tensor [" + std::to_string(dims[2]) + ", " + std::to_string(dims[1]) +
                    ", " + std::to_string(dims[0]) + "]"))
    return s;
  if (moe_status_t s = allocate(sizeof(entry.host), entry.device))
    return s;
  auto at = tensorMaps.emplace(key, std::move(entry)).first;
  if (moe_status_t s = upload(at->second.device, at->second.host.data(), sizeof(at->second.host))) {
    tensorMaps.erase(at);
    return s;
  }
  deviceAddress = at->second.device.address();
  return MOE_OK;
}

} // namespace moe::runtime
