//===- Signature.h - a layer's runtime signature ----------------*- C++ -*-===//
//
// The artifact's signature (moe/runtime/artifact.h) read from a layer
// function before lowering: its inputs, parameters and outputs from the
// `moe.input` / `moe.param` / `moe.dims` attributes, its description and
// hyperparameters, and its useful FLOPs per token for benchmarks.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_SIGNATURE_H
#define MOE_COMPILER_SIGNATURE_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace moe {

LogicalResult extractSignature(func::FuncOp layer, ::moe::runtime::Signature &out);

/// The backward's signature: a gradient per result of @<layer>_backward,
/// named and shaped after the input or parameter its moe.gradient names.
LogicalResult extractBackward(func::FuncOp backward, const ::moe::runtime::Signature &forward,
                              ::moe::runtime::BackwardSignature &out);

} // namespace moe

#endif // MOE_COMPILER_SIGNATURE_H
