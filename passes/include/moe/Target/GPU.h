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

#include "moe/runtime/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::moe {

/// Whether `target` names a supported CUDA architecture (sm_80, sm_86, sm_89,
/// sm_90, sm_90a, ...: mma.sync and cp.async need sm_80).
bool isCudaTarget(llvm::StringRef target);

/// Compiles `layer` (consuming `module`) for `chip`; `ptx`, if set, receives
/// the PTX of all its kernels.
LogicalResult compileLayerForGPU(ModuleOp module, func::FuncOp layer, llvm::StringRef chip,
                                 ::moe::runtime::Artifact &out, std::string *commandLog = nullptr,
                                 std::string *llvmIR = nullptr, std::string *ptx = nullptr,
                                 int64_t gemmKTile = 0);

/// Registers the GPU/NVVM dialect translations and target attributes.
void registerGPUTarget(DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_TARGET_GPU_H
