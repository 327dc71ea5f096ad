//===- GPUCodeGen.h - a moe layer to a CUDA artifact ------------*- C++ -*-===//
//
// The GPU code generator: runs moe-lower-to-nvvm for one CUDA architecture,
// keeps the PTX of every kernel (section "code.ptx", for inspection and
// `moec --emit=ptx`), assembles a cubin with the toolkit's ptxas when asked,
// and links the host code, which embeds the kernels and launches them
// through MLIR's `mgpu*` runtime ABI (implemented by the moe runtime), into
// section "code.host.so". compile() (Compiler.h) calls it for CUDA targets.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_GPUCODEGEN_H
#define MOE_COMPILER_GPUCODEGEN_H

#include "moe/Compiler/CompileOptions.h"
#include "moe/Support/MLIR.h"
#include "moe/runtime/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace moe {

/// The PTX of every gpu.binary in `module` (compiled as assembly), in order.
std::string modulePtx(ModuleOp module);

/// Compiles `layer` (consuming `module`) for the CUDA architecture
/// `options.target`; `listing`, if set, receives the PTX, the host LLVM IR
/// and the link command.
LogicalResult compileLayerForGPU(ModuleOp module, func::FuncOp layer, const CompileOptions &options,
                                 ::moe::runtime::Artifact &out, CompileListing *listing = nullptr);

} // namespace moe

#endif // MOE_COMPILER_GPUCODEGEN_H
