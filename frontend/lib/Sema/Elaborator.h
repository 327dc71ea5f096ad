//===- Elaborator.h - the .moe elaborator (Sema + MLIRGen) ------*- C++ -*-===//
//
// Internal to the frontend. One Elaborator walks one program: Elaborator.cpp
// holds declarations, scopes and statements; Expressions.cpp operators,
// broadcasting and promotion; Builtins.cpp the builtin functions; Fields.cpp
// the field constructors and their calls.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_SEMA_ELABORATOR_H
#define MOE_FRONTEND_SEMA_ELABORATOR_H

#include "Value.h"

#include "moe/Frontend/Sema.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <deque>

namespace moe::frontend::sema {

/// Evaluated keyword arguments of one call.
struct Keyword {
  llvm::SMLoc loc;
  Val value;
};
using Keywords = llvm::StringMap<Keyword>;

/// Evaluated positional arguments with their source locations.
struct Args {
  std::vector<Val> values;
  std::vector<llvm::SMLoc> locs;
  size_t size() const { return values.size(); }
  Val &operator[](size_t i) { return values[i]; }
};

bool isBuiltinFunctionName(llvm::StringRef name);

/// Widens to f32 every matrix product of `layer` that feeds routing (scores,
/// top-k, gathered scores, combine weights, auxiliary losses), keeping a
/// rounded copy for its other uses (RoutingPrecision.cpp).
void keepRoutingInF32(mlir::func::FuncOp layer);

class Elaborator {
public:
  Elaborator(const Program &program, Diagnostics &diags, mlir::MLIRContext &context, const ElaborationOptions &options);
  mlir::OwningOpRef<mlir::ModuleOp> run();

  // --- Diagnostics (Elaborator.cpp) ---
  /// Reports an error; inside inlined helpers, adds a note per call site.
  void error(llvm::SMLoc loc, const llvm::Twine &message);
  void warning(llvm::SMLoc loc, const llvm::Twine &message);
  void note(llvm::SMLoc loc, const llvm::Twine &message);
  mlir::Location loc(llvm::SMLoc loc);

  // --- Expressions (Expressions.cpp) ---
  Val eval(const Expr &expr);
  Val evalBinaryOp(TokenKind op, Val lhs, Val rhs, llvm::SMLoc loc);
  Val evalUnaryOp(TokenKind op, Val operand, llvm::SMLoc loc);
  /// Elementwise op with Julia broadcasting and promotion; scalars become
  /// 0-d tensors of the other operand's element type.
  Val broadcastBinary(moe::BinaryFn fn, Val lhs, Val rhs, llvm::SMLoc loc);
  Val applyUnary(moe::UnaryFn fn, Val operand, llvm::SMLoc loc);
  Val matmul(Val lhs, Val rhs, llvm::SMLoc loc);
  Val convert(const Val &tensor, ElemType to, llvm::SMLoc loc);
  Val scalarTensor(double value, ElemType type, llvm::SMLoc loc);
  /// Folds a scalar builtin (`sqrt(2.0)`); nullopt if `name` has no scalar form.
  std::optional<double> foldScalarFunction(llvm::StringRef name, double x);

  // --- Calls and builtins (Builtins.cpp) ---
  Val evalCall(const CallExpr &call);
  Val callBuiltin(llvm::StringRef name, const CallExpr &call, Args &args, Keywords &keywords);
  Val broadcastCall(const Val &callee, const CallExpr &call, Args &args, Keywords &keywords);
  Val callFunction(const FunctionDecl &fn, const CallExpr &call, Args &args, Keywords &keywords);
  /// The method of helper `name` taking `arity` positional arguments, or null
  /// after reporting that none does.
  const FunctionDecl *selectMethod(llvm::StringRef name, size_t arity, const CallExpr &call);
  /// Checks the argument count and keyword names of a call of `name`.
  bool checkArity(llvm::StringRef name, const CallExpr &call, const Args &args, const Keywords &keywords,
                  size_t minArgs, size_t maxArgs, llvm::ArrayRef<llvm::StringRef> allowedKeywords);

  // --- Fields (Fields.cpp) ---
  Val constructField(llvm::StringRef ctor, const CallExpr &call, const std::vector<Val> &typeParams, Args &args,
                     Keywords &keywords);
  void materializeField(Field &field);
  Val callField(const Field &field, const CallExpr &call, Args &args, Keywords &keywords);

