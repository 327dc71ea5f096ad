//===- GradientsToLinalg.cpp - the elementwise backward as linalg -*- C++ -*-===//
//
// The cotangents of moe.unary, moe.binary, moe.reduce and moe.softmax as
// linalg.generic on tensors, in f32, rounded once to the cotangent's type
// (part of convert-moe-to-linalg, so that every backend that lowers the
// forward's elementwise ops lowers these). Sums run as sequential loops: the
// same order, the same bits, every time.
//
//===----------------------------------------------------------------------===//
#include "LinalgBuilders.h"

#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace moe;
using namespace moe::linalg_builders;

namespace {

Value select(OpBuilder &b, Location loc, arith::CmpFPredicate p, Value x, Value y, Value ifTrue, Value ifFalse) {
  Value c = arith::CmpFOp::create(b, loc, p, x, y);
  return arith::SelectOp::create(b, loc, c, ifTrue, ifFalse);
}

Value sigmoidOf(OpBuilder &b, Location loc, Value x) {
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, constF32(b, loc, 1.0), arith::AddFOp::create(b, loc, constF32(b, loc, 1.0), e));
}

/// f'(x), the reference evaluator's rule (Vjp.cpp) in f32.
Value unaryDerivative(OpBuilder &b, Location loc, UnaryFn fn, Value x) {
  Value one = constF32(b, loc, 1.0), zero = constF32(b, loc, 0.0);
  auto mul = [&](Value l, Value r) { return Value(arith::MulFOp::create(b, loc, l, r)); };
  auto sub = [&](Value l, Value r) { return Value(arith::SubFOp::create(b, loc, l, r)); };
  switch (fn) {
  case UnaryFn::neg:
    return constF32(b, loc, -1.0);
  case UnaryFn::exp:
    return math::ExpOp::create(b, loc, x);
  case UnaryFn::log:
    return arith::DivFOp::create(b, loc, one, x);
  case UnaryFn::sqrt:
    return arith::DivFOp::create(b, loc, constF32(b, loc, 0.5), math::SqrtOp::create(b, loc, x));
  case UnaryFn::tanh: {
    Value t = math::TanhOp::create(b, loc, x);
    return sub(one, mul(t, t));
  }
  case UnaryFn::abs:
    return select(b, loc, arith::CmpFPredicate::OGT, x, zero, one,
                  select(b, loc, arith::CmpFPredicate::OLT, x, zero, constF32(b, loc, -1.0), zero));
  case UnaryFn::sigmoid: {
    Value s = sigmoidOf(b, loc, x);
    return mul(s, sub(one, s));
  }
  case UnaryFn::silu: {
    Value s = sigmoidOf(b, loc, x);
    return arith::AddFOp::create(b, loc, s, mul(x, mul(s, sub(one, s))));
  }
  case UnaryFn::relu:
    return select(b, loc, arith::CmpFPredicate::OGT, x, zero, one, zero);
  case UnaryFn::gelu: {
    // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), t = tanh(c (x + a x^3)).
    Value c = constF32(b, loc, 0.7978845608028654), a = constF32(b, loc, 0.044715), half = constF32(b, loc, 0.5);
    Value x2 = mul(x, x);
    Value t = math::TanhOp::create(b, loc, mul(c, arith::AddFOp::create(b, loc, x, mul(a, mul(x2, x)))));
    Value inner = arith::AddFOp::create(b, loc, one, mul(constF32(b, loc, 3.0), mul(a, x2)));
    Value right = mul(mul(half, x), mul(sub(one, mul(t, t)), mul(c, inner)));
    return arith::AddFOp::create(b, loc, mul(half, arith::AddFOp::create(b, loc, one, t)), right);
  }
  }
  return one;
}

/// d f(a, b) / da (`lhs`) or / db.
Value binaryPartial(OpBuilder &b, Location loc, BinaryFn fn, Value l, Value r, bool lhs) {
  Value one = constF32(b, loc, 1.0), zero = constF32(b, loc, 0.0);
  switch (fn) {
  case BinaryFn::add:
    return one;
  case BinaryFn::sub:
    return lhs ? one : constF32(b, loc, -1.0);
  case BinaryFn::mul:
    return lhs ? r : l;
  case BinaryFn::div:
    if (lhs)
      return arith::DivFOp::create(b, loc, one, r);
    return arith::NegFOp::create(b, loc, arith::DivFOp::create(b, loc, l, arith::MulFOp::create(b, loc, r, r)));
  case BinaryFn::pow:
    if (lhs)
      return arith::MulFOp::create(b, loc, r, math::PowFOp::create(b, loc, l, arith::SubFOp::create(b, loc, r, one)));
    return select(b, loc, arith::CmpFPredicate::OGT, l, zero,
                  arith::MulFOp::create(b, loc, math::PowFOp::create(b, loc, l, r), math::LogOp::create(b, loc, l)),
                  zero);
  case BinaryFn::max: // a tie goes to the left operand, as the forward keeps it
    return select(b, loc, arith::CmpFPredicate::OGE, l, r, lhs ? one : zero, lhs ? zero : one);
  case BinaryFn::min:
    return select(b, loc, arith::CmpFPredicate::OLE, l, r, lhs ? one : zero, lhs ? zero : one);
  }
  return zero;
}

