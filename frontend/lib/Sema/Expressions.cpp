//===- Expressions.cpp - operators, broadcasting, promotion -----*- C++ -*-===//
//
// Julia semantics: `*` on two matrices is a matrix product, `+`/`-` need
// equal shapes, dotted operators broadcast (missing trailing dimensions and
// size-1 dimensions stretch), scalars broadcast, and mixed float types
// promote (`bf16 .+ f32` is f32). Numbers are compile-time values and fold;
// a number meeting a tensor takes the tensor's element type.
//
//===----------------------------------------------------------------------===//
#include "Elaborator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace moe::frontend;
using namespace moe::frontend::sema;
using llvm::SMLoc;
using moe::BinaryFn;
using moe::UnaryFn;

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

Val Elaborator::eval(const Expr &expr) {
  using K = Expr::Kind;
  switch (expr.getKind()) {
  case K::Integer:
    return Val::integer(llvm::cast<IntegerExpr>(expr).value);
  case K::Float:
    return Val::real(llvm::cast<FloatExpr>(expr).value);
  case K::Bool:
    return Val::boolean(llvm::cast<BoolExpr>(expr).value);
  case K::Nothing: {
    Val v;
    v.kind = Val::Kind::Nothing;
    return v;
  }
  case K::String: {
    Val v;
    v.kind = Val::Kind::String;
    v.s = llvm::cast<StringExpr>(expr).value;
    return v;
  }
  case K::Symbol: {
    Val v;
    v.kind = Val::Kind::Symbol;
    v.s = llvm::cast<SymbolExpr>(expr).name;
    return v;
  }
  case K::Name:
    return lookup(llvm::cast<NameExpr>(expr));
  case K::Tuple: {
    std::vector<Val> elements;
    for (const ExprPtr &e : llvm::cast<TupleExpr>(expr).elements)
      elements.push_back(eval(*e));
    return Val::tuple(std::move(elements));
  }
  case K::Call:
    return evalCall(llvm::cast<CallExpr>(expr));
  case K::Curly: {
    const auto &curly = llvm::cast<CurlyExpr>(expr);
    Val base = eval(*curly.base);
    if (base.isPoison())
      return base;
    if (base.kind != Val::Kind::TypeName || base.s == "Int" || base.s == "Bool" || base.s == "Float64" ||
        base.s == "Float32") {
      error(curly.getLoc(), "'{...}' applies an element type to Param, Dense, SwiGLU, GeGLU, "
                            "MLP, RMSNorm or Tensor, not to " +
                                describe(base));
      return Val::poison();
    }
    if (base.s == "Tensor") {
      error(curly.getLoc(), "tensor types 'Tensor{T}[...]' are only allowed on forward arguments");
      return Val::poison();
    }
    for (const ExprPtr &p : curly.params) {
      Val t = eval(*p);
      if (t.isPoison())
        return t;
      if (t.kind != Val::Kind::DType || !isFloat(t.dtype)) {
        error(p->getLoc(), "expected an element type (f32, f16 or bf16), got " + describe(t));
        return Val::poison();
      }
      base.elements.push_back(t);
    }
    return base;
  }
  case K::Index:
    error(expr.getLoc(), "indexing 'x[...]' is not part of the language; tensor types "
                         "'Tensor{T}[...]' are only allowed on forward arguments");
    return Val::poison();
  case K::Binary: {
    const auto &bin = llvm::cast<BinaryExpr>(expr);
    Val lhs = eval(*bin.lhs);
    Val rhs = eval(*bin.rhs);
    if (bin.op == TokenKind::Arrow) {
      Val pair;
      pair.kind = Val::Kind::Pair;
      pair.elements = {lhs, rhs};
      return pair;
    }
    return evalBinaryOp(bin.op, std::move(lhs), std::move(rhs), bin.getLoc());
  }
  case K::Unary: {
    const auto &un = llvm::cast<UnaryExpr>(expr);
    return evalUnaryOp(un.op, eval(*un.operand), un.getLoc());
  }
  }
  return Val::poison();
}

//===----------------------------------------------------------------------===//
// Constant folding
//===----------------------------------------------------------------------===//

