//===- LinalgBuilders.h - linalg.generic helpers of the moe lowerings -*- C++ -*-===//
//
// What convert-moe-to-linalg's patterns (the forward's in
// ConvertMoEToLinalg.cpp, the backward's in GradientsToLinalg.cpp) build
// their linalg.generic ops with: f32 bodies, broadcasting indexing maps and
// reductions along one dimension.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_MOETOLINALG_LINALGBUILDERS_H
#define MOE_CONVERSION_MOETOLINALG_LINALGBUILDERS_H

#include "moe/Support/MLIR.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"

#include <cmath>

namespace moe::linalg_builders {

using ::mlir::function_ref;

inline Value toF32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}

inline Value fromF32(OpBuilder &b, Location loc, Value v, Type target) {
  if (target.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, target, v);
}

inline Value constF32(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(static_cast<float>(v)));
}

/// An empty tensor of `type`; each dynamic size is read from the first of
/// `sources` that is dynamic in that dimension (same rank).
inline Value emptyTensor(OpBuilder &b, Location loc, RankedTensorType type, ValueRange sources) {
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
inline AffineMap broadcastMap(MLIRContext *ctx, RankedTensorType operand, RankedTensorType result,
                              int64_t reduced = -1) {
  if (operand.getRank() == 0)
    return AffineMap::get(result.getRank(), 0, {}, ctx);
  SmallVector<AffineExpr> exprs;
  for (int64_t d = 0; d < operand.getRank(); ++d) {
    bool stretched = operand.getDimSize(d) == 1 && result.getDimSize(d) != 1;
    exprs.push_back(stretched || d == reduced ? getAffineConstantExpr(0, ctx) : getAffineDimExpr(d, ctx));
  }
  return AffineMap::get(result.getRank(), 0, exprs, ctx);
}

inline SmallVector<utils::IteratorType> iterators(int64_t rank, int64_t reduced = -1) {
  SmallVector<utils::IteratorType> it(rank, utils::IteratorType::parallel);
  if (reduced >= 0)
    it[reduced] = utils::IteratorType::reduction;
  return it;
}

using BodyFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// linalg.generic over the shape of `iterationType`: `body` gets the f32
/// values of the inputs (and, last, the output's current value) and returns
/// the f32 value to store, which is rounded to the output's element type.
inline Value generic(OpBuilder &b, Location loc, ValueRange inputs, Value init, ArrayRef<AffineMap> maps,
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
inline Value reductionInit(OpBuilder &b, Location loc, Value like, int64_t dim, double init) {
  auto type = cast<RankedTensorType>(like.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = 1;
  auto accType = RankedTensorType::get(shape, b.getF32Type());
  Value empty = emptyTensor(b, loc, accType, {like});
  return linalg::FillOp::create(b, loc, constF32(b, loc, init), empty).getResult(0);
}

/// sum/max over `dim` of `f(x)` into an f32 tensor keeping `dim` (size 1).
/// `extra` are further inputs read with the reduced map (e.g. a row max).
inline Value reduceAlong(OpBuilder &b, Location loc, Value x, int64_t dim, bool isMax, ValueRange extra,
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
inline Value dimAsF32(OpBuilder &b, Location loc, Value v, int64_t dim) {
  Value size = tensor::DimOp::create(b, loc, v, dim);
  Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), size);
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i64);
}

} // namespace moe::linalg_builders

#endif // MOE_CONVERSION_MOETOLINALG_LINALGBUILDERS_H
