//===- AST.h - syntax tree of the .moe language -----------------*- C++ -*-===//
//
// The parser's output: a faithful tree of the source with a location on every
// node. It carries no types; Sema elaborates it (constant folding, shapes,
// inlining) straight into `moe`-dialect IR.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_AST_H
#define MOE_FRONTEND_AST_H

#include "moe/Frontend/Token.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace moe::frontend {

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

class Expr {
public:
  enum class Kind {
    Integer,
    Float,
    Bool,
    Nothing,
    String,
    Symbol, // literals
    Name,
    Tuple,
    Call,
    Curly,
    Index,
    Binary,
    Unary,
  };
  Expr(Kind kind, llvm::SMLoc loc) : kind(kind), loc(loc) {}
  virtual ~Expr() = default;
  Kind getKind() const { return kind; }
  llvm::SMLoc getLoc() const { return loc; }

private:
  Kind kind;
  llvm::SMLoc loc;
};
using ExprPtr = std::unique_ptr<Expr>;

template <Expr::Kind K> struct ExprOf : Expr {
  explicit ExprOf(llvm::SMLoc loc) : Expr(K, loc) {}
  static bool classof(const Expr *e) { return e->getKind() == K; }
};

struct IntegerExpr : ExprOf<Expr::Kind::Integer> {
  IntegerExpr(llvm::SMLoc loc, int64_t value) : ExprOf(loc), value(value) {}
  int64_t value;
};

struct FloatExpr : ExprOf<Expr::Kind::Float> {
  FloatExpr(llvm::SMLoc loc, double value, bool isFloat32) : ExprOf(loc), value(value), isFloat32(isFloat32) {}
  double value;
  bool isFloat32; ///< written `3.0f0`
};

struct BoolExpr : ExprOf<Expr::Kind::Bool> {
  BoolExpr(llvm::SMLoc loc, bool value) : ExprOf(loc), value(value) {}
  bool value;
};

struct NothingExpr : ExprOf<Expr::Kind::Nothing> {
  using ExprOf::ExprOf;
};

struct StringExpr : ExprOf<Expr::Kind::String> {
  StringExpr(llvm::SMLoc loc, std::string value) : ExprOf(loc), value(std::move(value)) {}
  std::string value;
};

/// `:normal`
struct SymbolExpr : ExprOf<Expr::Kind::Symbol> {
  SymbolExpr(llvm::SMLoc loc, std::string name) : ExprOf(loc), name(std::move(name)) {}
  std::string name;
};

struct NameExpr : ExprOf<Expr::Kind::Name> {
  NameExpr(llvm::SMLoc loc, std::string name) : ExprOf(loc), name(std::move(name)) {}
  std::string name;
};

/// `(a, b)`, and the right-hand side of `return a, b`.
struct TupleExpr : ExprOf<Expr::Kind::Tuple> {
  TupleExpr(llvm::SMLoc loc, std::vector<ExprPtr> elements) : ExprOf(loc), elements(std::move(elements)) {}
  std::vector<ExprPtr> elements;
};

struct KeywordArg {
  llvm::SMLoc loc;
  std::string name;
  ExprPtr value;
};

/// `f(a, b; k = v)`, and with `broadcast` set, `f.(a, b)`.
struct CallExpr : ExprOf<Expr::Kind::Call> {
  CallExpr(llvm::SMLoc loc, ExprPtr callee, std::vector<ExprPtr> args, std::vector<KeywordArg> keywords, bool broadcast)
      : ExprOf(loc), callee(std::move(callee)), args(std::move(args)), keywords(std::move(keywords)),
        broadcast(broadcast) {}
  ExprPtr callee;
  std::vector<ExprPtr> args;
  std::vector<KeywordArg> keywords;
  bool broadcast;
};

