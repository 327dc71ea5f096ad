//===- HostLibrary.h - a lowered layer as a host shared object --*- C++ -*-===//
//
// The last steps of every target: a module in the LLVM dialect (for a GPU
// layer, host code with its PTX embedded) is translated to LLVM IR, given the
// runtime's packed entry point (`moe_entry_<layer>(void **args)`: results,
// then one memref descriptor per input and parameter), optimised at O3,
// compiled for x86-64 and linked into a shared object by the system linker.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_HOSTLIBRARY_H
#define MOE_COMPILER_HOSTLIBRARY_H

#include "mlir/IR/BuiltinOps.h"
#include "moe/Support/MLIR.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

/// Strips moe.* attributes, translates and links `module`; `entry` receives
/// the entry point's name, `library` the shared object. `commandLog` (if
/// set) receives the linker command, `llvmIR` the optimised LLVM IR.
LogicalResult buildHostLibrary(ModuleOp module, StringRef layerName, Location loc, std::string &entry,
                               std::vector<uint8_t> &library, std::string *commandLog = nullptr,
                               std::string *llvmIR = nullptr, std::string *backwardEntry = nullptr,
                               std::string *trainEntry = nullptr);

} // namespace moe

#endif // MOE_COMPILER_HOSTLIBRARY_H