namespace {
/// Folds `op` on two compile-time numbers; reports errors through `error`.
template <typename ErrorFn> Val foldArithmetic(TokenKind op, const Val &a, const Val &b, ErrorFn error) {
  bool ints = a.kind == Val::Kind::Int && b.kind == Val::Kind::Int;
  auto overflow = [&] {
    error("integer overflow in a constant expression");
    return Val::poison();
  };
  switch (op) {
  case TokenKind::Plus:
  case TokenKind::DotPlus:
  case TokenKind::Minus:
  case TokenKind::DotMinus:
  case TokenKind::Star:
  case TokenKind::DotStar: {
    bool isAdd = op == TokenKind::Plus || op == TokenKind::DotPlus;
    bool isSub = op == TokenKind::Minus || op == TokenKind::DotMinus;
    if (ints) {
      int64_t r;
      bool o = isAdd   ? __builtin_add_overflow(a.i, b.i, &r)
               : isSub ? __builtin_sub_overflow(a.i, b.i, &r)
                       : __builtin_mul_overflow(a.i, b.i, &r);
      return o ? overflow() : Val::integer(r);
    }
    double x = a.asDouble(), y = b.asDouble();
    return Val::real(isAdd ? x + y : isSub ? x - y : x * y);
  }
  case TokenKind::Slash:
  case TokenKind::DotSlash:
    if (b.asDouble() == 0.0) {
      error("division by zero in a constant expression");
      return Val::poison();
    }
    return Val::real(a.asDouble() / b.asDouble()); // `/` is float division, as in Julia
  case TokenKind::Caret:
  case TokenKind::DotCaret: {
    if (ints) {
      if (b.i < 0) {
        error("negative integer exponent " + std::to_string(b.i) +
              "; write a float base (2.0^-1) for a fractional result");
        return Val::poison();
      }
      int64_t result = 1, base = a.i, e = b.i;
      while (e > 0) {
        if ((e & 1) && __builtin_mul_overflow(result, base, &result))
          return overflow();
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base))
          return overflow();
      }
      return Val::integer(result);
    }
    double r = std::pow(a.asDouble(), b.asDouble());
    if (!std::isfinite(r)) {
      error("constant expression is not a finite number");
      return Val::poison();
    }
    return Val::real(r);
  }
  case TokenKind::Equal:
    return Val::boolean(a.asDouble() == b.asDouble());
  case TokenKind::NotEqual:
    return Val::boolean(a.asDouble() != b.asDouble());
  case TokenKind::Less:
    return Val::boolean(a.asDouble() < b.asDouble());
  case TokenKind::LessEqual:
    return Val::boolean(a.asDouble() <= b.asDouble());
  case TokenKind::Greater:
    return Val::boolean(a.asDouble() > b.asDouble());
  case TokenKind::GreaterEqual:
    return Val::boolean(a.asDouble() >= b.asDouble());
  default:
    error("operator is not defined on numbers");
    return Val::poison();
  }
}

BinaryFn toBinaryFn(TokenKind op) {
  switch (op) {
  case TokenKind::Plus:
  case TokenKind::DotPlus:
    return BinaryFn::add;
  case TokenKind::Minus:
  case TokenKind::DotMinus:
    return BinaryFn::sub;
  case TokenKind::Star:
  case TokenKind::DotStar:
    return BinaryFn::mul;
  case TokenKind::Slash:
  case TokenKind::DotSlash:
    return BinaryFn::div;
  default:
    return BinaryFn::pow;
  }
}

bool isDotted(TokenKind op) {
  return op == TokenKind::DotPlus || op == TokenKind::DotMinus || op == TokenKind::DotStar ||
         op == TokenKind::DotSlash || op == TokenKind::DotCaret;
}
} // namespace

