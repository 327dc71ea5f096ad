//===- MoEDialect.cpp - the moe dialect -------------------------*- C++ -*-===//
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace moe;

#include "moe/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

// The routed type's optional tail: `, capacity = 1.25` (a bare number, not a
// typed float attribute) and `, expert_shards = 4`, each optional, in that
// order (one directive: two optional groups starting with `,` would be
// ambiguous to the generated parser).
static ParseResult parseRoutedOptions(AsmParser &parser, FloatAttr &capacity, int64_t &expertShards) {
  expertShards = 1;
  while (succeeded(parser.parseOptionalComma())) {
    if (succeeded(parser.parseOptionalKeyword("capacity"))) {
      double value;
      if (parser.parseEqual() || parser.parseFloat(value))
        return failure();
      capacity = parser.getBuilder().getF64FloatAttr(value);
    } else if (succeeded(parser.parseOptionalKeyword("expert_shards"))) {
      if (parser.parseEqual() || parser.parseInteger(expertShards))
        return failure();
    } else {
      return parser.emitError(parser.getCurrentLocation(), "expected 'capacity' or 'expert_shards'");
    }
  }
  return success();
}

static void printRoutedOptions(AsmPrinter &printer, FloatAttr capacity, int64_t expertShards) {
  if (capacity)
    printer << ", capacity = " << capacity.getValueAsDouble();
  if (expertShards != 1)
    printer << ", expert_shards = " << expertShards;
}

#define GET_TYPEDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEOpsTypes.cpp.inc"

void MoEDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
  registerTypes();
}

void MoEDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "moe/Dialect/MoE/IR/MoEOpsTypes.cpp.inc"
      >();
}

// `moe.input = "x"` and `moe.param = "router.weight"` bind a layer function's
// arguments to the names the runtime and checkpoints use.
LogicalResult MoEDialect::verifyRegionArgAttribute(Operation *op, unsigned regionIndex, unsigned argIndex,
                                                   NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == getInputAttrName() || name == getParamAttrName()) {
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || str.getValue().empty())
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex << " to be a non-empty string";
    return success();
  }
  if (name == getTrainableAttrName()) {
    if (!isa<BoolAttr>(attr.getValue()))
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex << " to be a boolean";
    return success();
  }
  if (name == getInitAttrName()) {
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || !llvm::is_contained({"normal", "zeros", "ones"}, str.getValue()))
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex
                             << " to be \"normal\", \"zeros\" or \"ones\"";
    return success();
  }
  if (name == getDimsAttrName()) {
    auto dims = dyn_cast<ArrayAttr>(attr.getValue());
    auto fn = dyn_cast<FunctionOpInterface>(op);
    // A tensor, or the memref it becomes once bufferized; once lowered to LLVM
    // pointers, the attribute only documents the signature.
    auto type = fn ? dyn_cast<ShapedType>(fn.getArgumentTypes()[argIndex]) : nullptr;
    if (fn && !type)
      return success();
    if (!dims || !type || !type.hasRank() || dims.size() != static_cast<size_t>(type.getRank()) ||
        !llvm::all_of(dims, [](Attribute a) { return isa<StringAttr>(a); }))
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex
                             << " to hold one string per dimension";
    for (auto [i, d] : llvm::enumerate(dims.getAsValueRange<StringAttr>()))
      if (d.empty() != !ShapedType::isDynamic(type.getDimSize(i)))
        return op->emitError() << "expects '" << name << "' of argument #" << argIndex
                               << " to name exactly its dynamic dimensions";
    return success();
  }
  if (name == getPlacementAttrName()) {
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || !llvm::is_contained({"experts", "replicated"}, str.getValue()))
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex
                             << " to be \"experts\" or \"replicated\"";
    return success();
  }
  if (name == getGlobalShapeAttrName()) {
    auto shape = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!shape || llvm::any_of(shape.asArrayRef(), [](int64_t d) { return d < 0; }))
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex
                             << " to be an array of non-negative sizes";
    return success();
  }
  if (name == getUpdateAttrName()) {
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || str.getValue() != "balance")
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex << " to be \"balance\"";
    return success();
  }
  if (name == getCotangentAttrName() || name == getResidualAttrName()) {
    auto index = dyn_cast<IntegerAttr>(attr.getValue());
    if (!index || index.getInt() < 0)
      return op->emitError() << "expects '" << name << "' of argument #" << argIndex << " to be the index of a "
                             << (name == getResidualAttrName() ? "residual" : "forward result");
    return success();
  }
  return op->emitError() << "unknown moe argument attribute '" << name << "'";
}

LogicalResult MoEDialect::verifyRegionResultAttribute(Operation *op, unsigned, unsigned resultIndex,
                                                      NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == getDimsAttrName()) { // an output's dimension names, as an input's
    auto dims = dyn_cast<ArrayAttr>(attr.getValue());
    if (!dims || !llvm::all_of(dims, [](Attribute a) { return isa<StringAttr>(a); }))
      return op->emitError() << "expects '" << name << "' of result #" << resultIndex
                             << " to hold one string per dimension";
    return success();
  }
  if (name == getGradientAttrName() || name == getLoadAttrName()) {
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || str.getValue().empty())
      return op->emitError() << "expects '" << name << "' of result #" << resultIndex << " to be a non-empty string";
    return success();
  }
  if (name == getResidualAttrName()) {
    auto index = dyn_cast<IntegerAttr>(attr.getValue());
    if (!index || index.getInt() < 0)
      return op->emitError() << "expects '" << name << "' of result #" << resultIndex
                             << " to be the index of a residual";
    return success();
  }
  return op->emitError() << "unknown moe result attribute '" << name << "'";
}
