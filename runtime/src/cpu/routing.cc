// routing.cc - top-k, group-limited top-k, gather and the auxiliary losses.
#include "moe/runtime/cpu_kernels.h"

#include "elements.h"
#include "routing_math.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

using namespace moe::runtime::cpu;

namespace {

/// Indices of the k largest of s[0..n), descending, ties to the lower index.
void topIndices(const float *s, int64_t n, int64_t k, std::vector<int32_t> &out) {
  out.resize(n);
  std::iota(out.begin(), out.end(), 0);
  std::partial_sort(out.begin(), out.begin() + k, out.end(),
                    [&](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  out.resize(k);
}

} // namespace

extern "C" void moe_cpu_topk(int64_t logits, int64_t values, int64_t indices, int64_t rows, int64_t cols, int64_t k,
                             int32_t score, int32_t renormalize, double scale, int32_t dtype) {
  std::vector<float> s(cols);
  std::vector<int32_t> top;
  for (int64_t r = 0; r < rows; ++r) {
    loadRow(ptr<void>(logits), r * cols, cols, dtype, s.data());
    applyScore(score, s.data(), cols);
    topIndices(s.data(), cols, k, top);
    float total = 0;
    for (int32_t e : top)
      total += s[e];
    for (int64_t j = 0; j < k; ++j) {
      float v = renormalize ? s[top[j]] / total : s[top[j]];
      ptr<float>(values)[r * k + j] = static_cast<float>(v * scale);
      ptr<int32_t>(indices)[r * k + j] = top[j];
    }
  }
}

extern "C" void moe_cpu_group_topk(int64_t scores, int64_t indices, int64_t rows, int64_t cols, int64_t k,
                                   int64_t groups, int64_t topGroups, int32_t dtype) {
  int64_t size = cols / groups;
  std::vector<float> s(cols), groupScore(groups), masked(cols);
  std::vector<int32_t> best, keep, top;
  for (int64_t r = 0; r < rows; ++r) {
    loadRow(ptr<void>(scores), r * cols, cols, dtype, s.data());
    for (int64_t g = 0; g < groups; ++g) {
      topIndices(s.data() + g * size, size, std::min<int64_t>(2, size), best);
      groupScore[g] = 0;
      for (int32_t b : best)
        groupScore[g] += s[g * size + b];
    }
    topIndices(groupScore.data(), groups, topGroups, keep);
    std::fill(masked.begin(), masked.end(), -INFINITY);
    for (int32_t g : keep)
      std::copy(s.begin() + g * size, s.begin() + (g + 1) * size, masked.begin() + g * size);
    topIndices(masked.data(), cols, k, top);
    std::copy(top.begin(), top.end(), ptr<int32_t>(indices) + r * k);
  }
}

extern "C" void moe_cpu_gather(int64_t x, int64_t idx, int64_t out, int64_t rows, int64_t cols, int64_t k,
                               int32_t dtype) {
  size_t bytes = moe_dtype_size(static_cast<moe_dtype_t>(dtype));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      int64_t c = ptr<int32_t>(idx)[r * k + j];
      if (c < 0 || c >= cols)
        c = 0; // indices come from topk; never out of range in a compiled layer
      std::memcpy(ptr<char>(out) + (r * k + j) * bytes, ptr<char>(x) + (r * cols + c) * bytes, bytes);
    }
}

extern "C" void moe_cpu_load_balance_loss(int64_t probs, int64_t indices, int64_t out, int64_t tokens, int64_t experts,
                                          int64_t k, int32_t dtype) {
  std::vector<double> fraction = expertCounts(ptr<int32_t>(indices), tokens * k, experts), meanProb(experts, 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < experts; ++e)
      meanProb[e] += loadF32(ptr<void>(probs), t * experts + e, dtype);
  double loss = 0;
  for (int64_t e = 0; e < experts; ++e)
    loss += (fraction[e] / static_cast<double>(tokens * k)) * (meanProb[e] / static_cast<double>(tokens));
  *ptr<float>(out) = tokens > 0 ? static_cast<float>(static_cast<double>(experts) * loss) : 0.0f;
}

extern "C" void moe_cpu_z_loss(int64_t logits, int64_t out, int64_t rows, int64_t cols, int32_t dtype) {
  std::vector<float> s(cols);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    loadRow(ptr<void>(logits), r * cols, cols, dtype, s.data());
    double lse = logSumExp(s.data(), cols);
    total += lse * lse;
  }
  *ptr<float>(out) = rows > 0 ? static_cast<float>(total / static_cast<double>(rows)) : 0.0f;
}
