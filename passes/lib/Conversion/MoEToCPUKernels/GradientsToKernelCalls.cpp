//===- GradientsToKernelCalls.cpp - the backward's CPU kernel calls -*- C++ -*-===//
//
// The backward ops moe-differentiate builds become calls of the runtime's
// backward kernels (cpu_kernels.h): a pattern per op, and for each routed
// chain's backward (combine_grad -> [expert_ffn_grad] -> dispatch_grad,
// rooted at its dispatch_grad) one fused call, as the forward's chain is one.
// The elementwise ones (unary, binary, reduce, softmax) are linalg's
// (convert-moe-to-linalg).
//
//===----------------------------------------------------------------------===//
#include "CPUKernelCall.h"

#include "../RuntimeAbi.h"
#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/KernelAbi.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

using namespace mlir;
using namespace moe;
using namespace moe::cpu_kernels;

namespace {

int64_t staticDim(Value v, int64_t d) { return cast<RankedTensorType>(v.getType()).getDimSize(d); }

struct DenseGradToKernelCall : KernelCallPattern<DenseGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(DenseGradOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value x = adaptor.getInput(), w = adaptor.getWeight(), dy = adaptor.getGrad();
    k.input(x);
    k.input(w);
    k.input(dy);
    Value dx = k.output(g.getInputGrad().getType(), x);
    Value dw = k.output(g.getWeightGrad().getType(), w);
    k.i64(dim(b, loc, x, 0));
    k.i64(staticDim(w, 0));
    k.i64(staticDim(w, 1));
    k.dtype(x);
    k.dtype(w);
    k.dtype(dy);
    // On a mesh one copy of the op forms each (PlaceOnMesh's gatherTokenSums).
    k.i32((g.getInputGrad().use_empty() ? 0 : MOE_GRAD_INPUT) | (g.getWeightGrad().use_empty() ? 0 : MOE_GRAD_WEIGHT));
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_dense_grad, b))))
      return failure();
    b.replaceOp(g, ValueRange{dx, dw});
    return success();
  }
};

struct RMSNormGradToKernelCall : KernelCallPattern<RMSNormGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(RMSNormGradOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value x = adaptor.getInput(), w = adaptor.getWeight();
    k.input(x);
    k.input(w);
    k.input(adaptor.getGrad());
    Value dx = k.output(g.getInputGrad().getType(), x);
    Value dw = k.output(g.getWeightGrad().getType(), w);
    k.i64(dim(b, loc, x, 0));
    k.i64(staticDim(x, 1));
    k.f64(g.getEps().convertToDouble());
    k.dtype(x);
    k.dtype(w);
    k.dtype(adaptor.getGrad()); // the output's type, which may differ from the input's
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_rmsnorm_grad, b))))
      return failure();
    b.replaceOp(g, ValueRange{dx, dw});
    return success();
  }
};

