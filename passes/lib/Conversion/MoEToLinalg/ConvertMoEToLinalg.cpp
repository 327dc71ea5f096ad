//===- ConvertMoEToLinalg.cpp - convert-moe-to-linalg -----------*- C++ -*-===//
//
// Elementwise ops, reductions, softmax and rmsnorm become linalg.generic on
// tensors, a conversion pattern per op (populateMoEToLinalgPatterns). Scalars are computed in f32 and rounded once to
// the storage type.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Conversion/Patterns.h"
#include "moe/Support/MLIR.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "LinalgBuilders.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

#define DEBUG_TYPE "convert-moe-to-linalg"

namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;
using namespace moe::linalg_builders;

namespace {

/// The f32 value of `fn` applied to `x` (an f32 scalar).
Value unaryBody(OpBuilder &b, Location loc, UnaryFn fn, Value x) {
  auto sigmoid = [&](Value v) {
    Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, v));
    return arith::DivFOp::create(b, loc, constF32(b, loc, 1.0),
                                 arith::AddFOp::create(b, loc, constF32(b, loc, 1.0), e));
  };
  switch (fn) {
  case UnaryFn::neg:
    return arith::NegFOp::create(b, loc, x);
  case UnaryFn::exp:
    return math::ExpOp::create(b, loc, x);
  case UnaryFn::log:
    return math::LogOp::create(b, loc, x);
  case UnaryFn::sqrt:
    return math::SqrtOp::create(b, loc, x);
  case UnaryFn::tanh:
    return math::TanhOp::create(b, loc, x);
  case UnaryFn::abs:
    return math::AbsFOp::create(b, loc, x);
  case UnaryFn::sigmoid:
    return sigmoid(x);
  case UnaryFn::silu:
    return arith::MulFOp::create(b, loc, x, sigmoid(x));
  case UnaryFn::relu:
    return arith::MaximumFOp::create(b, loc, x, constF32(b, loc, 0.0));
  case UnaryFn::gelu: {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), NNlib's approximation.
    Value x3 = arith::MulFOp::create(b, loc, x, arith::MulFOp::create(b, loc, x, x));
    Value inner = arith::AddFOp::create(b, loc, x, arith::MulFOp::create(b, loc, constF32(b, loc, 0.044715), x3));
    Value t = math::TanhOp::create(b, loc, arith::MulFOp::create(b, loc, constF32(b, loc, 0.7978845608028654), inner));
    Value half = arith::MulFOp::create(b, loc, constF32(b, loc, 0.5), x);
    return arith::MulFOp::create(b, loc, half, arith::AddFOp::create(b, loc, constF32(b, loc, 1.0), t));
  }
  }
  return x;
}

Value binaryBody(OpBuilder &b, Location loc, BinaryFn fn, Value x, Value y) {
  switch (fn) {
  case BinaryFn::add:
    return arith::AddFOp::create(b, loc, x, y);
  case BinaryFn::sub:
    return arith::SubFOp::create(b, loc, x, y);
  case BinaryFn::mul:
    return arith::MulFOp::create(b, loc, x, y);
  case BinaryFn::div:
    return arith::DivFOp::create(b, loc, x, y);
  case BinaryFn::pow:
    return math::PowFOp::create(b, loc, x, y);
  case BinaryFn::max:
    return arith::MaximumFOp::create(b, loc, x, y);
  case BinaryFn::min:
    return arith::MinimumFOp::create(b, loc, x, y);
  }
  return x;
}

