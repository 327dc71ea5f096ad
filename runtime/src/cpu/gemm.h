// gemm.h - the f32 GEMM every CPU matrix product goes through.
#ifndef MOE_RUNTIME_CPU_GEMM_H
#define MOE_RUNTIME_CPU_GEMM_H

#include <cstdint>

namespace moe::runtime::cpu {

/// C[m, n] = A[m, k] * B[k, n]. A and C are f32 with row strides lda and ldc;
/// B is row-major [k, n] of `bDtype` (f32, f16 or bf16), converted to f32 panel
/// by panel. Multi-threaded over column panels; each C element is one
/// sequential f32 sum over k, so results do not depend on the thread count.
void gemm(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
          int64_t n);

/// The same product spread over row blocks of A instead of column panels of
/// B: for a tall A and a narrow B (a weight times a few tokens' columns, as
/// in the backward), where there are fewer panels than threads. The same
/// sums, so the same bits.
void gemmTall(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
              int64_t n);

/// The same product on the calling thread only (for callers that already
/// parallelise over independent GEMMs, e.g. one per expert).
void gemmSerial(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
                int64_t n);

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_GEMM_H
