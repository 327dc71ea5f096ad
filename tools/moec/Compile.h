//===- Compile.h - a layer source to an artifact, in memory --*- C++ -*-===//
#ifndef MOEC_COMPILE_H
#define MOEC_COMPILE_H

#include "Commands.h"

#include "moe/Compiler/Compiler.h"
#include "moe/runtime/artifact.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <memory>

namespace moec {

struct CompiledLayer {
  /// The context and the source the diagnostics point into.
  std::unique_ptr<moe::CompileSession> session;
  /// The layer as moe IR, before lowering: what the reference evaluator runs.
  mlir::OwningOpRef<mlir::ModuleOp> moeModule;
  moe::runtime::Artifact artifact;
};

/// Parses, elaborates and compiles `source` (a .moe file) for its target;
/// diagnostics are printed. Returns false after an error.
bool compileLayer(const LayerSource &source, CompiledLayer &out);

} // namespace moec

#endif // MOEC_COMPILE_H