Val Elaborator::evalBinaryOp(TokenKind op, Val lhs, Val rhs, SMLoc at) {
  if (lhs.isPoison() || rhs.isPoison())
    return Val::poison();
  std::string opName = "'" + spellOperator(op).str() + "'";
  auto reportAt = [&](const std::string &message) { error(at, message); };

  if (op == TokenKind::AndAnd || op == TokenKind::OrOr) {
    if (lhs.kind != Val::Kind::Bool || rhs.kind != Val::Kind::Bool) {
      error(at, opName + " expects two booleans, got " + describe(lhs) + " and " + describe(rhs));
      return Val::poison();
    }
    return Val::boolean(op == TokenKind::AndAnd ? lhs.b && rhs.b : lhs.b || rhs.b);
  }
  bool comparison = op == TokenKind::Equal || op == TokenKind::NotEqual || op == TokenKind::Less ||
                    op == TokenKind::LessEqual || op == TokenKind::Greater || op == TokenKind::GreaterEqual;
  if (lhs.isNumber() && rhs.isNumber())
    return foldArithmetic(op, lhs, rhs, reportAt);
  if (comparison) {
    if ((op == TokenKind::Equal || op == TokenKind::NotEqual) && lhs.kind == rhs.kind &&
        (lhs.kind == Val::Kind::Bool || lhs.kind == Val::Kind::Symbol || lhs.kind == Val::Kind::DType)) {
      bool eq = lhs.kind == Val::Kind::Bool     ? lhs.b == rhs.b
                : lhs.kind == Val::Kind::Symbol ? lhs.s == rhs.s
                                                : lhs.dtype == rhs.dtype;
      return Val::boolean(op == TokenKind::Equal ? eq : !eq);
    }
    error(at, opName + " compares compile-time numbers, got " + describe(lhs) + " and " + describe(rhs));
    return Val::poison();
  }

  bool elementwise = isDotted(op) || broadcastDepth > 0;
  if (elementwise)
    return broadcastBinary(toBinaryFn(op), lhs, rhs, at);

  // Undotted operators on tensors: Julia's linear-algebra meaning.
  bool lt = lhs.isTensor(), rt = rhs.isTensor();
  switch (op) {
  case TokenKind::Plus:
  case TokenKind::Minus:
    if (lt && rt) {
      if (lhs.shape != rhs.shape) {
        error(at, opName + " needs tensors of equal shape, got " + str(lhs.shape) + " and " + str(rhs.shape) +
                      "; use '." + spellOperator(op).str() + "' to broadcast");
        return Val::poison();
      }
      return broadcastBinary(toBinaryFn(op), lhs, rhs, at);
    }
    if ((lt && rhs.isNumber()) || (rt && lhs.isNumber())) {
      error(at, opName + " between a tensor and a number is not defined; use '." + spellOperator(op).str() +
                    "' to apply it to every element");
      return Val::poison();
    }
    break;
  case TokenKind::Star:
    if (lt && rt)
      return matmul(lhs, rhs, at);
    if ((lt && rhs.isNumber()) || (rt && lhs.isNumber()))
      return broadcastBinary(BinaryFn::mul, lhs, rhs, at);
    break;
  case TokenKind::Slash:
    if (lt && rhs.isNumber())
      return broadcastBinary(BinaryFn::div, lhs, rhs, at);
    if (lt || rt) {
      error(at, "'/' with a tensor divisor is a linear solve; use './' to divide elementwise");
      return Val::poison();
    }
    break;
  case TokenKind::Caret:
    if (lt || rt) {
      error(at, "'^' on a tensor is a matrix power; use '.^' to raise every element");
      return Val::poison();
    }
    break;
  default:
    break;
  }
  error(at, opName + " is not defined for " + describe(lhs) + " and " + describe(rhs));
  return Val::poison();
}

Val Elaborator::evalUnaryOp(TokenKind op, Val operand, SMLoc at) {
  if (operand.isPoison())
    return operand;
  if (op == TokenKind::Not) {
    if (operand.kind != Val::Kind::Bool) {
      error(at, "'!' expects a boolean, got " + describe(operand));
      return Val::poison();
    }
    return Val::boolean(!operand.b);
  }
  if (operand.kind == Val::Kind::Int) {
    if (op == TokenKind::Minus && operand.i == INT64_MIN) {
      error(at, "integer overflow in a constant expression");
      return Val::poison();
    }
    return Val::integer(op == TokenKind::Minus ? -operand.i : operand.i);
  }
  if (operand.kind == Val::Kind::Float)
    return Val::real(op == TokenKind::Minus ? -operand.f : operand.f);
  if (operand.isTensor()) {
    if (op == TokenKind::Plus)
      return operand;
    return applyUnary(UnaryFn::neg, operand, at);
  }
  error(at, "'" + spellOperator(op).str() + "' is not defined for " + describe(operand));
  return Val::poison();
}

