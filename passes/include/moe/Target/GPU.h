//===- GPU.h - compile a moe layer to a CUDA artifact -----------*- C++ -*-===//
//
// The GPU code generator: runs moe-lower-to-nvvm for one CUDA architecture,
// keeps the PTX of every kernel (section "code.ptx", for inspection and
// `moec --emit=ptx`), and links the host code, which embeds that PTX and
// launches it through MLIR's `mgpu*` runtime ABI (implemented by the moe
// runtime), into section "code.host.so". Target name: "cuda-<chip>".
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TARGET_GPU_H
#define MOE_TARGET_GPU_H

#include "moe/Pipelines/Pipelines.h"
#include "moe/runtime/artifact.h"
#include "moe/runtime/target.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::moe {

struct TargetOptions {
  /// Where the layer runs: the CPU, or a CUDA architecture (sm_90a, sm_90,
  /// sm_80, ...), parsed once from the user's text (moe::runtime::parseTarget).
  ::moe::runtime::Target target = *::moe::runtime::parseTarget("sm_90a");
  /// Embed a cubin made by the toolkit's ptxas (when there is one) rather
  /// than PTX the driver compiles at load time; the PTX stays in the artifact
  /// and the runtime falls back to it on GPUs the cubin does not run on.
  bool cubin = true;
  /// The GPU GEMMs' choices (moec's --gpu-gemm* flags).
  GemmOptions gemm;
};

/// The CUDA toolkit's ptxas ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH), or "".
std::string findPtxas();

/// Compiles `layer` (consuming `module`) for the CUDA architecture
/// `options.target`; `ptx`, if set, receives the PTX of all its kernels.
LogicalResult compileLayerForGPU(ModuleOp module, func::FuncOp layer, const TargetOptions &options,
                                 ::moe::runtime::Artifact &out, std::string *commandLog = nullptr,
                                 std::string *llvmIR = nullptr, std::string *ptx = nullptr);

/// compileLayerForCPU or compileLayerForGPU, as `options.target` says: what
/// moec and the JIT call.
LogicalResult compileLayerForTarget(ModuleOp module, func::FuncOp layer, const TargetOptions &options,
                                    ::moe::runtime::Artifact &out, std::string *commandLog = nullptr,
                                    std::string *llvmIR = nullptr, std::string *ptx = nullptr);

/// Registers the GPU/NVVM dialect translations and target attributes.
void registerGPUTarget(DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_TARGET_GPU_H
