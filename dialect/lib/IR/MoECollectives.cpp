//===- MoECollectives.cpp - device mesh and collectives ---------*- C++ -*-===//
//
// Collectives name axes of a `moe.mesh`; their result shapes depend on the
// group size, so they are verified against the mesh symbol (SymbolUserOpInterface).
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "VerifyUtils.h"

#include "llvm/ADT/DenseSet.h"

using namespace mlir;
using namespace moe;

//===----------------------------------------------------------------------===//
// MeshOp
//===----------------------------------------------------------------------===//

std::optional<int64_t> MeshOp::getAxisSize(StringRef axis) {
  for (auto [name, size] : llvm::zip(getAxes(), getShape()))
    if (cast<StringAttr>(name).getValue() == axis)
      return size;
  return std::nullopt;
}

LogicalResult MeshOp::verify() {
  if (getAxes().empty())
    return emitOpError() << "expects at least one axis";
  if (getAxes().size() != getShape().size())
    return emitOpError() << "expects as many axis names (" << getAxes().size() << ") as axis sizes ("
                         << getShape().size() << ")";
  llvm::DenseSet<StringRef> seen;
  for (auto [name, size] : llvm::zip(getAxes(), getShape())) {
    StringRef axis = cast<StringAttr>(name).getValue();
    if (!seen.insert(axis).second)
      return emitOpError() << "expects unique axis names, \"" << axis << "\" appears twice";
    if (size <= 0)
      return emitOpError() << "expects positive axis sizes, got " << size << " for axis \"" << axis << "\"";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Shared collective checks
//===----------------------------------------------------------------------===//

/// Looks up the mesh axes a collective runs over; emits and fails when the
/// symbol is not a mesh, an axis is missing or named twice. Returns the
/// group's size (the product of the axes' sizes).
static FailureOr<int64_t> lookupGroupSize(Operation *op, SymbolTableCollection &symbols, FlatSymbolRefAttr meshRef,
                                          ArrayAttr axes) {
  auto mesh = symbols.lookupNearestSymbolFrom<MeshOp>(op, meshRef);
  if (!mesh)
    return op->emitOpError() << "expects " << meshRef << " to name a 'moe.mesh'";
  if (axes.empty())
    return op->emitOpError() << "expects at least one mesh axis";
  int64_t size = 1;
  llvm::DenseSet<StringRef> seen;
  for (Attribute a : axes) {
    StringRef axis = cast<StringAttr>(a).getValue();
    if (!seen.insert(axis).second)
      return op->emitOpError() << "expects unique axes, \"" << axis << "\" appears twice";
    std::optional<int64_t> n = mesh.getAxisSize(axis);
    if (!n)
      return op->emitOpError() << "expects mesh " << meshRef << " to have an axis \"" << axis << "\"";
    size *= *n;
  }
  return size;
}

static LogicalResult verifyDivisible(Operation *op, StringRef name, int64_t size, int64_t axisSize) {
  if (ShapedType::isDynamic(size) || size % axisSize == 0)
    return success();
  return op->emitOpError() << "expects the " << name << " size (" << size << ") to be divisible by the group size ("
                           << axisSize << ")";
}

static int64_t scaleDim(int64_t size, int64_t num, int64_t den) {
  return ShapedType::isDynamic(size) ? size : size * num / den;
}

/// The result must have `want`'s shape (dynamic matches anything) and the
/// input's element type.
static LogicalResult verifyCollectiveResult(Operation *op, RankedTensorType input, ArrayRef<int64_t> want,
                                            RankedTensorType result) {
  if (input.getElementType() != result.getElementType())
    return op->emitOpError() << "expects result element type " << result.getElementType()
                             << " to match the input element type " << input.getElementType();
  auto expected = RankedTensorType::get(want, input.getElementType());
  for (auto [a, b] : llvm::zip(want, result.getShape()))
    if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
      return op->emitOpError() << "expects result type " << expected << ", got " << result;
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

LogicalResult AllToAllOp::verifySymbolUses(SymbolTableCollection &symbols) {
  FailureOr<int64_t> n = lookupGroupSize(*this, symbols, getMeshAttr(), getAxes());
  if (failed(n))
    return failure();
  if (auto routed = dyn_cast<RoutedType>(getInput().getType())) {
    auto result = dyn_cast<RoutedType>(getResult().getType());
    if (getSplitDim() || getConcatDim())
      return emitOpError() << "expects no split_dim or concat_dim on a routed value";
    int64_t want = routed.getExpertShards() == 1 ? *n : 1;
    if (routed.getExpertShards() != 1 && routed.getExpertShards() != *n)
      return emitOpError() << "expects routed rows on the tokens' ranks or on " << *n
                           << " expert ranks (the group size), got expert_shards = " << routed.getExpertShards();
    if (routed.getExperts() % *n != 0)
      return emitOpError() << "expects the group size (" << *n << ") to divide the expert count ("
                           << routed.getExperts() << ")";
    if (!result || result != routed.withExpertShards(want))
      return emitOpError() << "expects result type " << routed.withExpertShards(want) << ", got "
                           << getResult().getType();
    return success();
  }
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = dyn_cast<RankedTensorType>(getResult().getType());
  if (!out)
    return emitOpError() << "expects a tensor result for a tensor input, got " << getResult().getType();
  if (!getSplitDim() || !getConcatDim())
    return emitOpError() << "expects split_dim and concat_dim on a tensor";
  int64_t split = *getSplitDim(), concat = *getConcatDim();
  if (failed(detail::verifyDimInRank(*this, "split_dim", split, in.getRank())) ||
      failed(detail::verifyDimInRank(*this, "concat_dim", concat, in.getRank())) ||
      failed(verifyDivisible(*this, "split_dim", in.getDimSize(split), *n)))
    return failure();
  SmallVector<int64_t> want(in.getShape());
  want[split] = scaleDim(want[split], 1, *n);
  want[concat] = scaleDim(want[concat], *n, 1);
  return verifyCollectiveResult(*this, in, want, out);
}

LogicalResult AllGatherOp::verifySymbolUses(SymbolTableCollection &symbols) {
  FailureOr<int64_t> n = lookupGroupSize(*this, symbols, getMeshAttr(), getAxes());
  if (failed(n))
    return failure();
  RankedTensorType in = getInput().getType();
  int64_t dim = getGatherDim();
  if (failed(detail::verifyDimInRank(*this, "gather_dim", dim, in.getRank())))
    return failure();
  SmallVector<int64_t> want(in.getShape());
  want[dim] = scaleDim(want[dim], *n, 1);
  return verifyCollectiveResult(*this, in, want, getResult().getType());
}

LogicalResult ReduceScatterOp::verifySymbolUses(SymbolTableCollection &symbols) {
  FailureOr<int64_t> n = lookupGroupSize(*this, symbols, getMeshAttr(), getAxes());
  if (failed(n))
    return failure();
  RankedTensorType in = getInput().getType();
  int64_t dim = getScatterDim();
  if (failed(detail::verifyDimInRank(*this, "scatter_dim", dim, in.getRank())) ||
      failed(verifyDivisible(*this, "scatter_dim", in.getDimSize(dim), *n)))
    return failure();
  SmallVector<int64_t> want(in.getShape());
  want[dim] = scaleDim(want[dim], 1, *n);
  return verifyCollectiveResult(*this, in, want, getResult().getType());
}

LogicalResult RowOffsetOp::verifySymbolUses(SymbolTableCollection &symbols) {
  if (getInput().getType().getRank() == 0)
    return emitOpError() << "takes rows: a tensor of rank 1 or more, got " << getInput().getType();
  return lookupGroupSize(*this, symbols, getMeshAttr(), getAxes());
}

LogicalResult AllReduceOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return lookupGroupSize(*this, symbols, getMeshAttr(), getAxes());
}
