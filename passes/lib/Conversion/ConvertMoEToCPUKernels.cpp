//===- ConvertMoEToCPUKernels.cpp - convert-moe-to-cpu-kernels --*- C++ -*-===//
//
// Matrix products, routing and the dispatch -> experts -> combine chain become
// calls of the runtime's CPU kernels (runtime/include/moe/runtime/cpu_kernels.h).
// Operands travel as buffer addresses plus sizes and dtype codes, so one kernel
// symbol serves every element type.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"

#include "KernelOps.h"
#include "moe/Dialect/MoE/IR/ElementTypes.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "convert-moe-to-cpu-kernels"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOCPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The runtime's dtype code (moe_dtype_t) of a kernel operand: the ops' type
/// constraints admit only the element types ElementTypes.h maps.
int32_t dtypeCode(Type t) { return static_cast<int32_t>(*runtimeDType(t)); }

/// What the ops of one kernel call have in common: a builder at the op, the
/// argument list being built, and the kernel declaration.
class KernelCall {
public:
  KernelCall(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  /// The address of `tensor`'s buffer (read only).
  void input(Value tensor) { address(inputBuffer(b, loc, tensor)); }

  /// A fresh buffer for a result of `type` (dynamic sizes from `source`);
  /// returns it as a tensor.
  Value output(RankedTensorType type, Value source) {
    auto [buffer, tensor] = resultBuffer(b, loc, type, source);
    address(buffer);
    return tensor;
  }

  /// A null address (an absent optional operand).
  void none() { args.push_back(arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0))); }

  void i64(Value index) { args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(), index)); }
  void i64(int64_t v) { args.push_back(arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v))); }
  void i32(int32_t v) { args.push_back(arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v))); }
  void f64(double v) { args.push_back(arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v))); }
  void dtype(Value v) { i32(dtypeCode(getElementTypeOrSelf(v.getType()))); }

  /// Emits `call @name(args)`, declaring the kernel in `module` on first use.
  void call(ModuleOp module, StringRef name) {
    SmallVector<Type> types;
    for (Value a : args)
      types.push_back(a.getType());
    auto fnType = b.getFunctionType(types, {});
    if (!module.lookupSymbol<func::FuncOp>(name)) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto decl = func::FuncOp::create(b, loc, name, fnType);
      decl.setPrivate();
    }
    func::CallOp::create(b, loc, name, TypeRange{}, args);
  }

private:
  void address(Value buffer) {
    // aligned base + offset * element size: kernels take plain addresses.
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
    auto metadata = memref::ExtractStridedMetadataOp::create(b, loc, buffer);
    unsigned bytes = getElementTypeOrSelf(buffer.getType()).getIntOrFloatBitWidth() / 8;
    Value offset = arith::MulIOp::create(b, loc, metadata.getOffset(),
                                         arith::ConstantIndexOp::create(b, loc, bytes));
    Value addr = arith::AddIOp::create(b, loc, base, offset);
    args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(), addr));
  }

  OpBuilder &b;
  Location loc;
  SmallVector<Value> args;
};

Value dim(OpBuilder &b, Location loc, Value tensor, int64_t d) {
  return tensor::DimOp::create(b, loc, tensor, d);
}


/// The fused-kernel code of an expert FFN: 0 swiglu, 1 geglu, 2/3/4 mlp with
/// relu/gelu/silu, 5 identity (dispatch straight into combine).
int32_t ffnCode(ExpertFfnOp ffn) {
  if (!ffn)
    return 5;
  switch (ffn.getKind()) {
  case FfnKind::swiglu: return 0;
  case FfnKind::geglu: return 1;
  case FfnKind::mlp:
    switch (*ffn.getActivation()) {
    case Activation::relu: return 2;
    case Activation::gelu: return 3;
    case Activation::silu: return 4;
    }
  }
  return 5;
}

