//===- CPU.h - compile a moe layer to a CPU artifact ------------*- C++ -*-===//
//
// The CPU code generator: runs the moe-lower-to-cpu pipeline on a layer,
// translates it to LLVM IR, adds the runtime's packed entry point
// (`moe_entry_<layer>(void **args)`: results, then one memref descriptor per
// input and parameter), optimises at O3, emits an object for x86-64 and links
// it into a shared object with the system linker. The artifact's signature
// comes from the layer's `moe.input` / `moe.param` / `moe.dims` attributes.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TARGET_CPU_H
#define MOE_TARGET_CPU_H

#include "moe/runtime/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::moe {

/// Reads the runtime signature of a layer function (before lowering), with its
/// useful FLOPs per token for benchmarks.
LogicalResult extractSignature(func::FuncOp layer, ::moe::runtime::Signature &out);

/// Compiles `layer` (a function of `module`, which is consumed) into a CPU
/// artifact. Diagnostics go to the module's context; `commandLog`, if set,
/// receives the linker command that ran, and `llvmIR` the optimised LLVM IR.
LogicalResult compileLayerForCPU(ModuleOp module, func::FuncOp layer,
                                 ::moe::runtime::Artifact &out, std::string *commandLog = nullptr,
                                 std::string *llvmIR = nullptr);

/// Registers what compileLayerForCPU needs in a context and the pass registry.
void registerCPUTarget(DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_TARGET_CPU_H
