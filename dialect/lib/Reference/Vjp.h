//===- Vjp.h - the reference evaluator's derivative rules -------*- C++ -*-===//
//
// Each op's vector-Jacobian product in float64, from explicit values: the
// rules reference::gradient applies (Gradient.cpp) and the semantics of the
// backward ops (MoEGradOps.td) when the interpreter runs a generated
// backward, so both are one set of rules.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_REFERENCE_VJP_H
#define MOE_REFERENCE_VJP_H

#include "Interpreter.h"

#include <optional>
#include <utility>
#include <vector>

namespace moe::reference::detail::vjp {

using Vec = std::vector<double>;

Vec unary(UnaryFn fn, const Tensor &x, const Vec &dy);
/// (dlhs, drhs) for the broadcast result of shape `out`.
std::pair<Vec, Vec> binary(BinaryFn fn, const Tensor &l, const Tensor &r, const std::vector<int64_t> &out,
                           const Vec &dy);
Vec reduce(ReduceFn fn, const Tensor &x, int64_t dim, const Vec &dy);
/// From the forward's output `y`.
Vec softmax(const Tensor &y, int64_t dim, bool log, const Vec &dy);
/// (dx, dw); the bias's is the column sum of dy.
std::pair<Vec, Vec> dense(const Tensor &x, const Tensor &w, const Vec &dy);
std::pair<Vec, Vec> rmsnorm(const Tensor &x, const Tensor &w, double eps, const Vec &dy);
Vec topk(const Tensor &logits, const Tensor &indices, std::optional<ScoreFn> score, bool renormalize, double scale,
         const Vec &dvalues);
Vec gather(const Tensor &indices, int64_t cols, const Vec &dy);
/// (d rows, d weights) of a combine of `y`'s rows.
std::pair<Vec, Vec> combine(const Routed &y, const Tensor &weights, const Vec &dout);
/// (d rows, d weight of each stacked weight) of an expert FFN on `x`'s rows.
std::pair<Vec, std::vector<Vec>> expertFfn(FfnKind kind, std::optional<Activation> activation, const Routed &x,
                                           const std::vector<const Tensor *> &weights, int64_t inner, const Vec &dyRows,
                                           const Tensor *up = nullptr);
/// Each token's slots summed.
Vec dispatch(const Routed &r, const Vec &dRows);
Vec loadBalanceLoss(const Tensor &probs, const Tensor &indices, double dloss);
Vec zLoss(const Tensor &logits, double dloss);

} // namespace moe::reference::detail::vjp

#endif // MOE_REFERENCE_VJP_H
