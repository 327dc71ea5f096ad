//===- VerifyInput.cpp - moe-verify-input -----------------------*- C++ -*-===//
//
// Legality check at the entry of every moe pipeline (as IREE's
// iree-verify-input-legality): reports every problem, then fails once.
//
//===----------------------------------------------------------------------===//
#include "moe/Support/MLIR.h"
#include "moe/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#define DEBUG_TYPE "moe-verify-input"

namespace moe {
#define GEN_PASS_DEF_MOEVERIFYINPUT
#include "moe/Transforms/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;

namespace {

struct VerifyInputPass : moe::impl::MoEVerifyInputBase<VerifyInputPass> {
  using MoEVerifyInputBase::MoEVerifyInputBase;

  void runOnOperation() override {
    legalDialects = {"moe", "func", "arith", "math", "tensor", "builtin"};
    for (const std::string &d : extraDialects)
      legalDialects.insert(d);

    bool ok = true;
    getOperation().walk([&](Operation *op) {
      ok &= succeeded(verifyOp(op));
      if (auto func = dyn_cast<func::FuncOp>(op); func && !func.isExternal())
        ok &= succeeded(verifySignature(func));
    });
    if (!ok)
      signalPassFailure();
  }

private:
  llvm::StringSet<> legalDialects;

  LogicalResult verifyOp(Operation *op) {
    StringRef dialect = op->getName().getDialectNamespace();
    if (!legalDialects.contains(dialect))
      return op->emitError() << "'" << op->getName()
                             << "' is not legal at the entry of a moe "
                                "pipeline (dialect '"
                             << dialect << "' is not in the legal set)";
    for (Type t : op->getResultTypes())
      if (failed(verifyElementType(op, t)))
        return failure();
    return success();
  }

  static LogicalResult verifyElementType(Operation *op, Type t) {
    auto shaped = dyn_cast<ShapedType>(t);
    if (!shaped)
      return success();
    Type e = shaped.getElementType();
    // The dtypes a layer can hold (ElementTypes.h), and the index and i1
    // values of its glue.
    if (runtimeDType(e) || e.isIndex() || e.isInteger(1))
      return success();
    return op->emitError() << "unsupported element type " << e << " in " << t << " (expected f32, f16, bf16 or i32)";
  }

  LogicalResult verifySignature(func::FuncOp func) {
    bool ok = true;
    llvm::StringMap<unsigned> paramIndex;
    for (auto [i, arg] : llvm::enumerate(func.getArguments())) {
      auto input = func.getArgAttrOfType<StringAttr>(i, MoEDialect::getInputAttrName());
      auto param = func.getArgAttrOfType<StringAttr>(i, MoEDialect::getParamAttrName());
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type) {
        ok = false;
        func.emitError() << "argument #" << i << " of @" << func.getSymName() << " must be a ranked tensor, got "
                         << arg.getType();
        continue;
      }
      ok &= succeeded(verifyElementType(func, type));
      // A backward's cotangents and residuals.
      bool cotangent = func.getArgAttr(i, MoEDialect::getCotangentAttrName()) != nullptr ||
                       func.getArgAttr(i, MoEDialect::getResidualAttrName()) != nullptr;
      if (requireArgNames && !input && !param && !cotangent) {
        ok = false;
        func.emitError() << "argument #" << i << " of @" << func.getSymName()
                         << " is neither an input ('moe.input') nor a "
                            "parameter ('moe.param')";
      }
      if (param) {
        auto [it, inserted] = paramIndex.try_emplace(param.getValue(), i);
        if (!inserted) {
          ok = false;
          func.emitError() << "parameter name '" << param.getValue() << "' is used by arguments #" << it->second
                           << " and #" << i;
        }
        if (!type.hasStaticShape()) {
          ok = false;
          func.emitError() << "parameter '" << param.getValue() << "' must have a static shape, got " << type;
        }
      }
      if (input) {
        for (int64_t d = 1; d < type.getRank(); ++d)
          if (type.isDynamicDim(d)) {
            ok = false;
            func.emitError() << "input '" << input.getValue() << "' is dynamic in dimension " << d
                             << "; only the token dimension (0) may be dynamic";
            break;
          }
      }
    }
    return success(ok);
  }
};

} // namespace
