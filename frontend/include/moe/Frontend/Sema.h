//===- Sema.h - elaboration of .moe programs into moe IR --------*- C++ -*-===//
//
// Semantic analysis and MLIRGen in one walk, as partial evaluation: consts
// and hyperparameters are folded, helper functions are specialised and
// inlined at each call site (Julia's method specialisation), shapes and
// element types are inferred with symbolic dimensions (`tokens`), and every
// tensor operation is emitted as a `moe`-dialect op whose location is the
// `.moe` source (a CallSiteLoc inside inlined helpers).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_SEMA_H
#define MOE_FRONTEND_SEMA_H

#include "moe/Frontend/AST.h"
#include "moe/Frontend/Diagnostics.h"
#include "moe/Frontend/Parser.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>
#include <utility>
#include <vector>

namespace moe::frontend {

struct ElaborationOptions {
  /// The layer to compile; empty picks the only (or the last) layer.
  std::string layer;
  /// Compile every layer of the file (`moec check`); `layer` is then ignored.
  bool allLayers = false;
  /// `--set NAME=VALUE` overrides of hyperparameters and type parameters,
  /// VALUE in the language's syntax (`4`, `1e-5`, `true`, `f32`).
  std::vector<std::pair<std::string, std::string>> overrides;
  /// Bounds on inlining helper functions, so that no program makes the
  /// compiler hang: helpers calling each other twice per level grow as 2^n.
  /// The layer may hold at most `maxOperations` operations after inlining,
  /// and helper calls may nest at most `maxCallDepth` deep.
  int64_t maxOperations = 100000;
  int64_t maxCallDepth = 64;
};

/// Elaborates `program` (parsed from a buffer of diags' SourceMgr) into a
/// module with one `func.func` per compiled layer. Returns null after
/// reporting errors; the module is verified before it is returned.
mlir::OwningOpRef<mlir::ModuleOp> elaborate(const Program &program, Diagnostics &diags, mlir::MLIRContext &context,
                                            const ElaborationOptions &options);

/// Parses buffer `bufferId` of `diags`' SourceMgr and elaborates it: the
/// frontend in one call. Returns null after reporting errors (syntax errors
/// stop before elaboration, which would only add noise).
mlir::OwningOpRef<mlir::ModuleOp> parseAndElaborate(Diagnostics &diags, unsigned bufferId, mlir::MLIRContext &context,
                                                    const ElaborationOptions &options);

/// Registers what the elaborated IR uses (moe, func, arith, tensor).
void registerFrontendDialects(mlir::MLIRContext &context);

} // namespace moe::frontend

#endif // MOE_FRONTEND_SEMA_H
