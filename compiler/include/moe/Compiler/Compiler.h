//===- Compiler.h - a moe layer to an artifact ------------------*- C++ -*-===//
//
// The one compile path. `moec` (its printing modes, `moec build`, `moec run`),
// the JIT and the tests all compile through here:
//
//   CompileSession session(buffer);              // context, source, carets
//   auto module = session.elaborate(options);    // .moe -> moe dialect
//   compile(*module, {target, ...}, artifact);   // lowering + code generation
//
// compile() runs the target's lowering pipeline (which opens with the default
// pipeline, so it runs once) and the target's code generator (CPUCodeGen.h,
// GPUCodeGen.h); the artifact format is the runtime's (moe/runtime/artifact.h).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_COMPILER_H
#define MOE_COMPILER_COMPILER_H

#include "moe/Compiler/CompileOptions.h"
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"
#include "moe/Support/MLIR.h"
#include "moe/runtime/artifact.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <memory>
#include <optional>
#include <string>

namespace mlir {
class SourceMgrDiagnosticHandler;
} // namespace mlir

namespace moe {

/// Registers the dialects, translations and passes a compile needs.
void registerCompiler(DialectRegistry &registry);

/// One .moe buffer being compiled: its source manager, an MLIR context with
/// the compiler's dialects, and diagnostics (the frontend's and MLIR's) that
/// print as `file:line:col: error:` with the source line and a caret.
class CompileSession {
public:
  explicit CompileSession(std::unique_ptr<llvm::MemoryBuffer> source, llvm::raw_ostream &diagnostics = llvm::errs());
  ~CompileSession();

  /// The syntax tree; null after a syntax error (reported).
  const ::moe::frontend::Program *parse();
  /// The layer (or every layer, with options.allLayers) as moe-dialect IR;
  /// null after an error (reported).
  OwningOpRef<ModuleOp> elaborate(const ::moe::frontend::ElaborationOptions &options);

  MLIRContext &getContext() { return *context; }
  llvm::SourceMgr &getSourceMgr() { return sourceMgr; }

private:
  llvm::SourceMgr sourceMgr;
  unsigned buffer;
  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<::moe::frontend::Diagnostics> diags;
  std::unique_ptr<SourceMgrDiagnosticHandler> mlirDiagnostics;
  std::optional<::moe::frontend::Program> program;
};

/// Compiles the layer of `module` (its first function; the module is consumed)
/// into `out` for `options.target`. Diagnostics go to the module's context.
LogicalResult compile(ModuleOp module, const CompileOptions &options, ::moe::runtime::Artifact &out,
                      CompileListing *listing = nullptr);

} // namespace moe

#endif // MOE_COMPILER_COMPILER_H
