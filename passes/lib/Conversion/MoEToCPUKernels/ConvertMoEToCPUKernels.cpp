//===- ConvertMoEToCPUKernels.cpp - convert-moe-to-cpu-kernels --*- C++ -*-===//
//
// Matrix products, routing and the dispatch -> experts -> combine chain become
// calls of the runtime's CPU kernels (runtime/include/moe/runtime/cpu_kernels.h),
// a conversion pattern per op (populateMoEToCPUKernelsPatterns). Operands
// travel as buffer addresses plus sizes and dtype codes, so one kernel symbol
// serves every element type.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"

#include "../KernelConversion.h"
#include "../RuntimeAbi.h"
#include "CPUKernelCall.h"
#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/IR/KernelAbi.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/IR/SymbolTable.h"

#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "convert-moe-to-cpu-kernels"

namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOCPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;
using namespace moe::cpu_kernels;

namespace {

struct DenseToKernelCall : KernelCallPattern<DenseOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(DenseOp d, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = d.getLoc();
    KernelCall k(b, loc);
    auto type = d.getResult().getType();
    Value input = adaptor.getInput();
    k.input(input);
    k.input(adaptor.getWeight());
    Value out = k.output(type, input);
    k.i64(dim(b, loc, input, 0));
    k.i64(dim(b, loc, input, 1));
    k.i64(type.getDimSize(1));
    k.dtype(input);
    k.dtype(adaptor.getWeight());
    k.dtype(d.getResult());
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_dense, b))))
      return failure();
    if (Value bias = adaptor.getBias())
      out = addDenseBias(b, loc, out, bias);
    b.replaceOp(d, out);
    return success();
  }
};

struct TopKToKernelCall : KernelCallPattern<TopKOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(TopKOp t, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = t.getLoc();
    KernelCall k(b, loc);
    Value logits = adaptor.getLogits();
    k.input(logits);
    Value values = k.output(t.getValues().getType(), logits);
    Value indices = k.output(t.getIndices().getType(), logits);
    k.i64(dim(b, loc, logits, 0));
    k.i64(t.getNumExperts());
    k.i64(static_cast<int64_t>(t.getK()));
    k.i32(kernelScore(t.getScore()));
    k.i32(t.getRenormalize() ? 1 : 0);
    k.f64(t.getScaleOrOne());
    k.dtype(logits);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_topk, b))))
      return failure();
    b.replaceOp(t, ValueRange{values, indices});
    return success();
  }
};

struct GroupTopKToKernelCall : KernelCallPattern<GroupTopKOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(GroupTopKOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    Value scores = adaptor.getScores();
    k.input(scores);
    Value indices = k.output(g.getIndices().getType(), scores);
    k.i64(dim(b, loc, scores, 0));
    k.i64(cast<RankedTensorType>(scores.getType()).getDimSize(1));
    k.i64(static_cast<int64_t>(g.getK()));
    k.i64(static_cast<int64_t>(g.getGroups()));
    k.i64(static_cast<int64_t>(g.getTopGroups()));
    k.dtype(scores);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_group_topk, b))))
      return failure();
    b.replaceOp(g, indices);
    return success();
  }
};

struct GatherToKernelCall : KernelCallPattern<GatherOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(GatherOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    KernelCall k(b, loc);
    auto type = g.getResult().getType();
    Value input = adaptor.getInput();
    k.input(input);
    k.input(adaptor.getIndices());
    Value out = k.output(type, input);
    k.i64(dim(b, loc, input, 0));
    k.i64(dim(b, loc, input, 1));
    k.i64(type.getDimSize(1));
    k.dtype(input);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_gather, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

struct LoadBalanceLossToKernelCall : KernelCallPattern<LoadBalanceLossOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(LoadBalanceLossOp l, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = l.getLoc();
    KernelCall k(b, loc);
    Value probs = adaptor.getProbs(), indices = adaptor.getIndices();
    k.input(probs);
    k.input(indices);
    Value out = k.output(l.getLoss().getType(), {});
    k.i64(dim(b, loc, probs, 0));
    k.i64(cast<RankedTensorType>(probs.getType()).getDimSize(1));
    k.i64(cast<RankedTensorType>(indices.getType()).getDimSize(1));
    k.dtype(probs);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_load_balance_loss, b))))
      return failure();
    b.replaceOp(l, out);
    return success();
  }
};

