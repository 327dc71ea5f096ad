// optimizer.h - the optimizer step of training (spec, "Training"): AdamW on
// f32 master weights, and DeepSeek-V3's aux-loss-free balancing of a router
// bias. Elementwise only, in f32 in a fixed order of operations: a step is
// deterministic, and a shard of a parameter updated on its own rank gets the
// same bits as the whole tensor updated on one device.
#ifndef MOE_RUNTIME_OPTIMIZER_H
#define MOE_RUNTIME_OPTIMIZER_H

#include "moe/runtime/status.h"
#include "moe/runtime/tensor.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moe::runtime {

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
};

/// Checks the hyperparameters (lr >= 0, betas in [0, 1), eps > 0, decay >= 0).
moe_status_t checkAdamWOptions(const AdamWOptions &options);

/// The f32 scalars of AdamW's step `t` (1, 2, ...) as PyTorch forms them (in
/// double, applied in f32): the host's step and the GPU's kernel
/// (train_kernels.h) both take them from here.
struct AdamWScalars {
  float decay = 1, undecayed = 1; ///< the master's factor, with and without weight decay
  float oneMinusBeta1 = 0, beta2 = 0, oneMinusBeta2 = 0, correction2Sqrt = 1, eps = 0, stepSize = 0;
};
AdamWScalars adamwScalars(const AdamWOptions &options, int64_t t);

/// AdamW as PyTorch's torch.optim.AdamW (decoupled decay, bias-corrected
/// moments), with the decay skipped for tensors of rank below 2 (biases,
/// norms' gains). Each parameter keeps an f32 master copy and two f32 moments;
/// a bf16 or f16 parameter is the master rounded (to nearest even) after
/// every step.
class AdamW {
public:
  explicit AdamW(AdamWOptions options) : options_(options) {}

  /// One step: `grads[i]` (any float dtype, the shape of `params[i]`, matched
  /// by name) updates `params[i]`. The first step of a parameter takes its
  /// current value as the master. Refuses mismatched names or shapes.
  /// `decays[i]`, when given, says whether params[i] takes the weight decay
  /// (an FSDP chunk is 1-D, its parameter's rank is what counts); else the
  /// tensors of rank 2 or more do.
  moe_status_t step(std::vector<Tensor> &params, const std::vector<Tensor> &grads,
                    const std::vector<bool> *decays = nullptr);

  /// Steps taken (the bias correction's t).
  int64_t steps() const { return steps_; }
  /// Counts a step whose update ran elsewhere (the GPU's kernel), which
  /// keeps the state itself.
  void countStep() { ++steps_; }
  const AdamWOptions &options() const { return options_; }
  void setOptions(const AdamWOptions &options) { options_ = options; }

  /// A parameter's optimizer state, for checkpoints.
  struct State {
    std::vector<float> master, m, v;
  };
  const std::map<std::string, State> &state() const { return state_; }
  /// Restores state saved from state() at step `steps`.
  void restore(std::map<std::string, State> state, int64_t steps);

private:
  AdamWOptions options_;
  int64_t steps_ = 0;
  std::map<std::string, State> state_;
};

/// DeepSeek-V3's aux-loss-free balancing (`update = :balance`): after a step,
/// b_e += rate * sign(mean_load - load_e), the loads counted over the global
/// batch (sign(0) = 0). `bias` is an f32 vector of one value an expert.
moe_status_t updateBalanceBias(Tensor &bias, const std::vector<int64_t> &load, double rate);
/// The same with the loads as the backward returns them (`load.<name>`, counts as floats).
moe_status_t updateBalanceBias(Tensor &bias, const Tensor &load, double rate);

/// Whether a parameter of this rank takes AdamW's decoupled weight decay:
/// matrices and stacked experts do, biases and norms' gains do not.
inline bool takesWeightDecay(size_t rank) { return rank >= 2; }

} // namespace moe::runtime

#endif // MOE_RUNTIME_OPTIMIZER_H
