//===- ExamplePlugin.cpp - entry point of the example plugin ----*- C++ -*-===//
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/Compiler.h"

namespace moe_example {
void registerExamplePasses();
} // namespace moe_example

/// The symbol `moe-opt --load-pass-plugin` looks up.
extern "C" LLVM_ATTRIBUTE_WEAK ::mlir::PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEExamplePlugin", LLVM_VERSION_STRING,
          [] { moe_example::registerExamplePasses(); }};
}
