//===- KernelAbi.h - the dialect's enums as the kernels' codes --*- C++ -*-===//
//
// The codes of moe/runtime/kernel_abi.h (the compiler <-> runtime contract)
// for the dialect's score functions and expert FFNs: the one mapping, used
// by the CPU kernel calls and the GPU kernels alike.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_IR_KERNELABI_H
#define MOE_DIALECT_MOE_IR_KERNELABI_H

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Support/MLIR.h"
#include "moe/runtime/kernel_abi.h"
#include "moe/runtime/mesh.h"

#include "llvm/Support/ErrorHandling.h"

#include <optional>

namespace moe {

inline moe_score_t kernelScore(std::optional<ScoreFn> score) {
  if (!score)
    return MOE_SCORE_NONE;
  switch (*score) {
  case ScoreFn::softmax:
    return MOE_SCORE_SOFTMAX;
  case ScoreFn::sigmoid:
    return MOE_SCORE_SIGMOID;
  }
  llvm_unreachable("a score function without a kernel code");
}

/// The FFN of an expert_ffn (or its backward) of `kind`, with `activation` for an mlp.
inline moe_ffn_t kernelFfn(FfnKind kind, std::optional<Activation> activation) {
  switch (kind) {
  case FfnKind::swiglu:
    return MOE_FFN_SWIGLU;
  case FfnKind::geglu:
    return MOE_FFN_GEGLU;
  case FfnKind::mlp:
    switch (*activation) {
    case Activation::relu:
      return MOE_FFN_MLP_RELU;
    case Activation::gelu:
      return MOE_FFN_MLP_GELU;
    case Activation::silu:
      return MOE_FFN_MLP_SILU;
    }
  }
  llvm_unreachable("an expert FFN without a kernel code");
}

/// The FFN of `ffn`; a null op (dispatch straight into combine) is the identity.
inline moe_ffn_t kernelFfn(ExpertFfnOp ffn) {
  if (!ffn)
    return MOE_FFN_IDENTITY;
  std::optional<Activation> activation;
  if (auto a = ffn.getActivation())
    activation = *a;
  return kernelFfn(ffn.getKind(), activation);
}

/// The runtime's mask (moe::runtime::MeshAxes) of a collective's axes;
/// nullopt for an axis the runtime's meshes do not have.
inline std::optional<int32_t> kernelAxes(::mlir::ArrayAttr axes) {
  int32_t mask = 0;
  for (auto name : axes.getAsValueRange<::mlir::StringAttr>()) {
    if (name == "rep")
      mask |= ::moe::runtime::kAxisRep;
    else if (name == "dp")
      mask |= ::moe::runtime::kAxisDp;
    else if (name == "ep")
      mask |= ::moe::runtime::kAxisEp;
    else
      return std::nullopt;
  }
  return mask;
}

inline moe_reduction_t kernelReduction(CollectiveReduction r) {
  switch (r) {
  case CollectiveReduction::sum:
    return MOE_REDUCE_SUM;
  case CollectiveReduction::max:
    return MOE_REDUCE_MAX;
  case CollectiveReduction::min:
    return MOE_REDUCE_MIN;
  }
  llvm_unreachable("a collective reduction without a kernel code");
}

} // namespace moe

#endif // MOE_DIALECT_MOE_IR_KERNELABI_H