//===----------------------------------------------------------------------===//
// Tensor operations
//===----------------------------------------------------------------------===//

bool Elaborator::sameDim(const Dim &a, const Dim &b, SMLoc at, llvm::StringRef what) {
  if (a == b)
    return true;
  error(at, what + ": " + a.str() + " vs " + b.str());
  return false;
}

std::optional<Shape> Elaborator::broadcastShapes(const Shape &a, const Shape &b, SMLoc at) {
  if (a.empty())
    return b;
  if (b.empty())
    return a;
  Shape result;
  size_t rank = std::max(a.size(), b.size());
  // Trailing dimensions align (tokens first, features last): the shorter shape
  // is padded with leading 1s, so an [n] vector is a [1, n] row.
  size_t padA = rank - a.size(), padB = rank - b.size();
  for (size_t i = 0; i < rank; ++i) {
    Dim x = i < padA ? Dim{1, ""} : a[i - padA];
    Dim y = i < padB ? Dim{1, ""} : b[i - padB];
    if (x == y || (y.isStatic() && y.size == 1))
      result.push_back(x);
    else if (x.isStatic() && x.size == 1)
      result.push_back(y);
    else {
      error(at, "cannot broadcast " + str(a) + " with " + str(b) + ": dimension " + std::to_string(i + 1) + " is " +
                    x.str() + " vs " + y.str() + " (each pair must be equal or 1)" +
                    (a.size() != b.size() ? "; trailing dimensions align, so a vector of length n "
                                            "is a [1, n] row: declare a column as Param{T}(n, 1)"
                                          : ""));
      return std::nullopt;
    }
  }
  return result;
}

Val Elaborator::scalarTensor(double value, ElemType type, SMLoc at) {
  mlir::Type elt = toMlir(type, &context);
  auto tensorType = mlir::RankedTensorType::get({}, elt);
  auto attr =
      mlir::DenseElementsAttr::get(tensorType, llvm::ArrayRef<mlir::Attribute>{builder.getFloatAttr(elt, value)});
  mlir::Value v = mlir::arith::ConstantOp::create(builder, loc(at), attr);
  return Val::tensor(v, type, {});
}

Val Elaborator::convert(const Val &tensor, ElemType to, SMLoc at) {
  if (tensor.dtype == to)
    return tensor;
  mlir::Location l = loc(at);
  Val result = tensor;
  result.dtype = to;
  auto typeOf = [&](ElemType t) { return toTensorType(t, tensor.shape, &context); };
  if (to == ElemType::F32) {
    result.value = mlir::arith::ExtFOp::create(builder, l, typeOf(to), tensor.value);
  } else if (tensor.dtype == ElemType::F32) {
    result.value = mlir::arith::TruncFOp::create(builder, l, typeOf(to), tensor.value);
  } else { // bf16 <-> f16 goes through f32
    mlir::Value wide = mlir::arith::ExtFOp::create(builder, l, typeOf(ElemType::F32), tensor.value);
    result.value = mlir::arith::TruncFOp::create(builder, l, typeOf(to), wide);
  }
  return result;
}

/// Prepends unit dimensions up to `rank`: broadcasting aligns trailing
/// dimensions, so [n] becomes [1, n].
static Val padRank(Elaborator &e, const Val &v, size_t rank, mlir::Location l) {
  if (v.shape.empty() || v.shape.size() >= rank)
    return v;
  size_t pad = rank - v.shape.size();
  Val result = v;
  result.shape.insert(result.shape.begin(), pad, Dim{1, ""});
  // The new leading dimensions join the first original one.
  llvm::SmallVector<mlir::ReassociationIndices> reassociation;
  mlir::ReassociationIndices first;
  for (size_t i = 0; i <= pad; ++i)
    first.push_back(static_cast<int64_t>(i));
  reassociation.push_back(first);
  for (size_t i = 1; i < v.shape.size(); ++i)
    reassociation.push_back({static_cast<int64_t>(i + pad)});
  result.value = mlir::tensor::ExpandShapeOp::create(
      e.builder, l, toTensorType(v.dtype, result.shape, e.builder.getContext()), v.value, reassociation);
  return result;
}

