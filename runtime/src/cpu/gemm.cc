// gemm.cc - a register-blocked f32 GEMM: B is packed into [k][32] f32 column
// panels (converting bf16/f16 on the way), and a 6 x 32 micro-kernel keeps
// 12 vector accumulators while streaming the panel. Built twice, for AVX-512
// and for the baseline ISA, and picked at run time.
#include "gemm.h"

#include "elements.h"
#include "thread_pool.h"

#include <algorithm>
#include <vector>

namespace moe::runtime::cpu {
namespace {

constexpr int64_t kMR = 6;  // rows per micro-tile
constexpr int64_t kNR = 32; // columns per panel (two 16-float vectors)

typedef float v16 __attribute__((vector_size(64), aligned(4)));

template <bool kAvx512> struct Kernel;

#define MOE_MICRO_KERNEL_BODY                                                                                          \
  v16 acc[kMR][2] = {};                                                                                                \
  for (int64_t p = 0; p < k; ++p) {                                                                                    \
    v16 b0 = *reinterpret_cast<const v16 *>(bp + p * ldb);                                                             \
    v16 b1 = *reinterpret_cast<const v16 *>(bp + p * ldb + 16);                                                        \
    for (int64_t r = 0; r < kMR; ++r) {                                                                                \
      float av = a[r * lda + p];                                                                                       \
      acc[r][0] += b0 * av;                                                                                            \
      acc[r][1] += b1 * av;                                                                                            \
    }                                                                                                                  \
  }                                                                                                                    \
  if (cols == kNR) {                                                                                                   \
    /* a full panel: two vector stores a row, not a copy through memory */                                             \
    for (int64_t r = 0; r < rows; ++r) {                                                                               \
      *reinterpret_cast<v16 *>(c + r * ldc) = acc[r][0];                                                               \
      *reinterpret_cast<v16 *>(c + r * ldc + 16) = acc[r][1];                                                          \
    }                                                                                                                  \
    return;                                                                                                            \
  }                                                                                                                    \
  for (int64_t r = 0; r < rows; ++r) {                                                                                 \
    float tmp[kNR];                                                                                                    \
    *reinterpret_cast<v16 *>(tmp) = acc[r][0];                                                                         \
    *reinterpret_cast<v16 *>(tmp + 16) = acc[r][1];                                                                    \
    std::copy(tmp, tmp + cols, c + r * ldc);                                                                           \
  }

/// A full-height micro-tile: a[kMR rows, k] * b[k, kNR] (row stride ldb) -> c[rows, cols].
__attribute__((target("avx512f,fma"))) void microAvx512(const float *a, int64_t lda, const float *bp, int64_t ldb,
                                                        int64_t k, float *c, int64_t ldc, int64_t rows, int64_t cols) {
  MOE_MICRO_KERNEL_BODY
}

void microGeneric(const float *a, int64_t lda, const float *bp, int64_t ldb, int64_t k, float *c, int64_t ldc,
                  int64_t rows, int64_t cols) {
  MOE_MICRO_KERNEL_BODY
}

bool haveAvx512() {
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
}

} // namespace

namespace {

/// One column panel: pack B[:, panel] as f32 and sweep every micro-tile of A.
void panelProduct(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m,
                  int64_t k, int64_t n, int64_t panel) {
  auto micro = haveAvx512() ? microAvx512 : microGeneric;
  int64_t j0 = panel * kNR, cols = std::min(kNR, n - j0);
  // For few rows of A, packing B costs as much as the products: a full f32
  // panel is read in place (row stride n). Otherwise B[:, j0 : j0 + cols] is
  // packed as f32 (converting bf16/f16), zero-padded to kNR columns.
  const float *bp;
  int64_t ldb;
  thread_local std::vector<float> packed;
  if (bDtype == MOE_F32 && cols == kNR && m <= 4 * kMR) {
    bp = static_cast<const float *>(b) + j0;
    ldb = n;
  } else {
    // Every row's first `cols` entries are written below; only an edge panel's
    // padding columns need zeros.
    if (cols < kNR)
      packed.assign(static_cast<size_t>(k * kNR), 0.0f);
    else
      packed.resize(static_cast<size_t>(k * kNR));
    if (bDtype == MOE_F32 && cols == kNR) // whole rows of 32: two vectors each, no copy call a row
      for (int64_t p = 0; p < k; ++p) {
        const float *row = static_cast<const float *>(b) + p * n + j0;
        *reinterpret_cast<v16 *>(packed.data() + p * kNR) = *reinterpret_cast<const v16 *>(row);
        *reinterpret_cast<v16 *>(packed.data() + p * kNR + 16) = *reinterpret_cast<const v16 *>(row + 16);
      }
    else
      for (int64_t p = 0; p < k; ++p)
        loadRow(b, p * n + j0, cols, bDtype, packed.data() + p * kNR);
    bp = packed.data();
    ldb = kNR;
  }
  // Rows past m read a zero-padded copy of the last micro-tile.
  thread_local std::vector<float> edge;
  for (int64_t i0 = 0; i0 < m; i0 += kMR) {
    int64_t rows = std::min(kMR, m - i0);
    const float *ap = a + i0 * lda;
    int64_t aStride = lda;
    if (rows < kMR) {
      edge.assign(static_cast<size_t>(kMR * k), 0.0f);
      for (int64_t r = 0; r < rows; ++r)
        std::copy(ap + r * lda, ap + r * lda + k, edge.data() + r * k);
      ap = edge.data();
      aStride = k;
    }
    micro(ap, aStride, bp, ldb, k, c + i0 * ldc + j0, ldc, rows, cols);
  }
}

bool trivial(float *c, int64_t ldc, int64_t m, int64_t k, int64_t n) {
  if (m <= 0 || n <= 0)
    return true;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return true;
  }
  return false;
}

} // namespace

void gemm(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
          int64_t n) {
  if (trivial(c, ldc, m, k, n))
    return;
  parallelFor((n + kNR - 1) / kNR, [&](int64_t panel) { panelProduct(a, lda, b, bDtype, c, ldc, m, k, n, panel); });
}

void gemmTall(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
              int64_t n) {
  if (trivial(c, ldc, m, k, n))
    return;
  const int64_t panels = (n + kNR - 1) / kNR, threads = numThreads();
  if (panels >= threads) {
    gemm(a, lda, b, bDtype, c, ldc, m, k, n);
    return;
  }
  // Row blocks of whole micro-tiles, a few per thread.
  const int64_t rows = std::max<int64_t>(kMR, (m / (4 * threads) + kMR - 1) / kMR * kMR);
  parallelFor((m + rows - 1) / rows, [&](int64_t block) {
    int64_t i0 = block * rows, count = std::min(rows, m - i0);
    for (int64_t panel = 0; panel < panels; ++panel)
      panelProduct(a + i0 * lda, lda, b, bDtype, c + i0 * ldc, ldc, count, k, n, panel);
  });
}

void gemmSerial(const float *a, int64_t lda, const void *b, int32_t bDtype, float *c, int64_t ldc, int64_t m, int64_t k,
                int64_t n) {
  if (trivial(c, ldc, m, k, n))
    return;
  for (int64_t panel = 0; panel < (n + kNR - 1) / kNR; ++panel)
    panelProduct(a, lda, b, bDtype, c, ldc, m, k, n, panel);
}

} // namespace moe::runtime::cpu
