//===- KernelConversion.h - what the kernel conversions share ---*- C++ -*-===//
//
// convert-moe-to-cpu-kernels and convert-moe-to-gpu-kernels lower the same
// ops (matrix products, routing, losses, and each dispatch -> expert_ffn ->
// combine chain, rooted at its combine) with a pattern per op, then drop the
// routed ops the chains consumed. This is the conversion target and driver
// they share, and the buffer helpers of their patterns.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_KERNELCONVERSION_H
#define MOE_CONVERSION_KERNELCONVERSION_H

#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Support/MLIR.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/DenseSet.h"

namespace moe {

/// Marks the module's layer functions for a C entry point
/// (`_mlir_ciface_<layer>`), applies a kernel conversion's `patterns` (the
/// ops they rewrite illegal; the routed ops moe.dispatch and moe.expert_ffn
/// are no pattern's root: the pattern of the combine that ends their chain
/// consumes them), then erases the routed ops the chains consumed;
/// `backend` names the backend in the error for a routed value used elsewhere.
inline LogicalResult applyKernelConversion(ModuleOp module, RewritePatternSet &&patterns, StringRef backend) {
  MLIRContext *context = module.getContext();
  for (auto fn : module.getOps<func::FuncOp>())
    if (fn.isPublic() && !fn.isDeclaration())
      fn->setAttr("llvm.emit_c_interface", UnitAttr::get(context));
  ConversionTarget target(*context);
  addPatternRootsIllegal(target, patterns);
  // A routed all-to-all belongs to its chain: the combine's pattern lowers it.
  target.addDynamicallyLegalOp<AllToAllOp>([](AllToAllOp op) { return isa<RoutedType>(op.getInput().getType()); });
  if (failed(applyPartialConversion(module, target, std::move(patterns))))
    return failure();
  // The routed chains are now dead.
  SmallVector<Operation *> dead;
  module.walk([&](Operation *op) {
    if (isa<ExpertFfnOp, DispatchOp>(op) || (isa<AllToAllOp>(op) && isa<RoutedType>(op->getResult(0).getType())))
      dead.push_back(op);
  });
  IRRewriter rewriter(context);
  for (Operation *op : llvm::reverse(dead)) {
    if (!op->use_empty())
      return op->emitError() << "routed value used other than by moe.expert_ffn and moe.combine is not "
                                "supported by the "
                             << backend << " backend";
    rewriter.eraseOp(op);
  }
  // Every collective became a call: the mesh they named is no longer needed.
  for (auto mesh : llvm::make_early_inc_range(module.getOps<MeshOp>()))
    rewriter.eraseOp(mesh);
  return success();
}

/// A tensor operand's buffer, read only.
inline Value inputBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  return bufferization::ToBufferOp::create(b, loc, memrefType, tensor, /*read_only=*/true);
}

/// A fresh buffer for a kernel's result of `type`, its dynamic sizes those of
/// `source` (same leading dimensions): the buffer, and the tensor the rest of
/// the IR uses (`to_tensor restrict`: the kernel's writes are its contents).
inline std::pair<Value, Value> resultBuffer(OpBuilder &b, Location loc, RankedTensorType type, Value source) {
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(tensor::DimOp::create(b, loc, source, d));
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  Value buffer = memref::AllocOp::create(b, loc, memrefType, sizes);
  Value tensor = bufferization::ToTensorOp::create(b, loc, type, buffer, /*restrict=*/true, /*writable=*/true);
  return {buffer, tensor};
}

/// A dispatch -> [expert_ffn] -> combine chain, from its combine; on a mesh
/// (expert parallel) dispatch -> all_to_all -> expert_ffn -> all_to_all -> combine.
struct RoutedChain {
  DispatchOp dispatch;
  ExpertFfnOp ffn;        ///< null: dispatch straight into combine
  AllToAllOp toExperts;   ///< expert parallel: the rows to their experts' ranks
  AllToAllOp fromExperts; ///< and the outputs back
};

inline FailureOr<RoutedChain> matchRoutedChain(CombineOp combine, StringRef backend) {
  RoutedChain chain;
  Value routed = combine.getRouted();
  if ((chain.fromExperts = routed.getDefiningOp<AllToAllOp>()))
    routed = chain.fromExperts.getInput();
  if ((chain.ffn = routed.getDefiningOp<ExpertFfnOp>()))
    routed = chain.ffn.getRouted();
  if ((chain.toExperts = routed.getDefiningOp<AllToAllOp>()))
    routed = chain.toExperts.getInput();
  chain.dispatch = routed.getDefiningOp<DispatchOp>();
  bool exchanged = chain.toExperts || chain.fromExperts;
  if (!chain.dispatch || (exchanged && !(chain.toExperts && chain.fromExperts && chain.ffn)) ||
      (exchanged && chain.toExperts.getAxes() != chain.fromExperts.getAxes()))
    return combine.emitError() << "the " << backend
                               << " backend needs moe.combine of moe.dispatch, optionally through one moe.expert_ffn "
                                  "(on a mesh: with one moe.all_to_all over the same axes on each side of it)";
  return chain;
}

