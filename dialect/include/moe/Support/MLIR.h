//===- MLIR.h - MLIR's names in the moe namespace ---------------*- C++ -*-===//
//
// All of moe lives under one namespace root, `moe` (the dialect and passes
// in `moe`, and moe::frontend, moe::runtime, moe::jit, moe::builder). The
// compiler's code uses MLIR's names unqualified, as MLIR's own dialects do
// inside `mlir`, so they are visible in `moe`.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_SUPPORT_MLIR_H
#define MOE_SUPPORT_MLIR_H

#include "mlir/Support/LLVM.h"

namespace moe {
using namespace ::mlir;
} // namespace moe

#endif // MOE_SUPPORT_MLIR_H
