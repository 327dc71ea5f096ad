// routing_math.h - what the routing kernels (routing.cc) and their backward
// (routing_grad.cc) compute alike, defined once so that both see the same
// scores, log-sum-exps and expert counts.
#ifndef MOE_RUNTIME_CPU_ROUTING_MATH_H
#define MOE_RUNTIME_CPU_ROUTING_MATH_H

#include "moe/runtime/kernel_abi.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace moe::runtime::cpu {

/// A router row's scores in place (score: a moe_score_t): softmax
/// (max-subtracted) or sigmoid of the logits, or the logits themselves. One
/// definition for top-k and its backward, so both see the same scores.
inline void applyScore(int32_t score, float *s, int64_t n) {
  if (score == MOE_SCORE_SOFTMAX) {
    float m = s[0], sum = 0;
    for (int64_t i = 1; i < n; ++i)
      m = s[i] > m ? s[i] : m;
    for (int64_t i = 0; i < n; ++i)
      sum += (s[i] = std::exp(s[i] - m));
    for (int64_t i = 0; i < n; ++i)
      s[i] /= sum;
  } else if (score == MOE_SCORE_SIGMOID) {
    for (int64_t i = 0; i < n; ++i)
      s[i] = 1.0f / (1.0f + std::exp(-s[i]));
  }
}

/// log(sum(exp(s))) of a row, max-subtracted, the sum in double.
inline double logSumExp(const float *s, int64_t n) {
  float m = s[0];
  for (int64_t i = 1; i < n; ++i)
    m = s[i] > m ? s[i] : m;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += std::exp(static_cast<double>(s[i] - m));
  return m + std::log(sum);
}

/// How many of the `assignments` routing indices (i32) chose each expert.
inline std::vector<double> expertCounts(const int32_t *indices, int64_t assignments, int64_t experts) {
  std::vector<double> count(static_cast<size_t>(experts), 0.0);
  for (int64_t a = 0; a < assignments; ++a)
    if (indices[a] >= 0 && indices[a] < experts)
      count[indices[a]] += 1.0;
  return count;
}

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_ROUTING_MATH_H