/// Checks, before a kernel conversion, that every combine ends a chain the
/// backend lowers (so that the patterns need not fail with a message).
inline LogicalResult checkRoutedChains(ModuleOp module, StringRef backend) {
  WalkResult result = module.walk([&](CombineOp combine) {
    return failed(matchRoutedChain(combine, backend)) ? WalkResult::interrupt() : WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// The backward of a routed chain, from its dispatch_grad: combine_grad ->
/// [expert_ffn_grad] -> dispatch_grad, the cotangents of the (recomputed)
/// forward chain dispatch -> [expert_ffn] -> combine of the same operands.
///
/// On a mesh (moe-place-on-mesh) the forward chain has its exchanges, and the
/// backward's are the same: the rows' cotangents to the experts' ranks before
/// expert_ffn_grad (which takes the forward's exchanged rows) and back after.
struct RoutedChainGrad {
  DispatchOp dispatch;
  ExpertFfnGradOp ffnGrad; ///< null: dispatch straight into combine
  CombineGradOp combineGrad;
  AllToAllOp toExperts;   ///< expert parallel: the cotangents to the experts' ranks
  AllToAllOp fromExperts; ///< and the rows' cotangents back
};

inline FailureOr<RoutedChainGrad> matchRoutedChainGrad(DispatchGradOp root, StringRef backend) {
  RoutedChainGrad chain;
  Value routedGrad = root.getGrad();
  if ((chain.fromExperts = routedGrad.getDefiningOp<AllToAllOp>()))
    routedGrad = chain.fromExperts.getInput();
  chain.ffnGrad = routedGrad.getDefiningOp<ExpertFfnGradOp>();
  if (chain.ffnGrad)
    routedGrad = chain.ffnGrad.getGrad();
  if ((chain.toExperts = routedGrad.getDefiningOp<AllToAllOp>()))
    routedGrad = chain.toExperts.getInput();
  chain.combineGrad = routedGrad.getDefiningOp<CombineGradOp>();
  Value primal = chain.combineGrad ? chain.combineGrad.getRouted() : Value();
  // The forward's exchanges, when the backward has its own.
  bool exchanged = chain.toExperts || chain.fromExperts;
  auto back = primal ? primal.getDefiningOp<AllToAllOp>() : nullptr;
  if (back)
    primal = back.getInput();
  auto ffn = primal ? primal.getDefiningOp<ExpertFfnOp>() : nullptr;
  // The rows both expert ops take, before any exchange of theirs.
  auto unexchanged = [](Value rows) {
    auto exchange = rows.getDefiningOp<AllToAllOp>();
    return exchange ? exchange.getInput() : rows;
  };
  if (chain.ffnGrad && ffn && unexchanged(ffn.getRouted()) == unexchanged(chain.ffnGrad.getRouted()) &&
      ffn.getWeights() == chain.ffnGrad.getWeights())
    primal = ffn.getRouted();
  else if (chain.ffnGrad)
    primal = Value();
  auto there = primal ? primal.getDefiningOp<AllToAllOp>() : nullptr;
  if (there)
    primal = there.getInput();
  chain.dispatch = primal ? primal.getDefiningOp<DispatchOp>() : nullptr;
  // (The forward needs no exchange where the backward does: replicas over
  // one ep slice.)
  bool consistent = !exchanged || (chain.toExperts && chain.fromExperts && chain.ffnGrad && (!back) == (!there) &&
                                   chain.toExperts.getAxes() == chain.fromExperts.getAxes());
  if (!chain.combineGrad || !chain.dispatch || !consistent || (!exchanged && (back || there)))
    return root.emitError() << "the " << backend
                            << " backend needs moe.dispatch_grad of moe.combine_grad, optionally through one "
                               "moe.expert_ffn_grad, of the cotangents of one dispatch -> [expert_ffn] -> combine "
                               "chain (as moe-differentiate builds it; on a mesh with one moe.all_to_all over the "
                               "same axes on each side of both expert ops)";
  return chain;
}

/// Checks, before a kernel conversion, that every routed backward op is part
/// of a chain that a dispatch_grad ends (the chain's pattern consumes it).
inline LogicalResult checkRoutedChainGrads(ModuleOp module, StringRef backend) {
  llvm::DenseSet<Operation *> inChains;
  WalkResult result = module.walk([&](DispatchGradOp root) {
    FailureOr<RoutedChainGrad> chain = matchRoutedChainGrad(root, backend);
    if (failed(chain))
      return WalkResult::interrupt();
    inChains.insert(chain->combineGrad);
    if (chain->ffnGrad)
      inChains.insert(chain->ffnGrad);
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();
  result = module.walk([&](Operation *op) {
    if (!isa<CombineGradOp, ExpertFfnGradOp>(op) || inChains.contains(op))
      return WalkResult::advance();
    op->emitError() << "the " << backend << " backend lowers " << op->getName()
                    << " only inside a routed chain's backward that ends in moe.dispatch_grad";
    return WalkResult::interrupt();
  });
  return failure(result.wasInterrupted());
}

/// `out .+ bias` for a dense product lowered to a kernel: a broadcasting
/// moe.binary that convert-moe-to-linalg lowers (bias widened to out's type).
inline Value addDenseBias(OpBuilder &b, Location loc, Value out, Value bias) {
  auto type = cast<RankedTensorType>(out.getType());
  Value biasRow =
      tensor::ExpandShapeOp::create(b, loc, RankedTensorType::get({1, type.getDimSize(1)}, getElementTypeOrSelf(bias)),
                                    bias, ArrayRef<ReassociationIndices>{{0, 1}});
  if (getElementTypeOrSelf(bias) != type.getElementType())
    biasRow =
        arith::ExtFOp::create(b, loc, RankedTensorType::get({1, type.getDimSize(1)}, type.getElementType()), biasRow);
  return BinaryOp::create(b, loc, BinaryFn::add, out, biasRow);
}

} // namespace moe

#endif // MOE_CONVERSION_KERNELCONVERSION_H