Val Elaborator::broadcastBinary(BinaryFn fn, Val lhs, Val rhs, SMLoc at) {
  if (lhs.isPoison() || rhs.isPoison())
    return Val::poison();
  for (const Val *v : {&lhs, &rhs}) {
    if (v->kind == Val::Kind::Routed) {
      error(at, "a routed value cannot be used in arithmetic; apply the experts and "
                "'combine' it first");
      return Val::poison();
    }
    if (!v->isTensor() && !v->isNumber()) {
      error(at,
            "elementwise '" + moe::stringifyBinaryFn(fn).str() + "' expects tensors or numbers, got " + describe(*v));
      return Val::poison();
    }
    if (v->isTensor() && v->dtype == ElemType::I32) {
      error(at, "index tensors (from topk or group_topk) cannot be used in arithmetic; pass "
                "them to gather, dispatch or load_balance_loss");
      return Val::poison();
    }
  }
  if (lhs.isNumber() && rhs.isNumber()) {
    if (fn == BinaryFn::max || fn == BinaryFn::min) {
      double x = lhs.asDouble(), y = rhs.asDouble();
      bool takeLhs = fn == BinaryFn::max ? x >= y : x <= y;
      return takeLhs ? lhs : rhs;
    }
    TokenKind op = fn == BinaryFn::add   ? TokenKind::Plus
                   : fn == BinaryFn::sub ? TokenKind::Minus
                   : fn == BinaryFn::mul ? TokenKind::Star
                   : fn == BinaryFn::div ? TokenKind::Slash
                                         : TokenKind::Caret;
    return foldArithmetic(op, lhs, rhs, [&](const std::string &m) { error(at, m); });
  }
  // Numbers are weakly typed: they take the tensor's element type.
  if (lhs.isNumber())
    lhs = scalarTensor(lhs.asDouble(), rhs.dtype, at);
  if (rhs.isNumber())
    rhs = scalarTensor(rhs.asDouble(), lhs.dtype, at);
  std::optional<Shape> shape = broadcastShapes(lhs.shape, rhs.shape, at);
  if (!shape)
    return Val::poison();
  ElemType type = promote(lhs.dtype, rhs.dtype);
  lhs = convert(lhs, type, at);
  rhs = convert(rhs, type, at);
  mlir::Location l = loc(at);
  lhs = padRank(*this, lhs, shape->size(), l);
  rhs = padRank(*this, rhs, shape->size(), l);
  mlir::Value v = moe::BinaryOp::create(builder, l, fn, lhs.value, rhs.value);
  return Val::tensor(v, type, *shape);
}

std::optional<double> Elaborator::foldScalarFunction(llvm::StringRef name, double x) {
  if (name == "sigmoid")
    return 1.0 / (1.0 + std::exp(-x));
  if (name == "silu")
    return x / (1.0 + std::exp(-x));
  if (name == "gelu")
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  if (name == "relu")
    return x > 0 ? x : 0.0;
  if (name == "exp")
    return std::exp(x);
  if (name == "log")
    return std::log(x);
  if (name == "sqrt")
    return std::sqrt(x);
  if (name == "tanh")
    return std::tanh(x);
  if (name == "abs")
    return std::fabs(x);
  return std::nullopt;
}

