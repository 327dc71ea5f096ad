//===- Evaluator.h - float64 reference interpreter of the moe dialect -*- C++ -*-===//
//
// The oracle every code generator is tested against: a plain interpreter of a
// layer function (moe ops plus the arith/tensor glue the frontend emits) that
// computes each op in double precision, straight from the op's documented
// semantics, then rounds the result to the op's element type (f32, bf16 or
// f16) as the IR says it is stored. No tiling, no fusion, no cleverness.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_REFERENCE_EVALUATOR_H
#define MOE_DIALECT_MOE_REFERENCE_EVALUATOR_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LLVM.h"
#include "moe/Support/MLIR.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moe::reference {

/// A dense row-major tensor of doubles; integer tensors hold exact integers.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  int64_t numElements() const;
};

/// Runs `fn` on `args` (one per function argument, inputs then parameters, with
/// static shapes). Returns the results, or an error message naming the op.
FailureOr<std::vector<Tensor>> evaluate(func::FuncOp fn, ArrayRef<Tensor> args, std::string &error);

/// The same in float64 throughout, with no rounding to the storage types:
/// the function reference::gradient differentiates (and finite differences see).
FailureOr<std::vector<Tensor>> evaluateExact(func::FuncOp fn, ArrayRef<Tensor> args, std::string &error);

/// Reverse mode (spec, "Training"): the gradient of sum_i <cotangents[i],
/// outputs[i]> with respect to each argument of `fn`, in float64 on the exact
/// forward (`outputs`, when given, gets it). Indices carry no gradient
/// (topk's, group_topk's, the routing of dispatch; integer arguments get
/// zeros), selections and ties are the forward's, a capacity-dropped
/// assignment contributes and gets zero, load_balance_loss is differentiated
/// through its probabilities only.
FailureOr<std::vector<Tensor>> gradient(func::FuncOp fn, ArrayRef<Tensor> args, ArrayRef<Tensor> cotangents,
                                        std::vector<Tensor> *outputs, std::string &error);

/// Rounds `value` to the nearest value of element type `type` (f32, bf16, f16;
/// integers and f64 are returned unchanged).
double roundTo(Type type, double value);

} // namespace moe::reference

#endif // MOE_DIALECT_MOE_REFERENCE_EVALUATOR_H
