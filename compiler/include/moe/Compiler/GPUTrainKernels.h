//===- GPUTrainKernels.h - a CUDA train artifact's step kernels -*- C++ -*-===//
//
// The kernels of a GPU training step besides the layer's (AdamW, the squared
// error's cotangent: moe/runtime/train_kernels.h), generated for a train
// artifact's parameter and output types and compiled to PTX and, with ptxas,
// a cubin: sections code.train.ptx and code.train.cubin. The runtime loads
// them itself (they are not the layer's code).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_GPUTRAINKERNELS_H
#define MOE_COMPILER_GPUTRAINKERNELS_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/artifact.h"

#include "mlir/IR/Location.h"

#include <string>

namespace moe {

/// The step's kernels for `signature` (its trainable parameters and their
/// gradients, its first output) on `chip`: `ptx`, and `cubin` when `ptxas`
/// is not empty.
LogicalResult compileTrainKernels(Location loc, const ::moe::runtime::Signature &signature, llvm::StringRef chip,
                                  const std::string &ptxas, std::string &ptx, std::string &cubin);

} // namespace moe

#endif // MOE_COMPILER_GPUTRAINKERNELS_H