struct ConvertMoEToCPUKernels : mlir::moe::impl::ConvertMoEToCPUKernelsBase<ConvertMoEToCPUKernels> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(lowerKernelOps(module, "CPU", [&](IRRewriter &b, Operation *op) { return lower(b, module, op); })))
      signalPassFailure();
  }

  LogicalResult lower(IRRewriter &b, ModuleOp module, Operation *op) {
    Location loc = op->getLoc();
    KernelCall k(b, loc);
    if (auto d = dyn_cast<DenseOp>(op)) {
      auto type = d.getResult().getType();
      k.input(d.getInput());
      k.input(d.getWeight());
      Value out = k.output(type, d.getInput());
      k.i64(dim(b, loc, d.getInput(), 0));
      k.i64(dim(b, loc, d.getInput(), 1));
      k.i64(type.getDimSize(1));
      k.dtype(d.getInput());
      k.dtype(d.getWeight());
      k.dtype(d.getResult());
      k.call(module, "moe_cpu_dense");
      if (Value bias = d.getBias())
        out = addDenseBias(b, loc, out, bias);
      b.replaceOp(op, out);
      return success();
    }
    if (auto t = dyn_cast<TopKOp>(op)) {
      Value logits = t.getLogits();
      k.input(logits);
      Value values = k.output(t.getValues().getType(), logits);
      Value indices = k.output(t.getIndices().getType(), logits);
      k.i64(dim(b, loc, logits, 0));
      k.i64(t.getNumExperts());
      k.i64(static_cast<int64_t>(t.getK()));
      k.i32(!t.getScore() ? 0 : *t.getScore() == ScoreFn::softmax ? 1 : 2);
      k.i32(t.getRenormalize() ? 1 : 0);
      k.f64(t.getScaleOrOne());
      k.dtype(logits);
      k.call(module, "moe_cpu_topk");
      b.replaceOp(op, ValueRange{values, indices});
      return success();
    }
    if (auto g = dyn_cast<GroupTopKOp>(op)) {
      Value scores = g.getScores();
      auto type = g.getIndices().getType();
      k.input(scores);
      Value indices = k.output(type, scores);
      k.i64(dim(b, loc, scores, 0));
      k.i64(cast<RankedTensorType>(scores.getType()).getDimSize(1));
      k.i64(static_cast<int64_t>(g.getK()));
      k.i64(static_cast<int64_t>(g.getGroups()));
      k.i64(static_cast<int64_t>(g.getTopGroups()));
      k.dtype(scores);
      k.call(module, "moe_cpu_group_topk");
      b.replaceOp(op, indices);
      return success();
    }
    if (auto g = dyn_cast<GatherOp>(op)) {
      auto type = g.getResult().getType();
      k.input(g.getInput());
      k.input(g.getIndices());
      Value out = k.output(type, g.getInput());
      k.i64(dim(b, loc, g.getInput(), 0));
      k.i64(dim(b, loc, g.getInput(), 1));
      k.i64(type.getDimSize(1));
      k.dtype(g.getInput());
      k.call(module, "moe_cpu_gather");
      b.replaceOp(op, out);
      return success();
    }
    if (auto l = dyn_cast<LoadBalanceLossOp>(op)) {
      k.input(l.getProbs());
      k.input(l.getIndices());
      Value out = k.output(l.getLoss().getType(), {});
      k.i64(dim(b, loc, l.getProbs(), 0));
      k.i64(cast<RankedTensorType>(l.getProbs().getType()).getDimSize(1));
      k.i64(cast<RankedTensorType>(l.getIndices().getType()).getDimSize(1));
      k.dtype(l.getProbs());
      k.call(module, "moe_cpu_load_balance_loss");
      b.replaceOp(op, out);
      return success();
    }
    if (auto z = dyn_cast<ZLossOp>(op)) {
      k.input(z.getLogits());
      Value out = k.output(z.getLoss().getType(), {});
      k.i64(dim(b, loc, z.getLogits(), 0));
      k.i64(dim(b, loc, z.getLogits(), 1));
      k.dtype(z.getLogits());
      k.call(module, "moe_cpu_z_loss");
      b.replaceOp(op, out);
      return success();
    }
    return lowerChain(b, module, cast<CombineOp>(op));
  }

  /// dispatch -> [expert_ffn] -> combine as one fused call.
  LogicalResult lowerChain(IRRewriter &b, ModuleOp module, CombineOp combine) {
    Location loc = combine.getLoc();
    FailureOr<RoutedChain> chain = matchRoutedChain(combine, "CPU");
    if (failed(chain))
      return failure();
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnOp ffn = chain->ffn;
    RoutedType type = dispatch.getRouted().getType();
    Value x = dispatch.getInput();
    KernelCall k(b, loc);
    k.input(x);
    k.input(dispatch.getIndices());
    k.input(combine.getWeights());
    SmallVector<Value> weights = ffn ? SmallVector<Value>(ffn.getWeights()) : SmallVector<Value>{};
    for (size_t i = 0; i < 3; ++i)
      i < weights.size() ? k.input(weights[i]) : k.none();
    auto resultType = combine.getResult().getType();
    Value out = k.output(resultType, x);
    k.i64(dim(b, loc, x, 0));
    k.i64(type.getHidden());
    k.i64(ffn ? ffn.getInnerDim() : 0);
    k.i64(type.getExperts());
    k.i64(type.getK());
    k.i32(ffnCode(ffn));
    k.f64(type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0);
    k.dtype(x);
    k.dtype(combine.getWeights());
    k.i32(weights.empty() ? 0 : dtypeCode(getElementTypeOrSelf(weights[0].getType())));
    k.dtype(combine.getResult());
    k.call(module, "moe_cpu_moe_ffn");
    b.replaceOp(combine, out);
    if (ffn && ffn->use_empty())
      b.eraseOp(ffn);
    return success();
  }
};

} // namespace
