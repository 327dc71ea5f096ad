// dense.cc - moe_cpu_dense: x * w through the f32 GEMM.
#include "moe/runtime/cpu_kernels.h"

#include "elements.h"
#include "gemm.h"
#include "thread_pool.h"

#include <vector>

using namespace moe::runtime::cpu;

extern "C" void moe_cpu_dense(int64_t x, int64_t w, int64_t out, int64_t m, int64_t k, int64_t n, int32_t xDtype,
                              int32_t wDtype, int32_t outDtype) {
  std::vector<float> a;
  const float *ap = ptr<float>(x);
  if (xDtype != MOE_F32) {
    a.resize(static_cast<size_t>(m * k));
    loadRow(ptr<void>(x), 0, m * k, xDtype, a.data());
    ap = a.data();
  }
  if (outDtype == MOE_F32) {
    gemm(ap, k, ptr<void>(w), wDtype, ptr<float>(out), n, m, k, n);
    return;
  }
  std::vector<float> c(static_cast<size_t>(m * n));
  gemm(ap, k, ptr<void>(w), wDtype, c.data(), n, m, k, n);
  for (int64_t i = 0; i < m * n; ++i)
    storeF32(ptr<void>(out), i, outDtype, c[i]);
}

extern "C" void moe_cpu_set_num_threads(int threads) { setNumThreads(threads); }
extern "C" int moe_cpu_get_num_threads(void) { return numThreads(); }
