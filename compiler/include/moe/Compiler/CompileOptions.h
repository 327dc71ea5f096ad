//===- CompileOptions.h - what a compile is asked to do ---------*- C++ -*-===//
#ifndef MOE_COMPILER_COMPILEOPTIONS_H
#define MOE_COMPILER_COMPILEOPTIONS_H

#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"
#include "moe/runtime/mesh.h"
#include "moe/runtime/target.h"

#include <string>

namespace moe {

/// Everything that shapes the generated code but the layer itself.
struct CompileOptions {
  /// Where the layer runs: the CPU or a CUDA architecture, parsed once from
  /// the user's text (moe::runtime::parseTarget) and carried typed to the
  /// artifact's signature.
  ::moe::runtime::Target target = ::moe::runtime::Target::cpu();
  /// GPU targets: embed a cubin made by the toolkit's ptxas (when there is
  /// one) beside the PTX, which the runtime falls back to on other GPUs.
  bool cubin = true;
  /// GPU targets: the generated kernels' choices (convert-moe-to-gpu-kernels).
  GPUKernelOptions kernels;
  /// The device mesh the layer is placed on (moec build --mesh; spec,
  /// "Sharding"): one device by default.
  ::moe::runtime::Mesh mesh;
  /// moec build --train: the layer's backward too (moe-differentiate), for
  /// training (spec, "Training").
  bool train = false;
};

/// What a compile can hand back beside the artifact, for inspection.
struct CompileListing {
  std::string llvmIR;      ///< the host code's optimised LLVM IR
  std::string ptx;         ///< GPU targets: the PTX of every kernel
  std::string trainPtx;    ///< GPU train artifacts: the training step's kernels (GPUTrainKernels.h)
  std::string linkCommand; ///< the system linker's command line
};

} // namespace moe

#endif // MOE_COMPILER_COMPILEOPTIONS_H