Val Elaborator::applyUnary(UnaryFn fn, Val operand, SMLoc at) {
  if (operand.isPoison())
    return operand;
  if (operand.isNumber()) {
    if (fn == UnaryFn::neg)
      return evalUnaryOp(TokenKind::Minus, operand, at);
    std::optional<double> r = foldScalarFunction(moe::stringifyUnaryFn(fn), operand.asDouble());
    if (!r || !std::isfinite(*r)) {
      error(at, moe::stringifyUnaryFn(fn) + "(" + formatNumber(operand.asDouble()) + ") is not a finite number");
      return Val::poison();
    }
    return Val::real(*r);
  }
  if (!expectFloatTensor(operand, at, "the operand of '" + moe::stringifyUnaryFn(fn).str() + "'", -1))
    return Val::poison();
  // Routing scores are computed and kept in f32 (the spec's numerics).
  if (fn == UnaryFn::sigmoid)
    operand = convert(operand, ElemType::F32, at);
  mlir::Value v = moe::UnaryOp::create(builder, loc(at), operand.value.getType(), fn, operand.value);
  return Val::tensor(v, operand.dtype, operand.shape);
}

Val Elaborator::matmul(Val lhs, Val rhs, SMLoc at) {
  if (!expectFloatTensor(lhs, at, "the left operand of '*'", 2) ||
      !expectFloatTensor(rhs, at, "the right operand of '*'", 2))
    return Val::poison();
  if (!sameDim(lhs.shape[1], rhs.shape[0], at,
               "matrix product " + str(lhs.shape) + " * " + str(rhs.shape) + " needs the inner dimensions to agree"))
    return Val::poison();
  ElemType type = promote(lhs.dtype, rhs.dtype);
  mlir::Value v = moe::DenseOp::create(builder, loc(at), lhs.value, rhs.value, mlir::Value(), toMlir(type, &context));
  return Val::tensor(v, type, {lhs.shape[0], rhs.shape[1]});
}

//===----------------------------------------------------------------------===//
// Checks shared by the builtins
//===----------------------------------------------------------------------===//

bool Elaborator::expectFloatTensor(const Val &v, SMLoc at, llvm::StringRef what, int64_t rank) {
  if (v.isPoison())
    return false;
  std::string want = rank < 0 ? "a float tensor" : "a " + std::to_string(rank) + "-d float tensor";
  if (!v.isTensor()) {
    error(at, what + " must be " + want + ", got " + describe(v) +
                  (v.kind == Val::Kind::Routed ? "; combine it first" : ""));
    return false;
  }
  if (!isFloat(v.dtype)) {
    error(at, what + " must be " + want + ", got an index tensor " + str(v.shape));
    return false;
  }
  if (rank >= 0 && v.rank() != rank) {
    error(at, what + " must be " + want + ", got " + describe(v));
    return false;
  }
  return true;
}

bool Elaborator::expectIndexTensor(const Val &v, SMLoc at, llvm::StringRef what) {
  if (v.isPoison())
    return false;
  if (!v.isTensor() || v.dtype != ElemType::I32 || v.rank() != 2 || v.indexRange <= 0) {
    error(at, what + " must be expert indices [tokens, k] from topk or group_topk, got " + describe(v));
    return false;
  }
  return true;
}

std::optional<int64_t> Elaborator::expectInt(const Val &v, SMLoc at, llvm::StringRef what) {
  if (v.isPoison())
    return std::nullopt;
  if (v.kind != Val::Kind::Int) {
    error(at, what + " must be a compile-time integer, got " + describe(v));
    return std::nullopt;
  }
  return v.i;
}

std::optional<double> Elaborator::expectNumber(const Val &v, SMLoc at, llvm::StringRef what) {
  if (v.isPoison())
    return std::nullopt;
  if (!v.isNumber()) {
    error(at, what + " must be a compile-time number, got " + describe(v));
    return std::nullopt;
  }
  return v.asDouble();
}

std::optional<int64_t> Elaborator::expectDims(const Keyword &kw, int64_t rank) {
  std::optional<int64_t> d = expectInt(kw.value, kw.loc, "'dims'");
  if (!d)
    return std::nullopt;
  if (*d < 1 || *d > rank) {
    error(kw.loc, "dims = " + std::to_string(*d) + " is out of range for a " + std::to_string(rank) +
                      "-d tensor (dimensions are 1-based: 1 to " + std::to_string(rank) + ")");
    return std::nullopt;
  }
  return *d - 1;
}