struct ZLossToKernelCall : KernelCallPattern<ZLossOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(ZLossOp z, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = z.getLoc();
    KernelCall k(b, loc);
    Value logits = adaptor.getLogits();
    k.input(logits);
    Value out = k.output(z.getLoss().getType(), {});
    k.i64(dim(b, loc, logits, 0));
    k.i64(dim(b, loc, logits, 1));
    k.dtype(logits);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_cpu_z_loss, b))))
      return failure();
    b.replaceOp(z, out);
    return success();
  }
};

/// The elements of a tensor value (its dynamic sizes read at run time).
Value numElements(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  Value n = arith::ConstantIndexOp::create(b, loc, 1);
  for (int64_t d = 0; d < type.getRank(); ++d)
    n = arith::MulIOp::create(b, loc, n,
                              type.isDynamicDim(d) ? dim(b, loc, tensor, d)
                                                   : arith::ConstantIndexOp::create(b, loc, type.getDimSize(d)));
  return n;
}

Value bytesOf(OpBuilder &b, Location loc, Value elements, Type elementType) {
  unsigned size = elementType.getIntOrFloatBitWidth() / 8;
  return arith::MulIOp::create(b, loc, elements, arith::ConstantIndexOp::create(b, loc, size));
}

/// moe.all_gather: equal chunks (FSDP) or, with a dynamic gather dimension
/// 0, each rank's rows (the auxiliary losses' tokens), sized by a first call.
struct AllGatherToCall : KernelCallPattern<AllGatherOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(AllGatherOp g, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = g.getLoc();
    FailureOr<int32_t> axes = collectiveAxes(g, g.getAxes());
    if (failed(axes))
      return failure();
    Value input = adaptor.getInput();
    auto type = cast<RankedTensorType>(g.getResult().getType());
    Type element = type.getElementType();
    if (g.getGatherDim() != 0)
      return g.emitError() << "the CPU backend gathers along dimension 0 only, got gather_dim = " << g.getGatherDim();
    for (int64_t d = 1; d < type.getRank(); ++d)
      if (type.isDynamicDim(d))
        return g.emitError() << "the CPU backend gathers rows of a static size, got " << type;
    if (!type.isDynamicDim(0)) {
      auto [buffer, out] = resultBuffer(b, loc, type, input);
      KernelCall call(b, loc);
      call.input(input);
      call.buffer(buffer);
      auto in = cast<RankedTensorType>(input.getType());
      if (in.hasStaticShape())
        call.i64(in.getNumElements() * element.getIntOrFloatBitWidth() / 8);
      else
        call.i64(bytesOf(b, loc, numElements(b, loc, input), element));
      call.i32(*axes);
      if (failed(call.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_all_gather, b))))
        return failure();
      b.replaceOp(g, out);
      return success();
    }
    Value rows = dim(b, loc, input, 0);
    KernelCall count(b, loc);
    count.i64(rows);
    count.i32(*axes);
    Value total;
    if (failed(count.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_gathered_rows, b), &total)))
      return failure();
    Value totalIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), total);
    auto memrefType = MemRefType::get(type.getShape(), element);
    Value buffer = memref::AllocOp::create(b, loc, memrefType, ValueRange{totalIndex});
    Value out = bufferization::ToTensorOp::create(b, loc, type, buffer, /*restrict=*/true, /*writable=*/true);
    int64_t rowElements = 1;
    for (int64_t d = 1; d < type.getRank(); ++d)
      rowElements *= type.getDimSize(d);
    KernelCall k(b, loc);
    k.input(input);
    k.buffer(buffer);
    k.i64(rows);
    k.i64(rowElements * element.getIntOrFloatBitWidth() / 8);
    k.i32(*axes);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_all_gather_rows, b))))
      return failure();
    b.replaceOp(g, out);
    return success();
  }
};