  // --- Value checks shared by the builtins ---
  /// Requires a float tensor of rank `rank` (any rank if < 0).
  bool expectFloatTensor(const Val &v, llvm::SMLoc loc, llvm::StringRef what, int64_t rank);
  bool expectIndexTensor(const Val &v, llvm::SMLoc loc, llvm::StringRef what);
  /// args[0] a [tokens, experts] float matrix, args[1] expert indices over those experts.
  bool expectRowsAndIndices(llvm::StringRef builtin, Args &args, llvm::StringRef rowsRole, llvm::StringRef rowsName,
                            llvm::SMLoc at);
  std::optional<int64_t> expectInt(const Val &v, llvm::SMLoc loc, llvm::StringRef what);
  std::optional<double> expectNumber(const Val &v, llvm::SMLoc loc, llvm::StringRef what);
  /// A `dims = d` keyword (1-based) as a 0-based dimension of a rank-`rank` tensor.
  std::optional<int64_t> expectDims(const Keyword &kw, int64_t rank);
  /// Julia's broadcast of two shapes, or an error naming both.
  std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b, llvm::SMLoc loc);
  bool sameDim(const Dim &a, const Dim &b, llvm::SMLoc loc, llvm::StringRef what);

  mlir::OpBuilder builder;
  /// Counts the operations the builder creates (the expansion bound).
  struct OperationCounter : mlir::OpBuilder::Listener {
    int64_t count = 0;
    void notifyOperationInserted(mlir::Operation *, mlir::OpBuilder::InsertPoint) override { ++count; }
  };
  OperationCounter operationCounter;
  /// Set once a helper call crossed an expansion bound: later calls stop at
  /// once instead of reporting the same error again.
  bool expansionExceeded = false;
  /// > 0 while inlining a helper for `f.(x)`: operators act elementwise.
  int broadcastDepth = 0;
  /// True while a field's constructor is evaluated (the only place where
  /// Param, Dense, ... may be called).
  bool inFieldConstructor = false;

private:
  // --- Declarations and statements (Elaborator.cpp) ---
  void collectGlobals();
  const LayerDecl *selectLayer();
  bool elaborateLayer(const LayerDecl &layer);
  bool bindLayerParameters(const LayerDecl &layer);
  std::optional<Val> parseOverride(const Parameter &param, llvm::StringRef text);
  Val checkHyperParameter(const Parameter &param, Val value, llvm::SMLoc loc);
  bool addForwardArgument(const Parameter &param);
  Val lookup(const NameExpr &name);
  /// Runs statements; returns the `return`ed value (or the last statement's).
  Val execBody(const std::vector<Stmt> &body, bool isForward, llvm::SMLoc fnLoc);
  void assign(const Target &target, Val value, llvm::SMLoc loc);
  bool emitReturn(const Val &result, llvm::SMLoc loc);
  std::vector<std::string> visibleNames();

  const Program &program;
  Diagnostics &diags;
  mlir::MLIRContext &context;
  const ElaborationOptions &options;
  mlir::OwningOpRef<mlir::ModuleOp> module;

  llvm::StringMap<Val> globals;
  /// Helper functions by name; several methods of one name differ in arity (Julia).
  llvm::StringMap<std::vector<const FunctionDecl *>> functions;

  // The layer being elaborated.
  const LayerDecl *layer = nullptr;
  mlir::func::FuncOp func;
  std::vector<mlir::NamedAttrList> argAttrs;
  llvm::StringMap<Val> layerScope; ///< type params, hyperparameters, fields, args
  llvm::StringSet<> forwardArgNames;
  std::deque<Field> fields; ///< stable addresses for Val::field
  std::optional<ElemType> firstInputType;
  llvm::SMLoc returnLoc; ///< the last `return` executed

  /// Local scopes, innermost last; a helper call starts a fresh frame.
  std::vector<llvm::StringMap<Val>> locals;
  /// Inlined helper calls, outermost first.
  struct Frame {
    const FunctionDecl *function;
    llvm::SMLoc callLoc;
    mlir::Location location;
  };
  std::vector<Frame> frames;
};

} // namespace moe::frontend::sema

#endif // MOE_FRONTEND_SEMA_ELABORATOR_H
