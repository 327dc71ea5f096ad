// driver.cc - dlopen the CUDA driver and resolve the entry points we use.
#include "driver.h"

#include <dlfcn.h>
#include <mutex>

namespace moe::runtime::cuda {
namespace {

moe_status_t loadStatus = MOE_UNAVAILABLE;
std::string loadError;
Driver driver;

template <typename Fn> bool resolve(void *library, Fn &slot, const char *name) {
  slot = reinterpret_cast<Fn>(dlsym(library, name));
  if (!slot)
    loadError = std::string("the CUDA driver has no ") + name;
  return slot != nullptr;
}

void load() {
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char *why = dlerror();
    loadError = std::string("no CUDA driver (libcuda.so.1): ") + (why ? why : "not found");
    return;
  }
  // The versioned names are the current ABI of the unversioned API macros.
  bool ok =
      resolve(library, driver.cuInit, "cuInit") && resolve(library, driver.cuDeviceGetCount, "cuDeviceGetCount") &&
      resolve(library, driver.cuDeviceGet, "cuDeviceGet") &&
      resolve(library, driver.cuDeviceGetName, "cuDeviceGetName") &&
      resolve(library, driver.cuDeviceGetAttribute, "cuDeviceGetAttribute") &&
      resolve(library, driver.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
      resolve(library, driver.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2") &&
      resolve(library, driver.cuCtxSetCurrent, "cuCtxSetCurrent") &&
      resolve(library, driver.cuModuleLoadDataEx, "cuModuleLoadDataEx") &&
      resolve(library, driver.cuModuleUnload, "cuModuleUnload") &&
      resolve(library, driver.cuModuleGetFunction, "cuModuleGetFunction") &&
      resolve(library, driver.cuLaunchKernel, "cuLaunchKernel") &&
      resolve(library, driver.cuMemAlloc, "cuMemAlloc_v2") &&
      resolve(library, driver.cuMemGetInfo, "cuMemGetInfo_v2") && resolve(library, driver.cuMemFree, "cuMemFree_v2") &&
      resolve(library, driver.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2") &&
      resolve(library, driver.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2") &&
      resolve(library, driver.cuStreamCreate, "cuStreamCreate") &&
      resolve(library, driver.cuStreamDestroy, "cuStreamDestroy_v2") &&
      resolve(library, driver.cuStreamSynchronize, "cuStreamSynchronize") &&
      resolve(library, driver.cuStreamBeginCapture, "cuStreamBeginCapture_v2") &&
      resolve(library, driver.cuStreamEndCapture, "cuStreamEndCapture") &&
      resolve(library, driver.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags") &&
      resolve(library, driver.cuGraphLaunch, "cuGraphLaunch") &&
      resolve(library, driver.cuGraphExecDestroy, "cuGraphExecDestroy") &&
      resolve(library, driver.cuGraphDestroy, "cuGraphDestroy") &&
      resolve(library, driver.cuGetErrorString, "cuGetErrorString") &&
      resolve(library, driver.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2") &&
      resolve(library, driver.cuMemsetD32Async, "cuMemsetD32Async") &&
      resolve(library, driver.cuMemsetD16Async, "cuMemsetD16Async") &&
      resolve(library, driver.cuFuncSetAttribute, "cuFuncSetAttribute") &&
      resolve(library, driver.cuEventCreate, "cuEventCreate") &&
      resolve(library, driver.cuEventRecord, "cuEventRecord") &&
      resolve(library, driver.cuEventSynchronize, "cuEventSynchronize") &&
      resolve(library, driver.cuEventElapsedTime, "cuEventElapsedTime") &&
      resolve(library, driver.cuEventDestroy, "cuEventDestroy_v2") &&
      resolve(library, driver.cuStreamQuery, "cuStreamQuery") &&
      resolve(library, driver.cuCtxSynchronize, "cuCtxSynchronize") &&
      resolve(library, driver.cuPointerGetAttribute, "cuPointerGetAttribute");
  if (!ok)
    return;
  driver.cuTensorMapEncodeTiled =
      reinterpret_cast<decltype(driver.cuTensorMapEncodeTiled)>(dlsym(library, "cuTensorMapEncodeTiled"));
  driver.cuFuncGetName = reinterpret_cast<decltype(driver.cuFuncGetName)>(dlsym(library, "cuFuncGetName"));
  CUresult r = driver.cuInit(0);
  if (r != CUDA_SUCCESS) {
    loadError = "cuInit failed with CUDA error " + std::to_string(r) + " (no usable GPU?)";
    return;
  }
  loadStatus = MOE_OK;
}

} // namespace

moe_status_t loadDriver(const Driver *&out) {
  static std::once_flag once;
  std::call_once(once, load);
  out = &driver;
  return loadStatus == MOE_OK ? MOE_OK : fail(MOE_UNAVAILABLE, loadError);
}

moe_status_t check(CUresult result, const std::string &what) {
  if (result == CUDA_SUCCESS)
    return MOE_OK;
  const char *message = nullptr;
  if (driver.cuGetErrorString)
    driver.cuGetErrorString(result, &message);
  return fail(result == 2 ? MOE_OUT_OF_MEMORY : MOE_INTERNAL,
              what + ": CUDA error " + std::to_string(result) + " (" + (message ? message : "unknown") + ")");
}

} // namespace moe::runtime::cuda
