//===- MoETypes.cpp - moe types ---------------------------------*- C++ -*-===//
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/IR/Diagnostics.h"

using namespace mlir;
using namespace moe;

LogicalResult RoutedType::verify(function_ref<InFlightDiagnostic()> emitError, RankedTensorType tokens, int64_t experts,
                                 int64_t k, FloatAttr capacity, int64_t expertShards) {
  if (tokens.getRank() != 2)
    return emitError() << "expects routed tokens of shape [tokens, d], got " << tokens;
  if (ShapedType::isDynamic(tokens.getDimSize(1)))
    return emitError() << "expects a static hidden dimension in " << tokens;
  if (!isa<FloatType>(tokens.getElementType()))
    return emitError() << "expects float routed tokens, got " << tokens.getElementType();
  if (experts <= 0)
    return emitError() << "expects a positive expert count, got " << experts;
  if (k <= 0 || k > experts)
    return emitError() << "expects k (" << k << ") to be between 1 and the expert count (" << experts << ")";
  if (capacity && !(capacity.getValueAsDouble() > 0.0))
    return emitError() << "expects a positive capacity factor, got " << capacity.getValueAsDouble();
  if (expertShards <= 0 || experts % expertShards != 0)
    return emitError() << "expects expert_shards (" << expertShards << ") to divide the expert count (" << experts
                       << ")";
  return success();
}