/// `v` (f32) as a tensor of `element`.
Value roundTensor(OpBuilder &b, Location loc, Value v, Type element) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getElementType() == element)
    return v;
  auto to = RankedTensorType::get(type.getShape(), element);
  AffineMap identity = AffineMap::getMultiDimIdentityMap(type.getRank(), b.getContext());
  return generic(b, loc, {v}, emptyTensor(b, loc, to, {v}), {identity, identity}, iterators(type.getRank()),
                 [](OpBuilder &, Location, ValueRange a) { return a[0]; });
}

Value lowerToLinalg(OpBuilder &b, UnaryGradOp g) {
  Location loc = g.getLoc();
  auto type = g.getResult().getType();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(type.getRank(), b.getContext());
  UnaryFn fn = g.getFn();
  return generic(b, loc, {g.getInput(), g.getGrad()}, emptyTensor(b, loc, type, {g.getInput()}),
                 {identity, identity, identity}, iterators(type.getRank()),
                 [&](OpBuilder &nb, Location nl, ValueRange a) {
                   return arith::MulFOp::create(nb, nl, a[1], unaryDerivative(nb, nl, fn, a[0]));
                 });
}

/// One operand's cotangent of a broadcasting binary: dy times the partial,
/// summed over the dimensions the operand was stretched along.
Value operandGrad(OpBuilder &b, BinaryGradOp g, bool lhs) {
  Location loc = g.getLoc();
  MLIRContext *ctx = b.getContext();
  Value operand = lhs ? g.getLhs() : g.getRhs();
  auto type = cast<RankedTensorType>(operand.getType());
  auto gradType = cast<RankedTensorType>(g.getGrad().getType());
  int64_t rank = gradType.getRank();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(rank, ctx);
  SmallVector<AffineMap> maps{broadcastMap(ctx, cast<RankedTensorType>(g.getLhs().getType()), gradType),
                              broadcastMap(ctx, cast<RankedTensorType>(g.getRhs().getType()), gradType), identity,
                              broadcastMap(ctx, type, gradType)};
  SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
  for (int64_t d = 0; d < rank; ++d)
    if (type.getRank() == 0 || (type.getDimSize(d) == 1 && gradType.getDimSize(d) != 1))
      its[d] = utils::IteratorType::reduction;
  BinaryFn fn = g.getFn();
  bool reduces = llvm::is_contained(its, utils::IteratorType::reduction);
  if (!reduces) // elementwise: the init is not read (a shared zero fill must not be)
    return generic(b, loc, {g.getLhs(), g.getRhs(), g.getGrad()}, emptyTensor(b, loc, type, {operand, g.getGrad()}),
                   maps, its, [&](OpBuilder &nb, Location nl, ValueRange a) {
                     return arith::MulFOp::create(nb, nl, a[2], binaryPartial(nb, nl, fn, a[0], a[1], lhs));
                   });
  auto f32Type = RankedTensorType::get(type.getShape(), b.getF32Type());
  Value init = emptyTensor(b, loc, f32Type, {operand});
  init = linalg::FillOp::create(b, loc, constF32(b, loc, 0.0), init).getResult(0);
  Value sum = generic(b, loc, {g.getLhs(), g.getRhs(), g.getGrad()}, init, maps, its,
                      [&](OpBuilder &nb, Location nl, ValueRange a) {
                        Value term = arith::MulFOp::create(nb, nl, a[2], binaryPartial(nb, nl, fn, a[0], a[1], lhs));
                        return arith::AddFOp::create(nb, nl, a[3], term);
                      });
  return roundTensor(b, loc, sum, type.getElementType());
}

SmallVector<Value> lowerToLinalg(OpBuilder &b, BinaryGradOp g) {
  return {operandGrad(b, g, true), operandGrad(b, g, false)};
}

