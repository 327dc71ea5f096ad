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

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

#define DEBUG_TYPE "convert-moe-to-linalg"

namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;

namespace {

Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

Value fromF32(OpBuilder &b, Location loc, Value v, Type target) {
  if (target.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, target, v);
}

Value constF32(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(static_cast<float>(v)));
}

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

/// An empty tensor of `type`; each dynamic size is read from the first of
/// `sources` that is dynamic in that dimension (same rank).
Value emptyTensor(OpBuilder &b, Location loc, RankedTensorType type, ValueRange sources) {
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (!type.isDynamicDim(d))
      continue;
    for (Value s : sources) {
      auto st = cast<RankedTensorType>(s.getType());
      if (st.getRank() == type.getRank() && st.isDynamicDim(d)) {
        sizes.push_back(tensor::DimOp::create(b, loc, s, d));
        break;
      }
    }
  }
  return tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType(), sizes);
}

/// The indexing map of `operand` read at every point of a `resultType`
/// iteration: rank-0 operands read their one element, size-1 dimensions that
/// stretch read index 0 (Julia broadcasting), `reduced` dimensions read 0.
AffineMap broadcastMap(MLIRContext *ctx, RankedTensorType operand, RankedTensorType result, int64_t reduced = -1) {
  if (operand.getRank() == 0)
    return AffineMap::get(result.getRank(), 0, {}, ctx);
  SmallVector<AffineExpr> exprs;
  for (int64_t d = 0; d < operand.getRank(); ++d) {
    bool stretched = operand.getDimSize(d) == 1 && result.getDimSize(d) != 1;
    exprs.push_back(stretched || d == reduced ? getAffineConstantExpr(0, ctx) : getAffineDimExpr(d, ctx));
  }
  return AffineMap::get(result.getRank(), 0, exprs, ctx);
}

SmallVector<utils::IteratorType> iterators(int64_t rank, int64_t reduced = -1) {
  SmallVector<utils::IteratorType> it(rank, utils::IteratorType::parallel);
  if (reduced >= 0)
    it[reduced] = utils::IteratorType::reduction;
  return it;
}

using BodyFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// linalg.generic over the shape of `iterationType`: `body` gets the f32
/// values of the inputs (and, last, the output's current value) and returns
/// the f32 value to store, which is rounded to the output's element type.
Value generic(OpBuilder &b, Location loc, ValueRange inputs, Value init, ArrayRef<AffineMap> maps,
              ArrayRef<utils::IteratorType> its, BodyFn body) {
  Type outElt = cast<RankedTensorType>(init.getType()).getElementType();
  auto op = linalg::GenericOp::create(b, loc, init.getType(), inputs, ValueRange{init}, maps, its,
                                      [&](OpBuilder &nb, Location nl, ValueRange args) {
                                        SmallVector<Value> f32Args;
                                        for (Value a : args)
                                          f32Args.push_back(toF32(nb, nl, a));
                                        linalg::YieldOp::create(nb, nl, fromF32(nb, nl, body(nb, nl, f32Args), outElt));
                                      });
  return op.getResult(0);
}

/// An f32 tensor shaped like `like` with dimension `dim` of size 1, filled with `init`.
Value reductionInit(OpBuilder &b, Location loc, Value like, int64_t dim, double init) {
  auto type = cast<RankedTensorType>(like.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = 1;
  auto accType = RankedTensorType::get(shape, b.getF32Type());
  Value empty = emptyTensor(b, loc, accType, {like});
  return linalg::FillOp::create(b, loc, constF32(b, loc, init), empty).getResult(0);
}

/// sum/max over `dim` of `f(x)` into an f32 tensor keeping `dim` (size 1).
/// `extra` are further inputs read with the reduced map (e.g. a row max).
Value reduceAlong(OpBuilder &b, Location loc, Value x, int64_t dim, bool isMax, ValueRange extra,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> element) {
  MLIRContext *ctx = b.getContext();
  auto xType = cast<RankedTensorType>(x.getType());
  Value init = reductionInit(b, loc, x, dim, isMax ? -INFINITY : 0.0);
  SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(xType.getRank(), ctx)};
  SmallVector<Value> inputs{x};
  for (Value e : extra) {
    inputs.push_back(e);
    maps.push_back(broadcastMap(ctx, cast<RankedTensorType>(e.getType()), xType, dim));
  }
  maps.push_back(broadcastMap(ctx, cast<RankedTensorType>(init.getType()), xType, dim));
  return generic(b, loc, inputs, init, maps, iterators(xType.getRank(), dim),
                 [&](OpBuilder &nb, Location nl, ValueRange a) {
                   Value v = element(nb, nl, a.drop_back());
                   return isMax ? Value(arith::MaximumFOp::create(nb, nl, a.back(), v))
                                : Value(arith::AddFOp::create(nb, nl, a.back(), v));
                 });
}

/// The size of dimension `dim` of `v` as an f32 scalar.
Value dimAsF32(OpBuilder &b, Location loc, Value v, int64_t dim) {
  Value size = tensor::DimOp::create(b, loc, v, dim);
  Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), size);
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i64);
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
