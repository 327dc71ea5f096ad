//===- CPUCodeGen.h - a moe layer to a CPU artifact -------------*- C++ -*-===//
//
// The CPU code generator: runs the moe-lower-to-cpu pipeline on a layer and
// links the result into a host shared object (HostLibrary.h), section
// "code.cpu.so". compile() (Compiler.h) calls it for the CPU target.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_CPUCODEGEN_H
#define MOE_COMPILER_CPUCODEGEN_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/artifact.h"
#include "moe/runtime/mesh.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace moe {

/// Compiles `layer` (a function of `module`, which is consumed) into a CPU
/// artifact. Diagnostics go to the module's context; `commandLog`, if set,
/// receives the linker command that ran, and `llvmIR` the optimised LLVM IR.
/// On a `mesh` of several ranks it is the placed per-rank program.
LogicalResult compileLayerForCPU(ModuleOp module, func::FuncOp layer, const ::moe::runtime::Mesh &mesh, bool train,
                                 ::moe::runtime::Artifact &out, std::string *commandLog = nullptr,
                                 std::string *llvmIR = nullptr);

} // namespace moe

#endif // MOE_COMPILER_CPUCODEGEN_H
