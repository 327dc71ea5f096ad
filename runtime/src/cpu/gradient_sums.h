// gradient_sums.h - the sums over tokens of the backward kernels, in the
// order the spec fixes for layout invariance ("Sharding"): a partial sum per
// block of MOE_GRADIENT_BLOCK_TOKENS consecutive tokens, each one sequential
// f32 sum, and the partials added in block order. A mesh whose ranks hold
// whole blocks forms the same partials, so its gradients have the same bits.
#ifndef MOE_RUNTIME_CPU_GRADIENT_SUMS_H
#define MOE_RUNTIME_CPU_GRADIENT_SUMS_H

#include "moe/runtime/kernel_abi.h"

#include <cstdint>
#include <vector>

namespace moe::runtime::cpu {

/// a[rows, cols] (row stride lda) transposed into [cols, rows].
std::vector<float> transposed(const float *a, int64_t lda, int64_t rows, int64_t cols);

/// acc[p, q] += sum over the rows r of x[r, :]^T g[r, :] (x: [m, p], g: [m, q],
/// f32, row-major), one partial per gradient block of token[r] (rows in
/// ascending token order), the partials added to acc in block order. Blocks
/// without rows add nothing. `serial` keeps the products on this thread.
void addBlockedOuterProducts(const float *x, const float *g, const std::vector<int64_t> &token, int64_t p, int64_t q,
                             float *acc, bool serial);

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_GRADIENT_SUMS_H
