// gradient_sums.cc - blocked sums over tokens for the backward kernels.
#include "gradient_sums.h"

#include "gemm.h"
#include "moe/runtime/dtype.h"

namespace moe::runtime::cpu {

std::vector<float> transposed(const float *a, int64_t lda, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      t[c * rows + r] = a[r * lda + c];
  return t;
}

void addBlockedOuterProducts(const float *x, const float *g, const std::vector<int64_t> &token, int64_t p, int64_t q,
                             float *acc, bool serial) {
  const int64_t m = static_cast<int64_t>(token.size());
  std::vector<float> partial(static_cast<size_t>(p * q));
  for (int64_t begin = 0; begin < m;) {
    int64_t block = token[begin] / MOE_GRADIENT_BLOCK_TOKENS, end = begin;
    while (end < m && token[end] / MOE_GRADIENT_BLOCK_TOKENS == block)
      ++end;
    // partial = x_b^T g_b: each element one sequential sum over the block's rows.
    std::vector<float> xt = transposed(x + begin * p, p, end - begin, p);
    (serial ? gemmSerial : gemm)(xt.data(), end - begin, g + begin * q, MOE_F32, partial.data(), q, p, end - begin, q);
    for (int64_t i = 0; i < p * q; ++i)
      acc[i] += partial[i];
    begin = end;
  }
}

} // namespace moe::runtime::cpu
