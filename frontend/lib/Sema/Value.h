//===- Value.h - compile-time values of the elaborator ----------*- C++ -*-===//
//
// What an expression evaluates to during elaboration: a folded scalar, a
// tensor (an SSA value with a symbolic shape), a routed value, a tuple, a
// field, a function... Poison marks an expression that already failed, so
// one mistake is reported once.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_SEMA_VALUE_H
#define MOE_FRONTEND_SEMA_VALUE_H

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Frontend/AST.h"
#include "moe/runtime/dtype.h"

#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moe::frontend::sema {

/// A layer's element types: the runtime's dtypes (moe/runtime/dtype.h), whose
/// names, sizes and MLIR types are mapped once (ElementTypes.h).
enum class ElemType { F32 = MOE_F32, F16 = MOE_F16, BF16 = MOE_BF16, I32 = MOE_I32 };
inline moe_dtype_t dtypeOf(ElemType t) { return static_cast<moe_dtype_t>(t); }

llvm::StringRef name(ElemType t);
std::optional<ElemType> parseElemType(llvm::StringRef name);
bool isFloat(ElemType t);
/// Julia's promotion of two float types (`bf16` with `f16` is `f32`).
ElemType promote(ElemType a, ElemType b);
mlir::Type toMlir(ElemType t, mlir::MLIRContext *context);

/// A dimension: a static size, or a symbolic name bound when the layer is
/// called (`tokens`). The same symbol is the same size.
struct Dim {
  int64_t size = 1;
  std::string symbol;
  bool isStatic() const { return symbol.empty(); }
  bool operator==(const Dim &o) const { return symbol == o.symbol && (!isStatic() || size == o.size); }
  bool operator!=(const Dim &o) const { return !(*this == o); }
  std::string str() const { return isStatic() ? std::to_string(size) : symbol; }
};
using Shape = llvm::SmallVector<Dim, 4>;
std::string str(const Shape &shape);
mlir::RankedTensorType toTensorType(ElemType t, const Shape &shape, mlir::MLIRContext *context);

/// A field constructor, evaluated: `Dense(4096 => 8)`, `Experts(8, SwiGLU(...))`.
struct FieldSpec {
  enum class Kind { Param, Dense, SwiGLU, GeGLU, MLP, Experts, RMSNorm };
  Kind kind;
  ElemType dtype = ElemType::F32;
  std::vector<int64_t> dims;                          ///< Param
  int64_t in = 0, out = 0;                            ///< Dense; SwiGLU/GeGLU/MLP (d => f); RMSNorm (in)
  bool bias = false;                                  ///< Dense
  moe::Activation activation = moe::Activation::relu; ///< MLP
  int64_t numExperts = 0;                             ///< Experts
  std::shared_ptr<FieldSpec> inner;                   ///< Experts: the per-expert FFN
  double eps = 1e-6;                                  ///< RMSNorm
  std::string init = "normal";                        ///< Param
  bool trainable = true;                              ///< Param
  std::string update;                                 ///< Param: "" or "balance" (update = :balance)
};
llvm::StringRef name(FieldSpec::Kind kind);

struct Val;

/// A layer field, materialised as function arguments (its parameter tensors).
struct Field {
  std::string name;
  llvm::SMLoc loc;
  FieldSpec spec;
  /// Parameter tensors by suffix: "" for a Param, "weight", "w_gate", ...
  std::map<std::string, std::shared_ptr<Val>> params;
};

struct Val {
  enum class Kind {
    Poison,
    Int,
    Float,
    Bool,
    Nothing,
    Symbol,
    String,
    DType, // compile-time scalars
    Tensor,
    Routed,
    Tuple,
    Pair,
    Spec,
    Field,
    Function,
    Builtin,
    TypeName,
  };
  Kind kind = Kind::Poison;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s; ///< Symbol/String/Builtin/TypeName name
  ElemType dtype = ElemType::F32;

  // Tensor (and Routed: `value`, `dtype`, `tokens` as shape[0], d as shape[1]).
  mlir::Value value;
  Shape shape;
  int64_t indexRange = 0; ///< i32 index tensors: the expert count they index

  // Routed
  int64_t experts = 0, k = 0;
  std::optional<double> capacity;

  std::vector<Val> elements;       ///< Tuple; Pair (2)
  std::shared_ptr<FieldSpec> spec; ///< Spec
  const sema::Field *field = nullptr;
  const FunctionDecl *function = nullptr;

  static Val poison() { return Val(); }
  static Val integer(int64_t v) {
    Val r;
    r.kind = Kind::Int;
    r.i = v;
    return r;
  }
  static Val real(double v) {
    Val r;
    r.kind = Kind::Float;
    r.f = v;
    return r;
  }
  static Val boolean(bool v) {
    Val r;
    r.kind = Kind::Bool;
    r.b = v;
    return r;
  }
  static Val tensor(mlir::Value v, ElemType t, Shape shape) {
    Val r;
    r.kind = Kind::Tensor;
    r.value = v;
    r.dtype = t;
    r.shape = std::move(shape);
    return r;
  }
  static Val tuple(std::vector<Val> elements) {
    Val r;
    r.kind = Kind::Tuple;
    r.elements = std::move(elements);
    return r;
  }

  bool isPoison() const { return kind == Kind::Poison; }
  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float; }
  bool isTensor() const { return kind == Kind::Tensor; }
  double asDouble() const { return kind == Kind::Int ? static_cast<double>(i) : f; }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
};

/// `2.5`, `1e-06`: numbers as a user wrote them.
std::string formatNumber(double value);

/// "a 2-d tensor [tokens, 8] of bf16", "an integer (4)", ... for diagnostics.
std::string describe(const Val &v);

} // namespace moe::frontend::sema

#endif // MOE_FRONTEND_SEMA_VALUE_H
