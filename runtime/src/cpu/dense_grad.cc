// dense_grad.cc - the backward of a matrix product and of rmsnorm. Input
// cotangents row by row; weight cotangents as blocked sums over tokens
// (gradient_sums.h).
#include "moe/runtime/cpu_kernels.h"

#include "elements.h"
#include "gemm.h"
#include "gradient_sums.h"
#include "thread_pool.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

using namespace moe::runtime::cpu;

namespace {

std::vector<float> loadAll(int64_t base, int64_t n, int32_t dtype) {
  std::vector<float> out(static_cast<size_t>(n));
  loadRow(ptr<void>(base), 0, n, dtype, out.data());
  return out;
}

void storeAll(const std::vector<float> &v, int64_t base, int32_t dtype) {
  for (size_t i = 0; i < v.size(); ++i)
    storeF32(ptr<void>(base), static_cast<int64_t>(i), dtype, v[i]);
}

std::vector<int64_t> rowTokens(int64_t rows) {
  std::vector<int64_t> token(static_cast<size_t>(rows));
  std::iota(token.begin(), token.end(), 0);
  return token;
}

} // namespace

extern "C" void moe_cpu_dense_grad(int64_t x, int64_t w, int64_t dy, int64_t dx, int64_t dw, int64_t m, int64_t k,
                                   int64_t n, int32_t xDtype, int32_t wDtype, int32_t dyDtype, int32_t results) {
  std::vector<float> g = loadAll(dy, m * n, dyDtype);
  if (results & MOE_GRAD_INPUT) { // dx = dy w^T.
    std::vector<float> ws = loadAll(w, k * n, wDtype), wT = transposed(ws.data(), n, k, n), out(m * k);
    gemm(g.data(), n, wT.data(), MOE_F32, out.data(), k, m, n, k);
    storeAll(out, dx, xDtype);
  }
  if (!(results & MOE_GRAD_WEIGHT))
    return;
  // dw = x^T dy, per gradient block of rows.
  std::vector<float> xs = loadAll(x, m * k, xDtype), acc(static_cast<size_t>(k * n), 0.0f);
  addBlockedOuterProducts(xs.data(), g.data(), rowTokens(m), k, n, acc.data(), false);
  storeAll(acc, dw, wDtype);
}

extern "C" void moe_cpu_rmsnorm_grad(int64_t x, int64_t w, int64_t dy, int64_t dx, int64_t dw, int64_t rows,
                                     int64_t cols, double eps, int32_t xDtype, int32_t wDtype, int32_t dyDtype) {
  std::vector<float> ws = loadAll(w, cols, wDtype);
  // Per row: y_c = x_c s w_c with s = 1 / sqrt(mean(x^2) + eps); the gain's
  // per-row terms dy_c x_c s are kept for its blocked sum.
  std::vector<float> gainTerms(static_cast<size_t>(rows * cols));
  parallelFor(rows, [&](int64_t r) {
    thread_local std::vector<float> xr, gr;
    xr.resize(cols);
    gr.resize(cols);
    loadRow(ptr<void>(x), r * cols, cols, xDtype, xr.data());
    loadRow(ptr<void>(dy), r * cols, cols, dyDtype, gr.data()); // the output's type (bf16 x, f32 gain: f32)
    float ss = 0;
    for (int64_t c = 0; c < cols; ++c)
      ss += xr[c] * xr[c];
    float s = 1.0f / std::sqrt(ss / static_cast<float>(cols) + static_cast<float>(eps)), dot = 0;
    for (int64_t c = 0; c < cols; ++c) {
      gainTerms[r * cols + c] = gr[c] * xr[c] * s;
      dot += gr[c] * ws[c] * xr[c];
    }
    for (int64_t c = 0; c < cols; ++c)
      storeF32(ptr<void>(dx), r * cols + c, xDtype,
               gr[c] * ws[c] * s - xr[c] * s * s * s * dot / static_cast<float>(cols));
  });
  // dw_c = sum over rows of the terms: blocks of rows, partials in block order.
  std::vector<float> acc(static_cast<size_t>(cols), 0.0f), partial(static_cast<size_t>(cols));
  for (int64_t begin = 0; begin < rows; begin += MOE_GRADIENT_BLOCK_TOKENS) {
    std::fill(partial.begin(), partial.end(), 0.0f);
    for (int64_t r = begin; r < std::min<int64_t>(rows, begin + MOE_GRADIENT_BLOCK_TOKENS); ++r)
      for (int64_t c = 0; c < cols; ++c)
        partial[c] += gainTerms[r * cols + c];
    for (int64_t c = 0; c < cols; ++c)
      acc[c] += partial[c];
  }
  storeAll(acc, dw, wDtype);
}
