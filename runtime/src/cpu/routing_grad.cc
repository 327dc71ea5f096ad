// routing_grad.cc - the backward of top-k, gather and the auxiliary losses:
// per row, in f32, in the reference evaluator's order of operations
// (dialect/lib/Reference/Vjp.cpp).
#include "moe/runtime/cpu_kernels.h"

#include "elements.h"
#include "routing_math.h"
#include "thread_pool.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace moe::runtime::cpu;

extern "C" void moe_cpu_topk_grad(int64_t logits, int64_t indices, int64_t dvalues, int64_t dlogits, int64_t rows,
                                  int64_t cols, int64_t k, int32_t score, int32_t renormalize, double scale,
                                  int32_t dtype) {
  parallelFor(rows, [&](int64_t r) {
    thread_local std::vector<float> s, ds;
    s.resize(cols);
    ds.assign(cols, 0.0f);
    loadRow(ptr<void>(logits), r * cols, cols, dtype, s.data());
    applyScore(score, s.data(), cols);
    const int32_t *idx = ptr<int32_t>(indices) + r * k;
    const float *dv = ptr<float>(dvalues) + r * k;
    const float sc = static_cast<float>(scale);
    // d values / d scores at the chosen experts (through the renormalisation).
    float total = 0, weighted = 0;
    for (int64_t j = 0; j < k; ++j) {
      total += s[idx[j]];
      weighted += dv[j] * s[idx[j]];
    }
    for (int64_t j = 0; j < k; ++j) {
      float g = dv[j] * sc;
      ds[idx[j]] += renormalize ? g / total - sc * weighted / (total * total) : g;
    }
    // Through the score function.
    float dot = 0;
    if (score == MOE_SCORE_SOFTMAX)
      for (int64_t c = 0; c < cols; ++c)
        dot += ds[c] * s[c];
    for (int64_t c = 0; c < cols; ++c) {
      float v = score == MOE_SCORE_SOFTMAX   ? s[c] * (ds[c] - dot)
                : score == MOE_SCORE_SIGMOID ? ds[c] * s[c] * (1.0f - s[c])
                                             : ds[c];
      storeF32(ptr<void>(dlogits), r * cols + c, dtype, v);
    }
  });
}

extern "C" void moe_cpu_gather_grad(int64_t idx, int64_t dy, int64_t dx, int64_t rows, int64_t cols, int64_t k,
                                    int32_t dtype) {
  parallelFor(rows, [&](int64_t r) {
    thread_local std::vector<float> row;
    row.assign(cols, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      int64_t c = ptr<int32_t>(idx)[r * k + j];
      if (c >= 0 && c < cols)
        row[c] += loadF32(ptr<void>(dy), r * k + j, dtype);
    }
    for (int64_t c = 0; c < cols; ++c)
      storeF32(ptr<void>(dx), r * cols + c, dtype, row[c]);
  });
}

extern "C" void moe_cpu_load_balance_loss_grad(int64_t probs, int64_t indices, int64_t dloss, int64_t dprobs,
                                               int64_t tokens, int64_t experts, int64_t k, int32_t dtype) {
  (void)probs; // d loss / d p_te = E f_e / T: the counts f_e are constants (spec)
  std::vector<double> fraction = expertCounts(ptr<int32_t>(indices), tokens * k, experts);
  const double g = *ptr<float>(dloss);
  std::vector<float> column(experts);
  for (int64_t e = 0; e < experts; ++e)
    column[e] = tokens > 0 ? static_cast<float>(g * static_cast<double>(experts) * fraction[e] /
                                                static_cast<double>(tokens * k) / static_cast<double>(tokens))
                           : 0.0f;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < experts; ++e)
      storeF32(ptr<void>(dprobs), t * experts + e, dtype, column[e]);
}

extern "C" void moe_cpu_z_loss_grad(int64_t logits, int64_t dloss, int64_t dlogits, int64_t rows, int64_t cols,
                                    int32_t dtype) {
  const float g = *ptr<float>(dloss);
  parallelFor(rows, [&](int64_t r) {
    thread_local std::vector<float> s;
    s.resize(cols);
    loadRow(ptr<void>(logits), r * cols, cols, dtype, s.data());
    double lse = logSumExp(s.data(), cols);
    // d/dx (mean lse^2) = 2 lse softmax(x) / rows.
    for (int64_t c = 0; c < cols; ++c)
      storeF32(
          ptr<void>(dlogits), r * cols + c, dtype,
          static_cast<float>(g * 2.0 * lse * std::exp(static_cast<double>(s[c]) - lse) / static_cast<double>(rows)));
  });
}
