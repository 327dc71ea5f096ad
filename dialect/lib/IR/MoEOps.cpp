//===- MoEOps.cpp - moe operations: builders and verifiers ------*- C++ -*-===//
//
// Verifiers check facts across operands (shapes that must agree); ODS type
// constraints already checked ranks and element types. Dynamic dimensions
// (`?`) are compatible with any size.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "VerifyUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace moe;

#include "moe/Dialect/MoE/IR/MoEOpsEnums.cpp.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

static bool isCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static bool isCompatible(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  return a.size() == b.size() &&
         llvm::all_of(llvm::zip(a, b), [](auto p) { return isCompatible(std::get<0>(p), std::get<1>(p)); });
}

/// Prints `[?, 2]`.
static std::string formatShape(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

static ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

/// Emits "expects <what> of shape [..], got [..]" unless `actual` fits.
static LogicalResult verifyShape(Operation *op, StringRef what, ArrayRef<int64_t> expected, ArrayRef<int64_t> actual) {
  if (isCompatible(expected, actual))
    return success();
  return op->emitOpError() << "expects " << what << " of shape " << formatShape(expected) << ", got "
                           << formatShape(actual);
}

/// The token count that two `[tokens, ...]` tensors agree on (dynamic wins
/// only when both are dynamic).
static int64_t joinDim(int64_t a, int64_t b) { return ShapedType::isDynamic(a) ? b : a; }

static LogicalResult verifySameTokens(Operation *op, StringRef lhsName, int64_t lhs, StringRef rhsName, int64_t rhs) {
  if (isCompatible(lhs, rhs))
    return success();
  return op->emitOpError() << "expects " << lhsName << " (" << lhs << " rows) and " << rhsName << " (" << rhs
                           << " rows) to have the same number of tokens";
}

LogicalResult moe::detail::verifyDimInRank(Operation *op, StringRef name, int64_t dim, int64_t rank) {
  if (dim < rank)
    return success();
  return op->emitOpError() << "expects " << name << " (" << dim << ") to be less than the rank (" << rank << ")";
}

FailureOr<SmallVector<int64_t>> moe::broadcastShapes(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  if (lhs.empty())
    return SmallVector<int64_t>(rhs);
  if (rhs.empty())
    return SmallVector<int64_t>(lhs);
  if (lhs.size() != rhs.size())
    return failure();
  SmallVector<int64_t> out;
  for (auto [a, b] : llvm::zip(lhs, rhs)) {
    if (a == 1)
      out.push_back(b);
    else if (b == 1)
      out.push_back(a);
    else if (isCompatible(a, b))
      out.push_back(joinDim(a, b));
    else
      return failure();
  }
  return out;
}

//===----------------------------------------------------------------------===//
// TopKOp
//===----------------------------------------------------------------------===//

void TopKOp::build(OpBuilder &b, OperationState &state, Value logits, int64_t k, std::optional<ScoreFn> score,
                   bool renormalize, std::optional<double> scale) {
  int64_t tokens = shapeOf(logits)[0];
  auto values = RankedTensorType::get({tokens, k}, b.getF32Type());
  auto indices = RankedTensorType::get({tokens, k}, b.getI32Type());
  build(b, state, values, indices, logits, b.getI64IntegerAttr(k),
        score ? ScoreFnAttr::get(b.getContext(), *score) : ScoreFnAttr(), renormalize ? b.getUnitAttr() : UnitAttr(),
        scale ? b.getF64FloatAttr(*scale) : FloatAttr());
}

LogicalResult TopKOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getLogits());
  int64_t experts = in[1], k = getK();
  if (ShapedType::isDynamic(experts))
    return emitOpError() << "expects a static number of experts, got " << getLogits().getType();
  if (k > experts)
    return emitOpError() << "expects k (" << k << ") to be at most the number of experts (" << experts << ")";
  if (getScale() && !(getScale()->convertToDouble() > 0.0))
    return emitOpError() << "expects a positive scale, got " << getScale()->convertToDouble();
  if (failed(verifyShape(*this, "values", {in[0], k}, shapeOf(getValues()))) ||
      failed(verifyShape(*this, "indices", {in[0], k}, shapeOf(getIndices()))))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// GroupTopKOp