struct TopKGradToKernelCall : KernelCallPattern<TopKGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(TopKGradOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value logits = adaptor.getLogits();
    k.input(logits);
    k.input(adaptor.getIndices());
    k.input(adaptor.getGrad());
    Value out = k.output(g.getResult().getType(), logits);
    k.i64(dim(b, loc, logits, 0));
    k.i64(staticDim(logits, 1));
    k.i64(static_cast<int64_t>(g.getK()));
    std::optional<ScoreFn> score;
    if (auto s = g.getScore())
      score = *s;
    k.i32(kernelScore(score));
    k.i32(g.getRenormalize() ? 1 : 0);
    k.f64(g.getScale() ? g.getScale()->convertToDouble() : 1.0);
    k.dtype(logits);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_topk_grad, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

struct GatherGradToKernelCall : KernelCallPattern<GatherGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(GatherGradOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value idx = adaptor.getIndices();
    k.input(idx);
    k.input(adaptor.getGrad());
    Value out = k.output(g.getResult().getType(), idx);
    k.i64(dim(b, loc, idx, 0));
    k.i64(g.getResult().getType().getDimSize(1));
    k.i64(staticDim(idx, 1));
    k.dtype(adaptor.getGrad());
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_gather_grad, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

struct LoadBalanceLossGradToKernelCall : KernelCallPattern<LoadBalanceLossGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(LoadBalanceLossGradOp g, OpAdaptor adaptor,
                                ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value probs = adaptor.getProbs();
    k.input(probs);
    k.input(adaptor.getIndices());
    k.input(adaptor.getGrad());
    Value out = k.output(g.getResult().getType(), probs);
    k.i64(dim(b, loc, probs, 0));
    k.i64(staticDim(probs, 1));
    k.i64(staticDim(adaptor.getIndices(), 1));
    k.dtype(probs);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_load_balance_loss_grad, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

struct ZLossGradToKernelCall : KernelCallPattern<ZLossGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(ZLossGradOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value logits = adaptor.getLogits();
    k.input(logits);
    k.input(adaptor.getGrad());
    Value out = k.output(g.getResult().getType(), logits);
    k.i64(dim(b, loc, logits, 0));
    k.i64(staticDim(logits, 1));
    k.dtype(logits);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_z_loss_grad, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

/// combine_grad -> [expert_ffn_grad] -> dispatch_grad as one fused call.
struct RoutedChainGradToKernelCall : KernelCallPattern<DispatchGradOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(DispatchGradOp root, OpAdaptor, ConversionPatternRewriter &b) const override {
    FailureOr<RoutedChainGrad> chain = matchRoutedChainGrad(root, "CPU");
    if (failed(chain))
      return failure();
    Location loc = root.getLoc();
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnGradOp ffnGrad = chain->ffnGrad;
    CombineGradOp combineGrad = chain->combineGrad;
    RoutedType type = dispatch.getRouted().getType();
    Value x = b.getRemappedValue(dispatch.getInput());
    Value weights = b.getRemappedValue(combineGrad.getWeights());
    KernelCall k(b, loc);
    k.input(x);
    k.input(b.getRemappedValue(dispatch.getIndices()));
    k.input(weights);
    SmallVector<Value> stacked;
    if (ffnGrad)
      for (Value w : ffnGrad.getWeights())
        stacked.push_back(b.getRemappedValue(w));
    for (size_t i = 0; i < 3; ++i)
      i < stacked.size() ? k.input(stacked[i]) : k.none();
    Value dout = b.getRemappedValue(combineGrad.getGrad());
    k.input(dout);
    Value dx = k.output(root.getResult().getType(), x);
    Value dweights = k.output(combineGrad.getWeightsGrad().getType(), weights);
    SmallVector<Value> dstacked;
    for (size_t i = 0; i < 3; ++i) {
      if (i < stacked.size())
        dstacked.push_back(k.output(cast<RankedTensorType>(stacked[i].getType()), stacked[i]));
      else
        k.none();
    }
    k.i64(dim(b, loc, x, 0));
    k.i64(type.getHidden());
    k.i64(ffnGrad ? staticDim(stacked[0], 2) : 0);
    k.i64(type.getExperts());
    k.i64(type.getK());
    std::optional<Activation> activation;
    if (ffnGrad && ffnGrad.getActivation())
      activation = *ffnGrad.getActivation();
    k.i32(ffnGrad ? kernelFfn(ffnGrad.getKind(), activation) : MOE_FFN_IDENTITY);
    k.f64(type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0);
    k.dtype(x);
    k.dtype(weights);
    k.i32(stacked.empty() ? 0 : dtypeCode(getElementTypeOrSelf(stacked[0].getType())));
    k.dtype(dout);
    if (failed(callRoutedChainKernel(k, chain->toExperts, MOE_RUNTIME_ENTRY_POINT(moe_cpu_moe_ffn_grad, b),
                                     MOE_RUNTIME_ENTRY_POINT(moe_cpu_moe_ffn_ep_grad, b))))
      return failure();
    // The routed cotangents between the three ops (and their exchanges) were
    // internal to the call.
    b.replaceOp(root, dx);
    if (chain->fromExperts)
      b.eraseOp(chain->fromExperts);
    if (chain->toExperts)
      b.eraseOp(chain->toExperts);
    if (ffnGrad) {
      SmallVector<SmallVector<Value>> results{{}};
      for (Value d : dstacked)
        results.push_back({d});
      b.replaceOpWithMultiple(ffnGrad, std::move(results));
    }
    b.replaceOpWithMultiple(combineGrad, {{}, {dweights}});
    return success();
  }
};

} // namespace

void moe::populateMoEGradientsToCPUKernelsPatterns(RewritePatternSet &patterns) {
  patterns.add<DenseGradToKernelCall, RMSNormGradToKernelCall, TopKGradToKernelCall, GatherGradToKernelCall,
               LoadBalanceLossGradToKernelCall, ZLossGradToKernelCall, RoutedChainGradToKernelCall>(
      patterns.getContext());
}