/// `unary` as linalg.generic.
Value lowerToLinalg(OpBuilder &b, UnaryOp u) {
  Location loc = u.getLoc();
  MLIRContext *ctx = b.getContext();
  auto resultType = cast<RankedTensorType>(u.getResult().getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(resultType.getRank(), ctx);
  Value init = emptyTensor(b, loc, resultType, {u.getInput()});
  return generic(b, loc, {u.getInput()}, init, {identity, identity}, iterators(resultType.getRank()),
                 [&](OpBuilder &nb, Location nl, ValueRange a) { return unaryBody(nb, nl, u.getFn(), a[0]); });
}

/// `binary` as linalg.generic.
Value lowerToLinalg(OpBuilder &b, BinaryOp bin) {
  Location loc = bin.getLoc();
  MLIRContext *ctx = b.getContext();
  auto resultType = cast<RankedTensorType>(bin.getResult().getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(resultType.getRank(), ctx);
  Value init = emptyTensor(b, loc, resultType, {bin.getLhs(), bin.getRhs()});
  SmallVector<AffineMap> maps{broadcastMap(ctx, cast<RankedTensorType>(bin.getLhs().getType()), resultType),
                              broadcastMap(ctx, cast<RankedTensorType>(bin.getRhs().getType()), resultType), identity};
  return generic(b, loc, {bin.getLhs(), bin.getRhs()}, init, maps, iterators(resultType.getRank()),
                 [&](OpBuilder &nb, Location nl, ValueRange a) { return binaryBody(nb, nl, bin.getFn(), a[0], a[1]); });
}

/// `reduce` as linalg.generic.
Value lowerToLinalg(OpBuilder &b, ReduceOp r) {
  Location loc = r.getLoc();
  MLIRContext *ctx = b.getContext();
  auto resultType = cast<RankedTensorType>(r.getResult().getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(resultType.getRank(), ctx);
  int64_t dim = static_cast<int64_t>(r.getDim());
  bool isMax = r.getFn() == ReduceFn::max;
  Value acc =
      reduceAlong(b, loc, r.getInput(), dim, isMax, {}, [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  Value count = r.getFn() == ReduceFn::mean ? dimAsF32(b, loc, r.getInput(), dim) : Value();
  Value init = emptyTensor(b, loc, resultType, {acc});
  return generic(b, loc, {acc}, init, {identity, identity}, iterators(resultType.getRank()),
                 [&](OpBuilder &nb, Location nl, ValueRange a) {
                   return count ? Value(arith::DivFOp::create(nb, nl, a[0], count)) : a[0];
                 });
}

/// `softmax` as linalg.generic.
Value lowerToLinalg(OpBuilder &b, SoftmaxOp s) {
  Location loc = s.getLoc();
  MLIRContext *ctx = b.getContext();
  auto resultType = cast<RankedTensorType>(s.getResult().getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(resultType.getRank(), ctx);
  // Max-subtracted: m = max(x), z = sum(exp(x - m)), exp(x - m) / z (or x - m - log z).
  int64_t dim = static_cast<int64_t>(s.getDim());
  Value x = s.getInput();
  Value m = reduceAlong(b, loc, x, dim, /*isMax=*/true, {}, [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  Value z = reduceAlong(b, loc, x, dim, /*isMax=*/false, {m}, [](OpBuilder &nb, Location nl, ValueRange a) {
    return math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
  });
  auto xType = cast<RankedTensorType>(x.getType());
  Value init = emptyTensor(b, loc, resultType, {x});
  SmallVector<AffineMap> maps{identity, broadcastMap(ctx, cast<RankedTensorType>(m.getType()), xType, dim),
                              broadcastMap(ctx, cast<RankedTensorType>(z.getType()), xType, dim), identity};
  bool log = s.getLog();
  return generic(b, loc, {x, m, z}, init, maps, iterators(resultType.getRank()),
                 [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                   Value shifted = arith::SubFOp::create(nb, nl, a[0], a[1]);
                   if (log)
                     return arith::SubFOp::create(nb, nl, shifted, math::LogOp::create(nb, nl, a[2]));
                   return arith::DivFOp::create(nb, nl, math::ExpOp::create(nb, nl, shifted), a[2]);
                 });
}

/// `rmsnorm` as linalg.generic.
Value lowerToLinalg(OpBuilder &b, RMSNormOp n) {
  Location loc = n.getLoc();
  MLIRContext *ctx = b.getContext();
  auto resultType = cast<RankedTensorType>(n.getResult().getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(resultType.getRank(), ctx);
  // x / sqrt(mean(x.^2) + eps) .* w over the last dimension.
  Value x = n.getInput();
  Value ss = reduceAlong(b, loc, x, 1, /*isMax=*/false, {}, [](OpBuilder &nb, Location nl, ValueRange a) {
    return arith::MulFOp::create(nb, nl, a[0], a[0]);
  });
  Value cols = dimAsF32(b, loc, x, 1);
  Value eps = constF32(b, loc, n.getEps().convertToDouble());
  auto xType = cast<RankedTensorType>(x.getType());
  Value init = emptyTensor(b, loc, resultType, {x});
  SmallVector<AffineMap> maps{identity, broadcastMap(ctx, cast<RankedTensorType>(ss.getType()), xType, 1),
                              AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx), identity};
  return generic(b, loc, {x, ss, n.getWeight()}, init, maps, iterators(2),
                 [&](OpBuilder &nb, Location nl, ValueRange a) {
                   Value meanSquare = arith::DivFOp::create(nb, nl, a[1], cols);
                   Value scale = math::RsqrtOp::create(nb, nl, arith::AddFOp::create(nb, nl, meanSquare, eps));
                   return arith::MulFOp::create(nb, nl, arith::MulFOp::create(nb, nl, a[0], scale), a[2]);
                 });
}

/// An op of the family as the linalg it becomes.
template <typename Op> struct ToLinalg : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  LogicalResult matchAndRewrite(Op op, typename Op::Adaptor, ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, lowerToLinalg(rewriter, op));
    return success();
  }
};

struct ConvertMoEToLinalg : moe::impl::ConvertMoEToLinalgBase<ConvertMoEToLinalg> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMoEToLinalgPatterns(patterns);
    populateMoEGradientsToLinalgPatterns(patterns);
    ConversionTarget target(getContext());
    addPatternRootsIllegal(target, patterns);
    if (failed(applyPartialConversion(getOperation(), target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void moe::populateMoEToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<ToLinalg<UnaryOp>, ToLinalg<BinaryOp>, ToLinalg<ReduceOp>, ToLinalg<SoftmaxOp>, ToLinalg<RMSNormOp>>(
      patterns.getContext());
}
