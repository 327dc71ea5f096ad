// moe_ffn_grad.h - the parts of the routed chain's backward that the
// single-device kernel (moe_cpu_moe_ffn_grad) and the expert-parallel one
// (moe_cpu_moe_ffn_ep_grad) share, defined once in moe_ffn_grad.cc: an
// expert's rows give the same bits whichever rank holds the expert.
#ifndef MOE_RUNTIME_CPU_MOE_FFN_GRAD_H
#define MOE_RUNTIME_CPU_MOE_FFN_GRAD_H

#include "moe_ffn.h"
#include "thread_pool.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace moe::runtime::cpu {

/// One expert's kept rows, in ascending global token order, as f32.
struct ExpertGradRows {
  std::vector<float> x;       ///< [m, d]: the rows it received (x_dtype values)
  std::vector<float> dout;    ///< [m, d]: the cotangent of each row's token output
  std::vector<float> weight;  ///< [m]: each row's combine weight
  std::vector<int64_t> token; ///< [m]: each row's global token (the gradient blocks)
};

/// Expert e's backward on its rows (e indexes ex's stacked weights): each
/// row's cotangent into dxRows [m, d] and its combine weight's into dw [m],
/// and the weight cotangents added to dW[i] + e * d * f as blocked sums over
/// the rows' global tokens (gradient_sums.h).
void backwardExpert(const Experts &ex, int64_t e, const ExpertGradRows &in, float *dxRows, float *dw,
                    float *const dW[3], bool serial);

/// The stacked weights' cotangents in f32: the outputs themselves when the
/// weights are f32, else buffers that store() rounds into them.
class ExpertGradAccumulators {
public:
  ExpertGradAccumulators(const Experts &ex, int64_t experts, int64_t dw0, int64_t dw1, int64_t dw2);
  void store();
  float *dW[3] = {nullptr, nullptr, nullptr};

private:
  Experts ex_;
  int64_t experts_, count_ = 0, out_[3];
  std::vector<float> storage_[3];
};

/// dx[t] sums the token's kept slots' rows of dxRows in slot order (dropped
/// ones: zero); dweights gets dw. Both rounded to their types.
void sumSlotGradients(const std::vector<float> &dxRows, const std::vector<char> &kept, const std::vector<float> &dw,
                      int64_t dx, int32_t xDtype, int64_t dweights, int32_t weightsDtype, int64_t tokens, int64_t d,
                      int64_t k);

/// As the forward: many small experts one per thread, few large ones in turn.
inline bool manySmallExperts(int64_t experts, int64_t rows) {
  return experts >= 4 * numThreads() && rows / std::max<int64_t>(experts, 1) < 128;
}

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_MOE_FFN_GRAD_H
