// optimizer.cc - AdamW on f32 masters and the balance-bias update.
#include "moe/runtime/optimizer.h"

#include "cpu/thread_pool.h"

#include <algorithm>
#include <cmath>

namespace moe::runtime {
namespace {

/// Runs f(begin, end) over [0, n) in pieces on the kernels' thread pool. The
/// work is elementwise: the bits do not depend on the split.
template <typename F> void forChunks(int64_t n, F &&f) {
  const int64_t grain = 1 << 16, pieces = (n + grain - 1) / grain;
  cpu::parallelFor(pieces, [&](int64_t piece) { f(piece * grain, std::min(n, (piece + 1) * grain)); });
}

} // namespace

moe_status_t checkAdamWOptions(const AdamWOptions &o) {
  auto bad = [](const std::string &what) { return fail(MOE_INVALID_ARGUMENT, "AdamW: " + what); };
  if (!(o.lr >= 0) || !std::isfinite(o.lr))
    return bad("lr must be a non-negative number, got " + std::to_string(o.lr));
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    return bad("betas must lie in [0, 1), got " + std::to_string(o.beta1) + " and " + std::to_string(o.beta2));
  if (!(o.eps > 0))
    return bad("eps must be positive, got " + std::to_string(o.eps));
  if (!(o.weightDecay >= 0))
    return bad("weight decay must be non-negative, got " + std::to_string(o.weightDecay));
  return MOE_OK;
}

AdamWScalars adamwScalars(const AdamWOptions &o, int64_t steps) {
  AdamWScalars s;
  const double t = static_cast<double>(steps);
  s.decay = static_cast<float>(1 - o.lr * o.weightDecay);
  s.oneMinusBeta1 = 1.0f - static_cast<float>(o.beta1);
  s.beta2 = static_cast<float>(o.beta2);
  s.oneMinusBeta2 = 1.0f - static_cast<float>(o.beta2);
  s.correction2Sqrt = static_cast<float>(std::sqrt(1 - std::pow(o.beta2, t)));
  s.eps = static_cast<float>(o.eps);
  s.stepSize = static_cast<float>(o.lr / (1 - std::pow(o.beta1, t)));
  return s;
}

moe_status_t AdamW::step(std::vector<Tensor> &params, const std::vector<Tensor> &grads,
                         const std::vector<bool> *decays) {
  if (moe_status_t s = checkAdamWOptions(options_))
    return s;
  if (params.size() != grads.size())
    return fail(MOE_INVALID_ARGUMENT, "AdamW: " + std::to_string(params.size()) + " parameters but " +
                                          std::to_string(grads.size()) + " gradients");
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor &p = params[i], &g = grads[i];
    if (g.name != p.name && g.name != "grad." + p.name)
      return fail(MOE_INVALID_ARGUMENT, "AdamW: gradient \"" + g.name + "\" given for parameter \"" + p.name + "\"");
    if (g.shape != p.shape)
      return fail(MOE_INVALID_ARGUMENT, "AdamW: gradient of \"" + p.name + "\" is " + shapeString(g.shape) +
                                            ", the parameter " + shapeString(p.shape));
    if (!isFloatDType(p.dtype) || !isFloatDType(g.dtype))
      return fail(MOE_INVALID_ARGUMENT, "AdamW: \"" + p.name + "\" and its gradient must be floating point");
  }
  ++steps_;
  // As torch.optim.AdamW's single-tensor step, in f32.
  const AdamWScalars c = adamwScalars(options_, steps_);
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor &p = params[i];
    const Tensor &g = grads[i];
    const int64_t n = p.numElements();
    State &s = state_[p.name];
    const bool fresh = s.master.empty();
    if (fresh) {
      s.master.resize(n);
      s.m.assign(n, 0.0f);
      s.v.assign(n, 0.0f);
    }
    const bool decayed = decays ? (*decays)[i] : takesWeightDecay(p.shape.size());
    const float decay = decayed ? c.decay : c.undecayed;
    forChunks(n, [&](int64_t begin, int64_t end) {
      if (fresh)
        loadFloats(p, begin, end - begin, s.master.data() + begin);
      std::vector<float> grads(static_cast<size_t>(end - begin));
      loadFloats(g, begin, end - begin, grads.data());
      for (int64_t j = begin; j < end; ++j) {
        float grad = grads[j - begin], &w = s.master[j], &m = s.m[j], &v = s.v[j];
        w *= decay;
        m += c.oneMinusBeta1 * (grad - m); // lerp(m, grad, 1 - beta1), weight < 0.5
        v = v * c.beta2 + c.oneMinusBeta2 * grad * grad;
        float denom = std::sqrt(v) / c.correction2Sqrt + c.eps;
        w += -c.stepSize * m / denom;
      }
      storeFloats(p, begin, s.master.data() + begin, end - begin);
    });
  }
  return MOE_OK;
}

void AdamW::restore(std::map<std::string, State> state, int64_t steps) {
  state_ = std::move(state);
  steps_ = steps;
}

moe_status_t updateBalanceBias(Tensor &bias, const std::vector<int64_t> &load, double rate) {
  if (bias.dtype != MOE_F32 || bias.shape.size() != 1 || bias.shape[0] != static_cast<int64_t>(load.size()))
    return fail(MOE_INVALID_ARGUMENT, "balance update: \"" + bias.name + "\" must be an f32 vector of " +
                                          std::to_string(load.size()) + " experts, is " + moe_dtype_name(bias.dtype) +
                                          " " + shapeString(bias.shape));
  double total = 0;
  for (int64_t l : load)
    total += static_cast<double>(l);
  const double mean = load.empty() ? 0 : total / static_cast<double>(load.size());
  std::vector<float> b(load.size());
  for (size_t e = 0; e < load.size(); ++e) {
    double gap = mean - static_cast<double>(load[e]);
    float sign = gap > 0 ? 1.0f : gap < 0 ? -1.0f : 0.0f;
    b[e] = bias.at(static_cast<int64_t>(e)) + static_cast<float>(rate) * sign;
  }
  storeFloats(bias, 0, b.data(), static_cast<int64_t>(b.size()));
  return MOE_OK;
}

moe_status_t updateBalanceBias(Tensor &bias, const Tensor &load, double rate) {
  std::vector<int64_t> counts;
  for (int64_t e = 0; e < load.numElements(); ++e)
    counts.push_back(static_cast<int64_t>(load.at(e)));
  return updateBalanceBias(bias, counts, rate);
}

} // namespace moe::runtime
