//===- MoEGradients.cpp - each moe op's derivative rule -------------------===//
//
// DifferentiableOpInterface for every differentiable moe op: the backward ops
// (MoEGradOps.td) its cotangents are built from. Indices carry no gradient;
// a routed value's cotangent is a routed value of the same type (the rows'
// cotangents), so the chain dispatch -> expert_ffn -> combine differentiates
// op by op, as it runs.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace moe;

#include "moe/Dialect/MoE/IR/MoEInterfaces.cpp.inc"

namespace {

/// `v` converted to the element type of `like` (a bias's f32 from a bf16 product).
Value castTo(OpBuilder &b, Location loc, Value v, Type like) {
  auto from = cast<RankedTensorType>(v.getType()), to = cast<RankedTensorType>(like);
  if (from.getElementType() == to.getElementType())
    return v;
  auto type = RankedTensorType::get(from.getShape(), to.getElementType());
  if (to.getElementType().getIntOrFloatBitWidth() > from.getElementType().getIntOrFloatBitWidth())
    return arith::ExtFOp::create(b, loc, type, v);
  return arith::TruncFOp::create(b, loc, type, v);
}

} // namespace

LogicalResult TopKOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads, SmallVectorImpl<Value> &operandGrads) {
  if (!resultGrads[0])
    return emitOpError("has a gradient only through its values");
  auto g = TopKGradOp::create(b, getLoc(), getLogits().getType(), getLogits(), getIndices(), resultGrads[0], getKAttr(),
                              getScoreAttr(), getRenormalizeAttr(), getScaleAttr());
  operandGrads.assign({g.getResult()});
  return success();
}

LogicalResult GroupTopKOp::buildGradients(OpBuilder &, ArrayRef<Value>, SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign({Value()}); // a selection: no gradient into the scores
  return success();
}

LogicalResult GatherOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  auto g = GatherGradOp::create(b, getLoc(), getInput().getType(), getIndices(), resultGrads[0]);
  operandGrads.assign({g.getResult(), Value()});
  return success();
}

LogicalResult DispatchOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                         SmallVectorImpl<Value> &operandGrads) {
  auto g = DispatchGradOp::create(b, getLoc(), getInput().getType(), resultGrads[0]);
  operandGrads.assign({g.getResult(), Value()});
  return success();
}

LogicalResult ExpertFfnOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                          SmallVectorImpl<Value> &operandGrads) {
  SmallVector<Type> weightTypes(getWeights().getTypes());
  // The kept up products, when this forward keeps them (moe-differentiate's residuals).
  auto g = ExpertFfnGradOp::create(b, getLoc(), getRouted().getType(), weightTypes, getKindAttr(), getActivationAttr(),
                                   getRouted(), getWeights(), resultGrads[0], getUp());
  operandGrads.assign({g.getRoutedGrad()});
  llvm::append_range(operandGrads, g.getWeightsGrad());
  return success();
}

LogicalResult CombineOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = CombineGradOp::create(b, getLoc(), getRouted().getType(), getWeights().getType(), getRouted(), getWeights(),
                                 resultGrads[0]);
  operandGrads.assign({g.getRoutedGrad(), g.getWeightsGrad()});
  return success();
}

LogicalResult DenseOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads, SmallVectorImpl<Value> &operandGrads) {
  Location loc = getLoc();
  Value dy = resultGrads[0];
  auto g = DenseGradOp::create(b, loc, getInput().getType(), getWeight().getType(), getInput(), getWeight(), dy);
  operandGrads.assign({g.getInputGrad(), g.getWeightGrad()});
  if (Value bias = getBias()) {
    // The column sums of dy, as the bias's [n].
    Value sums = ReduceOp::create(b, loc, ReduceFn::sum, dy, int64_t{0});
    SmallVector<ReassociationIndices> all{{0, 1}};
    Value flat = tensor::CollapseShapeOp::create(b, loc, sums, all);
    operandGrads.push_back(castTo(b, loc, flat, bias.getType()));
  }
  return success();
}

LogicalResult RMSNormOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = RMSNormGradOp::create(b, getLoc(), getInput().getType(), getWeight().getType(), getInput(), getWeight(),
                                 resultGrads[0], getEpsAttr());
  operandGrads.assign({g.getInputGrad(), g.getWeightGrad()});
  return success();
}

LogicalResult UnaryOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads, SmallVectorImpl<Value> &operandGrads) {
  auto g = UnaryGradOp::create(b, getLoc(), getInput().getType(), getFnAttr(), getInput(), resultGrads[0]);
  operandGrads.assign({g.getResult()});
  return success();
}

LogicalResult BinaryOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  auto g = BinaryGradOp::create(b, getLoc(), getLhs().getType(), getRhs().getType(), getFnAttr(), getLhs(), getRhs(),
                                resultGrads[0]);
  operandGrads.assign({g.getLhsGrad(), g.getRhsGrad()});
  return success();
}

LogicalResult ReduceOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  auto g =
      ReduceGradOp::create(b, getLoc(), getInput().getType(), getFnAttr(), getInput(), resultGrads[0], getDimAttr());
  operandGrads.assign({g.getResult()});
  return success();
}

LogicalResult SoftmaxOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = SoftmaxGradOp::create(b, getLoc(), getResult().getType(), getResult(), resultGrads[0], getDimAttr(),
                                 getLogAttr());
  operandGrads.assign({castTo(b, getLoc(), g.getResult(), getInput().getType())});
  return success();
}

LogicalResult LoadBalanceLossOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads,
                                                SmallVectorImpl<Value> &operandGrads) {
  auto g = LoadBalanceLossGradOp::create(b, getLoc(), getProbs().getType(), getProbs(), getIndices(), resultGrads[0]);
  operandGrads.assign({g.getResult(), Value()});
  return success();
}

LogicalResult ZLossOp::buildGradients(OpBuilder &b, ArrayRef<Value> resultGrads, SmallVectorImpl<Value> &operandGrads) {
  auto g = ZLossGradOp::create(b, getLoc(), getLogits().getType(), getLogits(), resultGrads[0]);
  operandGrads.assign({g.getResult()});
  return success();
}

LogicalResult ExpertFfnGradOp::verify() {
  if (getWeights().size() != getWeightsGrad().size())
    return emitOpError() << "has " << getWeights().size() << " weights but " << getWeightsGrad().size()
                         << " weight cotangents";
  for (auto [w, g] : llvm::zip(getWeights().getTypes(), getWeightsGrad().getTypes()))
    if (w != g)
      return emitOpError() << "weight cotangent of type " << g << " for a weight of type " << w;
  if (getWeights().size() != ExpertFfnOp::getNumWeightsFor(getKind()))
    return emitOpError() << "kind " << stringifyFfnKind(getKind()) << " takes "
                         << ExpertFfnOp::getNumWeightsFor(getKind()) << " weights, got " << getWeights().size();
  if (Value up = getUp()) {
    int64_t f = cast<RankedTensorType>(getWeights().front().getType()).getDimSize(2);
    RankedTensorType want = ExpertFfnOp::getUpTypeFor(getRouted().getType(), getKind(), f);
    if (up.getType() != want)
      return emitOpError() << "expects the kept up products as " << want << ", got " << up.getType();
  }
  return success();
}