struct AllReduceToCall : KernelCallPattern<AllReduceOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(AllReduceOp r, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = r.getLoc();
    FailureOr<int32_t> axes = collectiveAxes(r, r.getAxes());
    if (failed(axes))
      return failure();
    Value input = adaptor.getInput();
    auto type = cast<RankedTensorType>(r.getResult().getType());
    if (!isa<FloatType>(type.getElementType()))
      return r.emitError() << "the CPU backend all-reduces float tensors, got " << type;
    KernelCall k(b, loc);
    k.input(input);
    Value out = k.output(type, input);
    if (type.hasStaticShape())
      k.i64(type.getNumElements());
    else
      k.i64(numElements(b, loc, input));
    k.dtype(input);
    k.i32(kernelReduction(r.getReduction()));
    k.i32(*axes);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_all_reduce, b))))
      return failure();
    b.replaceOp(r, out);
    return success();
  }
};

struct ReduceScatterToCall : KernelCallPattern<ReduceScatterOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(ReduceScatterOp r, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = r.getLoc();
    FailureOr<int32_t> axes = collectiveAxes(r, r.getAxes());
    if (failed(axes))
      return failure();
    auto type = cast<RankedTensorType>(r.getResult().getType());
    if (r.getScatterDim() != 0 || !type.hasStaticShape() || !isa<FloatType>(type.getElementType()))
      return r.emitError() << "the CPU backend reduce-scatters static float tensors along dimension 0, got " << type
                           << " scatter_dim = " << r.getScatterDim();
    KernelCall k(b, loc);
    k.input(adaptor.getInput());
    Value out = k.output(type, {});
    k.i64(type.getNumElements());
    k.dtype(adaptor.getInput());
    k.i32(kernelReduction(r.getReduction()));
    k.i32(*axes);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_reduce_scatter, b))))
      return failure();
    b.replaceOp(r, out);
    return success();
  }
};

/// Where this rank's rows start in their gather: the rows of the ranks before.
struct RowOffsetToCall : KernelCallPattern<RowOffsetOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(RowOffsetOp r, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = r.getLoc();
    FailureOr<int32_t> axes = collectiveAxes(r, r.getAxes());
    if (failed(axes))
      return failure();
    KernelCall k(b, loc);
    k.i64(dim(b, loc, adaptor.getInput(), 0));
    k.i32(*axes);
    Value before;
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_rows_before, b), &before)))
      return failure();
    b.replaceOp(r, arith::IndexCastOp::create(b, loc, b.getIndexType(), before).getResult());
    return success();
  }
};

/// A tensor all-to-all along dimension 0 (chunks are contiguous rows).
struct AllToAllToCall : KernelCallPattern<AllToAllOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(AllToAllOp a, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    if (isa<RoutedType>(a.getInput().getType()))
      return failure(); // part of a routed chain: its combine's pattern lowers it
    Location loc = a.getLoc();
    FailureOr<int32_t> axes = collectiveAxes(a, a.getAxes());
    if (failed(axes))
      return failure();
    auto type = cast<RankedTensorType>(a.getResult().getType());
    if (a.getSplitDim() != 0u || a.getConcatDim() != 0u || !type.hasStaticShape())
      return a.emitError() << "the CPU backend exchanges static tensors along dimension 0 (split_dim = concat_dim = "
                              "0), got "
                           << type;
    KernelCall k(b, loc);
    k.input(adaptor.getInput());
    Value out = k.output(type, {});
    // The chunk: the bytes over the group size (the verifier checked it divides).
    FailureOr<int64_t> size = groupSize(a);
    if (failed(size))
      return failure();
    k.i64(type.getNumElements() * type.getElementType().getIntOrFloatBitWidth() / 8 / *size);
    k.i32(*axes);
    if (failed(k.call(MOE_RUNTIME_ENTRY_POINT(moe_comm_all_to_all, b))))
      return failure();
    b.replaceOp(a, out);
    return success();
  }

  static FailureOr<int64_t> groupSize(AllToAllOp a) {
    auto mesh = SymbolTable::lookupNearestSymbolFrom<MeshOp>(a, a.getMeshAttr());
    if (!mesh)
      return a.emitError() << "no mesh " << a.getMeshAttr();
    int64_t n = 1;
    for (auto axis : a.getAxes().getAsValueRange<StringAttr>())
      n *= mesh.getAxisSize(axis).value_or(1);
    return n;
  }
};