//===----------------------------------------------------------------------===//

void GroupTopKOp::build(OpBuilder &b, OperationState &state, Value scores, int64_t k, int64_t groups,
                        int64_t topGroups) {
  auto indices = RankedTensorType::get({shapeOf(scores)[0], k}, b.getI32Type());
  build(b, state, indices, scores, k, groups, topGroups);
}

LogicalResult GroupTopKOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getScores());
  int64_t experts = in[1], k = getK(), groups = getGroups(), topGroups = getTopGroups();
  if (ShapedType::isDynamic(experts))
    return emitOpError() << "expects a static number of experts, got " << getScores().getType();
  if (experts % groups != 0)
    return emitOpError() << "expects the number of experts (" << experts << ") to be divisible by groups (" << groups
                         << ")";
  if (topGroups > groups)
    return emitOpError() << "expects top_groups (" << topGroups << ") to be at most groups (" << groups << ")";
  int64_t kept = topGroups * (experts / groups);
  if (k > kept)
    return emitOpError() << "expects k (" << k << ") to be at most the experts in the kept groups (" << kept << ")";
  return verifyShape(*this, "indices", {in[0], k}, shapeOf(getIndices()));
}

//===----------------------------------------------------------------------===//
// GatherOp
//===----------------------------------------------------------------------===//

void GatherOp::build(OpBuilder &b, OperationState &state, Value input, Value indices) {
  auto inTy = cast<RankedTensorType>(input.getType());
  ArrayRef<int64_t> idx = shapeOf(indices);
  auto resTy = RankedTensorType::get({joinDim(inTy.getDimSize(0), idx[0]), idx[1]}, inTy.getElementType());
  build(b, state, resTy, input, indices);
}

LogicalResult GatherOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), idx = shapeOf(getIndices());
  if (failed(verifySameTokens(*this, "input", in[0], "indices", idx[0])) ||
      failed(verifyShape(*this, "result", {joinDim(in[0], idx[0]), idx[1]}, shapeOf(getResult()))))
    return failure();
  Type inElt = getInput().getType().getElementType();
  Type outElt = getResult().getType().getElementType();
  if (inElt != outElt)
    return emitOpError() << "expects result element type " << outElt << " to match the input element type " << inElt;
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

void DispatchOp::build(OpBuilder &b, OperationState &state, Value input, Value indices, int64_t numExperts,
                       std::optional<double> capacity) {
  auto routed = RoutedType::get(b.getContext(), cast<RankedTensorType>(input.getType()), numExperts,
                                shapeOf(indices)[1], capacity ? b.getF64FloatAttr(*capacity) : FloatAttr(), 1);
  build(b, state, routed, input, indices);
}