/// `Param{T}`, `Tensor{bf16}`: type application.
struct CurlyExpr : ExprOf<Expr::Kind::Curly> {
  CurlyExpr(llvm::SMLoc loc, ExprPtr base, std::vector<ExprPtr> params)
      : ExprOf(loc), base(std::move(base)), params(std::move(params)) {}
  ExprPtr base;
  std::vector<ExprPtr> params;
};

/// `Tensor{T}[tokens, d]`: only meaningful as an argument type.
struct IndexExpr : ExprOf<Expr::Kind::Index> {
  IndexExpr(llvm::SMLoc loc, ExprPtr base, std::vector<ExprPtr> indices)
      : ExprOf(loc), base(std::move(base)), indices(std::move(indices)) {}
  ExprPtr base;
  std::vector<ExprPtr> indices;
};

/// `a + b`, `a .* b`, `a => b`, `a && b`, ...; `op` is the operator token.
struct BinaryExpr : ExprOf<Expr::Kind::Binary> {
  BinaryExpr(llvm::SMLoc loc, TokenKind op, ExprPtr lhs, ExprPtr rhs)
      : ExprOf(loc), op(op), lhs(std::move(lhs)), rhs(std::move(rhs)) {}
  TokenKind op;
  ExprPtr lhs, rhs;
};

/// `-x`, `+x`, `!b`.
struct UnaryExpr : ExprOf<Expr::Kind::Unary> {
  UnaryExpr(llvm::SMLoc loc, TokenKind op, ExprPtr operand) : ExprOf(loc), op(op), operand(std::move(operand)) {}
  TokenKind op;
  ExprPtr operand;
};

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

/// The left-hand side of an assignment: a name, `_`, or a (nested) tuple.
struct Target {
  llvm::SMLoc loc;
  std::string name;             ///< empty for a tuple; "_" discards
  std::vector<Target> elements; ///< a tuple's parts
  bool isTuple() const { return name.empty(); }
};

struct Stmt {
  enum class Kind { Assign, Return, Expression };
  Kind kind;
  llvm::SMLoc loc;
  Target target; ///< Assign only
  ExprPtr value; ///< null for a bare `return`
};

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

/// A function or layer parameter: `x`, `x::Tensor{T}[tokens, d]`,
/// `top_k::Int = 2`, `eps = 1e-6`.
struct Parameter {
  llvm::SMLoc loc;
  std::string name;
  ExprPtr type;         ///< the `::` annotation, or null
  ExprPtr defaultValue; ///< or null
};

/// A helper function (`name` set) or a layer's forward method (`name` empty).
struct FunctionDecl {
  llvm::SMLoc loc;
  std::string name;
  std::string doc;
  std::vector<Parameter> params;
  std::vector<Parameter> keywordParams; ///< after `;`, each with a default
  std::vector<Stmt> body;
  bool shortForm = false; ///< `f(x) = expr`
};

struct ConstDecl {
  llvm::SMLoc loc;
  std::string name;
  std::string doc;
  ExprPtr value;
};

struct FieldDecl {
  llvm::SMLoc loc;
  std::string name;
  ExprPtr constructor;
};

struct LayerDecl {
  llvm::SMLoc loc;
  std::string name;
  std::string doc;
  std::vector<Parameter> typeParams;  ///< `{T = bf16}`
  std::vector<Parameter> hyperParams; ///< `(top_k::Int = 2)`
  std::vector<FieldDecl> fields;
  std::unique_ptr<FunctionDecl> forward; ///< null if the layer has none
};

/// A whole `.moe` file, declarations in source order.
struct Program {
  std::vector<ConstDecl> consts;
  std::vector<std::unique_ptr<FunctionDecl>> functions;
  std::vector<LayerDecl> layers;
};

/// Spells an operator token as in the source (`.+`, `=>`).
llvm::StringRef spellOperator(TokenKind op);

/// Prints the tree as indented S-expressions with `line:col` locations
/// (`moec --emit=ast`).
void printProgram(const Program &program, const llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os);

} // namespace moe::frontend

#endif // MOE_FRONTEND_AST_H