/// sum over `dim` of a (.* c) into an f32 tensor keeping `dim` (size 1).
Value sumAlong(OpBuilder &b, Location loc, Value a, Value c, int64_t dim) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(a.getType());
  Value init = reductionInit(b, loc, a, dim, 0.0);
  AffineMap identity = AffineMap::getMultiDimIdentityMap(type.getRank(), ctx);
  SmallVector<Value> inputs{a};
  SmallVector<AffineMap> maps{identity};
  if (c) {
    inputs.push_back(c);
    maps.push_back(identity);
  }
  maps.push_back(broadcastMap(ctx, cast<RankedTensorType>(init.getType()), type, dim));
  return generic(b, loc, inputs, init, maps, iterators(type.getRank(), dim),
                 [&](OpBuilder &nb, Location nl, ValueRange v) {
                   Value term = c ? Value(arith::MulFOp::create(nb, nl, v[0], v[1])) : v[0];
                   return arith::AddFOp::create(nb, nl, v.back(), term);
                 });
}

Value lowerToLinalg(OpBuilder &b, ReduceGradOp g) {
  Location loc = g.getLoc();
  MLIRContext *ctx = b.getContext();
  Value x = g.getInput();
  auto type = cast<RankedTensorType>(x.getType());
  auto gradType = cast<RankedTensorType>(g.getGrad().getType());
  int64_t dim = static_cast<int64_t>(g.getDim()), rank = type.getRank();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(rank, ctx);
  AffineMap reduced = broadcastMap(ctx, gradType, type, dim);
  Value init = emptyTensor(b, loc, type, {x});
  if (g.getFn() != ReduceFn::max) {
    Value count = g.getFn() == ReduceFn::mean ? dimAsF32(b, loc, x, dim) : Value();
    return generic(b, loc, {g.getGrad()}, init, {reduced, identity}, iterators(rank),
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     return count ? Value(arith::DivFOp::create(nb, nl, a[0], count)) : a[0];
                   });
  }
  // max: the cotangent goes to the first maximum (the forward keeps it).
  Value m = reduceAlong(b, loc, x, dim, /*isMax=*/true, {}, [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  Value firstInit = reductionInit(b, loc, x, dim, INFINITY);
  auto position = [dim](OpBuilder &nb, Location nl) {
    Value i = linalg::IndexOp::create(nb, nl, dim);
    Value i64 = arith::IndexCastOp::create(nb, nl, nb.getI64Type(), i);
    return Value(arith::SIToFPOp::create(nb, nl, nb.getF32Type(), i64));
  };
  AffineMap accMap = broadcastMap(ctx, cast<RankedTensorType>(m.getType()), type, dim);
  Value first = generic(b, loc, {x, m}, firstInit, {identity, accMap, accMap}, iterators(rank, dim),
                        [&](OpBuilder &nb, Location nl, ValueRange a) {
                          Value at = select(nb, nl, arith::CmpFPredicate::OEQ, a[0], a[1], position(nb, nl),
                                            constF32(nb, nl, INFINITY));
                          return arith::MinimumFOp::create(nb, nl, a[2], at);
                        });
  return generic(b, loc, {g.getGrad(), first}, init, {reduced, accMap, identity}, iterators(rank),
                 [&](OpBuilder &nb, Location nl, ValueRange a) {
                   return select(nb, nl, arith::CmpFPredicate::OEQ, position(nb, nl), a[1], a[0],
                                 constF32(nb, nl, 0.0));
                 });
}

Value lowerToLinalg(OpBuilder &b, SoftmaxGradOp g) {
  Location loc = g.getLoc();
  MLIRContext *ctx = b.getContext();
  Value y = g.getOutput(), dy = g.getGrad();
  auto type = cast<RankedTensorType>(y.getType());
  int64_t dim = static_cast<int64_t>(g.getDim());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(type.getRank(), ctx);
  bool log = g.getLog();
  // softmax: y .* (dy .- sum(dy .* y)); log-softmax: dy .- exp(y) .* sum(dy).
  Value s = log ? sumAlong(b, loc, dy, Value(), dim) : sumAlong(b, loc, dy, y, dim);
  AffineMap reduced = broadcastMap(ctx, cast<RankedTensorType>(s.getType()), type, dim);
  return generic(b, loc, {y, dy, s}, emptyTensor(b, loc, type, {y}), {identity, identity, reduced, identity},
                 iterators(type.getRank()), [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                   if (log)
                     return arith::SubFOp::create(
                         nb, nl, a[1], arith::MulFOp::create(nb, nl, math::ExpOp::create(nb, nl, a[0]), a[2]));
                   return arith::MulFOp::create(nb, nl, a[0], arith::SubFOp::create(nb, nl, a[1], a[2]));
                 });
}

template <typename Op> struct GradToLinalg : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  LogicalResult matchAndRewrite(Op op, typename Op::Adaptor, ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, lowerToLinalg(rewriter, op));
    return success();
  }
};

} // namespace

void moe::populateMoEGradientsToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<GradToLinalg<UnaryGradOp>, GradToLinalg<BinaryGradOp>, GradToLinalg<ReduceGradOp>,
               GradToLinalg<SoftmaxGradOp>>(patterns.getContext());
}