/// dispatch -> [expert_ffn] -> combine as one fused call.
struct RoutedChainToKernelCall : KernelCallPattern<CombineOp> {
  using KernelCallPattern::KernelCallPattern;
  LogicalResult matchAndRewrite(CombineOp combine, OpAdaptor adaptor, ConversionPatternRewriter &b) const override {
    Location loc = combine.getLoc();
    FailureOr<RoutedChain> chain = matchRoutedChain(combine, "CPU");
    if (failed(chain))
      return failure();
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnOp ffn = chain->ffn;
    RoutedType type = dispatch.getRouted().getType();
    Value x = b.getRemappedValue(dispatch.getInput());
    KernelCall k(b, loc);
    k.input(x);
    k.input(b.getRemappedValue(dispatch.getIndices()));
    k.input(adaptor.getWeights());
    SmallVector<Value> weights;
    if (ffn)
      for (Value w : ffn.getWeights())
        weights.push_back(b.getRemappedValue(w));
    for (size_t i = 0; i < 3; ++i)
      i < weights.size() ? k.input(weights[i]) : k.none();
    auto resultType = combine.getResult().getType();
    Value out = k.output(resultType, x);
    k.i64(dim(b, loc, x, 0));
    k.i64(type.getHidden());
    k.i64(ffn ? ffn.getInnerDim() : 0);
    k.i64(type.getExperts());
    k.i64(type.getK());
    k.i32(kernelFfn(ffn));
    k.f64(type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0);
    k.dtype(x);
    k.dtype(adaptor.getWeights());
    k.i32(weights.empty() ? 0 : dtypeCode(getElementTypeOrSelf(weights[0].getType())));
    k.dtype(combine.getResult());
    // Expert parallel: the same kernel with the exchanges around its experts.
    if (failed(callRoutedChainKernel(k, chain->toExperts, MOE_RUNTIME_ENTRY_POINT(moe_cpu_moe_ffn, b),
                                     MOE_RUNTIME_ENTRY_POINT(moe_cpu_moe_ffn_ep, b))))
      return failure();
    b.replaceOp(combine, out);
    return success();
  }
};

struct ConvertMoEToCPUKernels : moe::impl::ConvertMoEToCPUKernelsBase<ConvertMoEToCPUKernels> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkRoutedChains(module, "CPU")) || failed(checkRoutedChainGrads(module, "CPU")))
      return signalPassFailure();
    // Collectives over axes the runtime has no groups for, refused before
    // the conversion (so that no pattern fails halfway).
    WalkResult axes = module.walk([](Operation *op) {
      auto names = op->getAttrOfType<ArrayAttr>("axes");
      if (!isa<AllGatherOp, AllReduceOp, ReduceScatterOp, AllToAllOp, RowOffsetOp>(op) || !names || kernelAxes(names))
        return WalkResult::advance();
      op->emitError() << "the CPU runtime's meshes have the axes rep, dp and ep; got " << names;
      return WalkResult::interrupt();
    });
    if (axes.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    populateMoEToCPUKernelsPatterns(patterns);
    populateMoEGradientsToCPUKernelsPatterns(patterns);
    if (failed(applyKernelConversion(module, std::move(patterns), "CPU")))
      signalPassFailure();
  }
};

} // namespace

void moe::populateMoEToCPUKernelsPatterns(RewritePatternSet &patterns) {
  patterns.add<DenseToKernelCall, TopKToKernelCall, GroupTopKToKernelCall, GatherToKernelCall,
               LoadBalanceLossToKernelCall, ZLossToKernelCall, RoutedChainToKernelCall, AllGatherToCall,
               AllReduceToCall, ReduceScatterToCall, AllToAllToCall, RowOffsetToCall>(patterns.getContext());
}
