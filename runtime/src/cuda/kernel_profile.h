// kernel_profile.h - the time of each kernel a layer launches, for
// MOE_KERNEL_PROFILE=1 (the device machines have no Nsight).
//
// Events on the stream around every launch made outside a CUDA-graph capture
// (a graph's kernels are not separable that way; `moe-run --bench-eager`
// times plain calls). Read when the device closes: a table on stderr of each
// kernel's launches, total and median time, and share of the kernels' time.
#ifndef MOE_RUNTIME_CUDA_KERNEL_PROFILE_H
#define MOE_RUNTIME_CUDA_KERNEL_PROFILE_H

#include "driver.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime::cuda {

class KernelProfile {
public:
  /// A profile when MOE_KERNEL_PROFILE is set (and not "0"), else null.
  static std::unique_ptr<KernelProfile> fromEnvironment();
  ~KernelProfile();

  /// Brackets one launch of `function` on `stream`.
  void begin(const Driver &d, CUfunction function, CUstream stream);
  void end(const Driver &d, CUstream stream);
  /// Waits for the recorded launches and prints the table to `out`.
  void report(const Driver &d, std::FILE *out);

private:
  struct Launch {
    std::string kernel;
    CUevent start = nullptr, stop = nullptr;
  };
  std::vector<Launch> launches;
  bool reported = false;
};

} // namespace moe::runtime::cuda

#endif // MOE_RUNTIME_CUDA_KERNEL_PROFILE_H
