//===- RoutingPrecision.cpp - routing stays in f32 from the router on ---===//
//
// The spec's "Numerics": a matrix product whose result feeds a score
// function (softmax, sigmoid), topk, group_topk, a gather of scores, a
// combine weight or an auxiliary loss is never rounded to the storage type.
// Products accumulate in f32 anyway; rounding a bf16 router's logits before
// the scores changes about 1% of DeepSeek-V3's expert choices against its f32
// gate. The elaborator builds each product at the promoted storage type, so
// this step, run once the layer is built, widens the routers' results to f32
// and keeps a rounded copy only for uses that are not routing.
//
//===----------------------------------------------------------------------===//
#include "Elaborator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using mlir::OpBuilder;
using mlir::Operation;
using mlir::OpOperand;
using mlir::Value;
namespace arith = mlir::arith;

namespace moe::frontend::sema {
namespace {

/// Whether `use` reads its operand as a routing score or logit.
bool isRoutingUse(OpOperand &use) {
  Operation *user = use.getOwner();
  unsigned n = use.getOperandNumber();
  if (mlir::isa<moe::TopKOp, moe::GroupTopKOp, moe::SoftmaxOp, moe::ZLossOp>(user))
    return true;
  if (auto unary = mlir::dyn_cast<moe::UnaryOp>(user))
    return unary.getFn() == moe::UnaryFn::sigmoid;
  if (mlir::isa<moe::GatherOp, moe::LoadBalanceLossOp>(user))
    return n == 0; // the scores, not the indices
  if (mlir::isa<moe::CombineOp>(user))
    return n == 1; // the weights
  return false;
}

/// Whether the product's value reaches a routing use, directly or through
/// the widening `arith.extf` the elaborator puts before f32 operations.
bool feedsRouting(Value v) {
  for (OpOperand &use : v.getUses()) {
    if (auto ext = mlir::dyn_cast<arith::ExtFOp>(use.getOwner())) {
      if (feedsRouting(ext.getResult()))
        return true;
    } else if (isRoutingUse(use)) {
      return true;
    }
  }
  return false;
}

} // namespace

void keepRoutingInF32(mlir::func::FuncOp layer) {
  llvm::SmallVector<moe::DenseOp> products;
  layer.walk([&](moe::DenseOp d) {
    auto type = mlir::cast<mlir::RankedTensorType>(d.getType());
    if ((type.getElementType().isBF16() || type.getElementType().isF16()) && feedsRouting(d.getResult()))
      products.push_back(d);
  });
  for (moe::DenseOp d : products) {
    auto narrow = mlir::cast<mlir::RankedTensorType>(d.getType());
    auto wide = narrow.clone(mlir::Float32Type::get(d.getContext()));
    OpBuilder b(d);
    b.setInsertionPointAfter(d);
    d.getResult().setType(wide);
    Value rounded; // made on the first use that wants the storage type
    for (OpOperand &use : llvm::make_early_inc_range(d.getResult().getUses())) {
      if (auto ext = mlir::dyn_cast<arith::ExtFOp>(use.getOwner()); ext && ext.getType() == wide) {
        ext.getResult().replaceAllUsesWith(d.getResult());
        ext.erase();
        continue;
      }
      // These ops' results are f32 (or i32) whatever their input's type:
      // they take the wide logits as they are. Every other use keeps the
      // rounded value it had.
      if (mlir::isa<moe::TopKOp, moe::GroupTopKOp, moe::SoftmaxOp, moe::ZLossOp, moe::LoadBalanceLossOp>(
              use.getOwner()))
        continue;
      if (!rounded)
        rounded = arith::TruncFOp::create(b, d.getLoc(), narrow, d.getResult());
      use.set(rounded);
    }
  }
}

} // namespace moe::frontend::sema