LogicalResult DispatchOp::verify() {
  RoutedType routed = getRouted().getType();
  ArrayRef<int64_t> idx = shapeOf(getIndices());
  if (routed.getTokens() != getInput().getType())
    return emitOpError() << "expects the routed tokens " << routed.getTokens() << " to match the input type "
                         << getInput().getType();
  if (failed(verifySameTokens(*this, "input", shapeOf(getInput())[0], "indices", idx[0])))
    return failure();
  if (!isCompatible(idx[1], routed.getK()))
    return emitOpError() << "expects k (" << routed.getK() << ") of the routed type to match the index columns ("
                         << idx[1] << ")";
  if (routed.getExpertShards() != 1)
    return emitOpError() << "expects rows on their tokens' rank (no expert_shards), got expert_shards = "
                         << routed.getExpertShards() << "; moe.all_to_all moves them to the expert ranks";
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertFfnOp
//===----------------------------------------------------------------------===//

void ExpertFfnOp::build(OpBuilder &b, OperationState &state, FfnKind kind, Value routed, ValueRange weights,
                        std::optional<Activation> activation) {
  build(b, state, routed.getType(), /*up=*/Type(), kind,
        activation ? ActivationAttr::get(b.getContext(), *activation) : ActivationAttr(), routed, weights);
}

RankedTensorType ExpertFfnOp::getUpTypeFor(RoutedType routed, FfnKind kind, int64_t inner) {
  return RankedTensorType::get(
      {routed.getTokens().getDimSize(0), routed.getK(), kind == FfnKind::mlp ? inner : 2 * inner},
      routed.getTokens().getElementType());
}

LogicalResult ExpertFfnOp::verify() {
  FfnKind kind = getKind();
  unsigned expected = getNumWeightsFor(kind);
  if (getWeights().size() != expected)
    return emitOpError() << "expects " << expected << " weights for " << stringifyFfnKind(kind) << ", got "
                         << getWeights().size();
  if (kind == FfnKind::mlp && !getActivation())
    return emitOpError() << "expects an activation for an mlp expert";
  if (kind != FfnKind::mlp && getActivation())
    return emitOpError() << "expects no activation for a " << stringifyFfnKind(kind) << " expert";

  RoutedType routed = getRouted().getType();
  int64_t experts = routed.getLocalExperts(), d = routed.getHidden();
  int64_t f = getInnerDim();
  // All weights but the last map d -> f; the last maps f -> d.
  for (auto [i, w] : llvm::enumerate(getWeights())) {
    bool isOut = i + 1 == getWeights().size();
    SmallVector<int64_t> want = isOut ? SmallVector<int64_t>{experts, f, d} : SmallVector<int64_t>{experts, d, f};
    std::string what = "weight #" + std::to_string(i);
    if (failed(verifyShape(*this, what, want, shapeOf(w))))
      return failure();
  }
  if (Value up = getUp())
    if (up.getType() != getUpType())
      return emitOpError() << "expects the kept up products as " << getUpType() << ", got " << up.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

void CombineOp::build(OpBuilder &b, OperationState &state, Value routed, Value weights) {
  auto routedTy = cast<RoutedType>(routed.getType());
  build(b, state, routedTy.getTokens(), routed, weights);
}

LogicalResult CombineOp::verify() {
  RoutedType routed = getRouted().getType();
  if (routed.getExpertShards() != 1)
    return emitOpError() << "expects the expert outputs back on their tokens' rank (no expert_shards), got "
                            "expert_shards = "
                         << routed.getExpertShards();
  ArrayRef<int64_t> tokens = routed.getTokens().getShape();
  if (failed(verifyShape(*this, "weights", {tokens[0], routed.getK()}, shapeOf(getWeights()))))
    return failure();
  return verifyShape(*this, "result", tokens, shapeOf(getResult()));
}

//===----------------------------------------------------------------------===//
// DenseOp
//===----------------------------------------------------------------------===//

void DenseOp::build(OpBuilder &b, OperationState &state, Value input, Value weight, Value bias,
                    Type resultElementType) {
  auto resTy = RankedTensorType::get({shapeOf(input)[0], shapeOf(weight)[1]}, resultElementType);
  build(b, state, resTy, input, weight, bias);
}

LogicalResult DenseOp::verify() {
  ArrayRef<int64_t> in = shapeOf(getInput()), w = shapeOf(getWeight());
  if (!isCompatible(in[1], w[0]))
    return emitOpError() << "expects weight rows (" << w[0] << ") to match input columns (" << in[1] << ")";
  if (getBias() && !isCompatible(shapeOf(getBias())[0], w[1]))
    return emitOpError() << "expects a bias of size " << w[1] << " (the weight columns), got " << shapeOf(getBias())[0];
  return verifyShape(*this, "result", {in[0], w[1]}, shapeOf(getResult()));
}

//===----------------------------------------------------------------------===//
// RMSNormOp
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  if (!(getEps().convertToDouble() > 0.0))
    return emitOpError() << "expects a positive eps, got " << getEps().convertToDouble();
  ArrayRef<int64_t> in = shapeOf(getInput());
  int64_t w = shapeOf(getWeight())[0];
  if (!isCompatible(in[1], w))
    return emitOpError() << "expects a weight of size " << in[1] << " (the last input dimension), got " << w;
  return verifyShape(*this, "result", in, shapeOf(getResult()));
}

//===----------------------------------------------------------------------===//
// BinaryOp
//===----------------------------------------------------------------------===//

void BinaryOp::build(OpBuilder &b, OperationState &state, BinaryFn fn, Value lhs, Value rhs) {
  auto lhsTy = cast<RankedTensorType>(lhs.getType());
  FailureOr<SmallVector<int64_t>> shape = broadcastShapes(lhsTy.getShape(), shapeOf(rhs));
  // An incompatible pair builds an op with lhs's shape that the verifier rejects.
  auto resTy =
      RankedTensorType::get(succeeded(shape) ? ArrayRef<int64_t>(*shape) : lhsTy.getShape(), lhsTy.getElementType());
  build(b, state, resTy, fn, lhs, rhs);
}

LogicalResult BinaryOp::verify() {
  auto lhsTy = getLhs().getType(), rhsTy = getRhs().getType();
  auto resTy = getResult().getType();
  if (lhsTy.getRank() != 0 && rhsTy.getRank() != 0 && lhsTy.getRank() != rhsTy.getRank())
    return emitOpError() << "expects operands of equal rank or a scalar, got rank " << lhsTy.getRank() << " and "
                         << rhsTy.getRank();
  if (lhsTy.getElementType() != rhsTy.getElementType() || lhsTy.getElementType() != resTy.getElementType())
    return emitOpError() << "expects operands and result of one element type, got " << lhsTy.getElementType() << ", "
                         << rhsTy.getElementType() << " and " << resTy.getElementType();
  FailureOr<SmallVector<int64_t>> shape = broadcastShapes(lhsTy.getShape(), rhsTy.getShape());
  if (failed(shape))
    return emitOpError() << "expects broadcast-compatible shapes, got " << formatShape(lhsTy.getShape()) << " and "
                         << formatShape(rhsTy.getShape());
  return verifyShape(*this, "result (the broadcast shape)", *shape, resTy.getShape());
}

//===----------------------------------------------------------------------===//
// ReduceOp and SoftmaxOp
//===----------------------------------------------------------------------===//

void ReduceOp::build(OpBuilder &b, OperationState &state, ReduceFn fn, Value input, int64_t dim) {
  auto inTy = cast<RankedTensorType>(input.getType());
  SmallVector<int64_t> shape(inTy.getShape());
  if (dim >= 0 && dim < static_cast<int64_t>(shape.size()))
    shape[dim] = 1;
  build(b, state, RankedTensorType::get(shape, inTy.getElementType()), fn, input, dim);
}

LogicalResult ReduceOp::verify() {
  auto inTy = getInput().getType();
  if (failed(detail::verifyDimInRank(*this, "dim", getDim(), inTy.getRank())))
    return failure();
  if (inTy.getElementType() != getResult().getType().getElementType())
    return emitOpError() << "expects result element type " << getResult().getType().getElementType()
                         << " to match the input element type " << inTy.getElementType();
  SmallVector<int64_t> want(inTy.getShape());
  want[getDim()] = 1;
  return verifyShape(*this, "result", want, shapeOf(getResult()));
}

LogicalResult SoftmaxOp::verify() {
  if (failed(detail::verifyDimInRank(*this, "dim", getDim(), getInput().getType().getRank())))
    return failure();
  return verifyShape(*this, "result", shapeOf(getInput()), shapeOf(getResult()));
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

LogicalResult LoadBalanceLossOp::verify() {
  return verifySameTokens(*this, "probs", shapeOf(getProbs())[0], "indices", shapeOf(getIndices())[0]);
}
