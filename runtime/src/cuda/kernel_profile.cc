// kernel_profile.cc - per-kernel GPU times for MOE_KERNEL_PROFILE (see the header).
#include "kernel_profile.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>

namespace moe::runtime::cuda {

std::unique_ptr<KernelProfile> KernelProfile::fromEnvironment() {
  const char *on = std::getenv("MOE_KERNEL_PROFILE");
  if (!on || !*on || std::string(on) == "0")
    return nullptr;
  return std::make_unique<KernelProfile>();
}

KernelProfile::~KernelProfile() = default; // the events go with the context

void KernelProfile::begin(const Driver &d, CUfunction function, CUstream stream) {
  Launch l;
  const char *name = nullptr;
  if (d.cuFuncGetName && d.cuFuncGetName(&name, function) == CUDA_SUCCESS && name)
    l.kernel = name;
  else
    l.kernel = "(a kernel: the driver has no cuFuncGetName)";
  if (d.cuEventCreate(&l.start, 0) != CUDA_SUCCESS || d.cuEventCreate(&l.stop, 0) != CUDA_SUCCESS ||
      d.cuEventRecord(l.start, stream) != CUDA_SUCCESS)
    return; // unprofiled, never failed: profiling must not change what runs
  launches.push_back(std::move(l));
}

void KernelProfile::end(const Driver &d, CUstream stream) {
  if (!launches.empty() && d.cuEventRecord(launches.back().stop, stream) != CUDA_SUCCESS)
    launches.pop_back();
}

void KernelProfile::report(const Driver &d, std::FILE *out) {
  if (reported)
    return;
  reported = true;
  struct Row {
    std::vector<float> ms;
    double total = 0;
  };
  std::map<std::string, Row> rows;
  double all = 0;
  for (Launch &l : launches) {
    float ms = 0;
    if (d.cuEventSynchronize(l.stop) == CUDA_SUCCESS && d.cuEventElapsedTime(&ms, l.start, l.stop) == CUDA_SUCCESS) {
      Row &r = rows[l.kernel];
      r.ms.push_back(ms);
      r.total += ms;
      all += ms;
    }
    d.cuEventDestroy(l.start);
    d.cuEventDestroy(l.stop);
  }
  std::vector<std::pair<std::string, Row>> sorted(rows.begin(), rows.end());
  std::sort(sorted.begin(), sorted.end(), [](auto &a, auto &b) { return a.second.total > b.second.total; });
  std::fprintf(out, "kernel profile: %zu launches, %.3f ms in kernels\n", launches.size(), all);
  std::fprintf(out, "  %9s %9s %7s %6s  %s\n", "total ms", "median ms", "share", "calls", "kernel");
  for (auto &[name, r] : sorted) {
    std::vector<float> ms = r.ms;
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    std::fprintf(out, "  %9.3f %9.4f %6.1f%% %6zu  %s\n", r.total, ms[ms.size() / 2], all > 0 ? 100 * r.total / all : 0,
                 r.ms.size(), name.c_str());
  }
  launches.clear();
}

} // namespace moe::runtime::cuda
