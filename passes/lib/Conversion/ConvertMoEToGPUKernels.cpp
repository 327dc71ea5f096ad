//===- ConvertMoEToGPUKernels.cpp - convert-moe-to-gpu-kernels --*- C++ -*-===//
//
// Routing, matrix products and each dispatch -> experts -> combine chain
// become launches of kernels generated for this layer (GPUKernels/), parsed
// into `gpu.module @moe_kernels`. Operands are passed as flat 1-D memrefs;
// token counts are the only run-time sizes, so grids are computed in the host
// code from them.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"

#include "GPUKernels/RuntimeAbi.h"
#include "GPUKernels/Kernels.h"
#include "KernelOps.h"
#include "moe/Dialect/MoE/IR/ElementTypes.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "convert-moe-to-gpu-kernels"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
namespace gk = mlir::moe::gpu_kernels;

namespace {

/// The kernels' name of an operand's element type: the ops' type constraints
/// admit only the element types ElementTypes.h maps.
std::string eltName(Type t) { return kernelTypeName(*runtimeDType(t)); }

/// The layer's kernel module and what has been generated into it.
class KernelModule {
public:
  KernelModule(ModuleOp module) : module(module) {}

  /// @moe_kernels, created (with the container attribute) on first use.
  gpu::GPUModuleOp kernelModule() {
    if (kernels)
      return kernels;
    OpBuilder b(module.getContext());
    module->setAttr("gpu.container_module", b.getUnitAttr());
    kernels = module.lookupSymbol<gpu::GPUModuleOp>("moe_kernels");
    if (!kernels) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "moe_kernels");
      // The dynamic shared memory the tensor-core kernels address (an extern
      // array, which the NVPTX back end leaves alone), aligned for wgmma's
      // 128-byte swizzle, which repeats every 1 KiB of addresses.
      b.setInsertionPointToStart(kernels.getBody());
      LLVM::GlobalOp::create(b, module.getLoc(), LLVM::LLVMArrayType::get(b.getI8Type(), 0), /*isConstant=*/false,
                             LLVM::Linkage::External, "moe_smem", Attribute(), /*alignment=*/1024, /*addrSpace=*/3);
    }
    return kernels;
  }

  /// The kernel `name`, parsed from `text` on first use.
  FailureOr<gpu::GPUFuncOp> get(Location loc, const std::string &name, const std::function<std::string()> &text) {
    gpu::GPUModuleOp kernels = kernelModule();
    if (auto fn = kernels.lookupSymbol<gpu::GPUFuncOp>(name))
      return fn;
    std::string source = "gpu.module @moe_parse {\n  llvm.mlir.global external @moe_smem() {addr_space = 3 : i32, "
                         "alignment = 1024 : i64} : !llvm.array<0 x i8>\n" +
                         text() + "}\n";
    ParserConfig config(module.getContext());
    OwningOpRef<ModuleOp> parsed = parseSourceString<ModuleOp>(source, config, name);
    if (!parsed)
      return emitError(loc) << "internal error: generated kernel " << name << " does not parse";
    auto holder = *parsed->getOps<gpu::GPUModuleOp>().begin();
    auto fn = *holder.getOps<gpu::GPUFuncOp>().begin();
    fn->moveBefore(kernels.getBody(), kernels.getBody()->end());
    return fn;
  }

private:
  ModuleOp module;
  gpu::GPUModuleOp kernels;
};

/// Host-side helpers at one op: flat buffer views, scratch, launches.
class Host {
public:
  Host(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value dim(Value tensor, int64_t d) { return tensor::DimOp::create(b, loc, tensor, d); }
  Value mul(Value a, Value c) { return arith::MulIOp::create(b, loc, a, c); }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }
  Value ceilDiv(Value a, int64_t d) { return arith::CeilDivUIOp::create(b, loc, a, index(d)); }

  /// `memref` as memref<?xT> (identity layouts only, which bufferization gives us).
  Value flatten(Value memref) {
    auto type = cast<MemRefType>(memref.getType());
    if (type.getRank() == 0) {
      memref = memref::ExpandShapeOp::create(b, loc, MemRefType::get({1}, type.getElementType()), memref,
                                             ArrayRef<ReassociationIndices>{}, ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    } else if (type.getRank() > 1) {
      ReassociationIndices all;
      for (int64_t d = 0; d < type.getRank(); ++d)
        all.push_back(d);
      memref = memref::CollapseShapeOp::create(b, loc, memref, ArrayRef<ReassociationIndices>{all});
    }
    auto flat = MemRefType::get({ShapedType::kDynamic}, type.getElementType());
    if (memref.getType() != flat)
      memref = memref::CastOp::create(b, loc, flat, memref);
    return memref;
  }

  /// A tensor operand's buffer, flat.
  Value input(Value tensor) { return flatten(inputBuffer(b, loc, tensor)); }

  /// A fresh result buffer of `type` (dynamic sizes from `source`): the tensor
  /// (for the rest of the IR) and its flat buffer.
  std::pair<Value, Value> output(RankedTensorType type, Value source) {
    auto [buffer, tensor] = resultBuffer(b, loc, type, source);
    return {tensor, flatten(buffer)};
  }

  /// Scratch device memory of `count` elements of `elt`.
  Value scratch(Type elt, Value count) {
    return memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, elt), ValueRange{count});
  }
  Value scratch(Type elt, int64_t count) { return scratch(elt, index(count)); }

  void launch(gpu::GPUFuncOp fn, Value gridX, Value gridY, int64_t threads, int64_t sharedBytes, ValueRange args) {
    Value one = index(1);
    gpu::LaunchFuncOp::create(b, loc, fn, gpu::KernelDim3{gridX, gridY, one}, gpu::KernelDim3{index(threads), one, one},
                              sharedBytes ? arith::ConstantIntOp::create(b, loc, sharedBytes, 32).getResult() : Value(),
                              args);
  }

  OpBuilder &b;
  Location loc;
};


struct ConvertMoEToGPUKernels : mlir::moe::impl::ConvertMoEToGPUKernelsBase<ConvertMoEToGPUKernels> {
  using Base::Base;

  /// The options as the typed struct (parseGPUKernelOptions).
  GPUKernelOptions options() const {
    return {chip, gemm, gemmKTile, gemmN, gemmEpilogue, gemmTma, gemmPersistent};
  }

  /// The k depth of an mma.sync GEMM's stages (the default 32 x 4 stages ran
  /// faster than 64 x 3, which spills a few registers under the 128-register
  /// bound: docs/gpu.md, "Measured choices").
  int64_t kTile() const { return gemmKTile; }

  /// The GEMMs' tensor-core instructions: the `gemm` option, or the chip's.
  GemmEngine engine = GemmEngine::Mma;

  /// A tensor-core GEMM's engine: wgmma where asked for and its 64-deep
  /// stages divide k, else mma.sync with the k tile already chosen; and
  /// wgmma's block width.
  void chooseEngine(gk::GemmConfig &c, const std::string &weightElt) const {
    if (engine == GemmEngine::Wgmma && c.tensorCores && gk::tensorCoresFit(c.elt, weightElt, c.k, c.n, 64)) {
      c.wgmma = true;
      c.kTile = 64;
      // 256-column blocks move a third less data per multiply-add (faster
      // on an H200: docs/gpu.md, "Measured choices") where the product is
      // wide enough to fill them; narrow ones (a router's few experts) keep 128.
      c.wgmmaN = gemmN ? gemmN : c.n >= (c.glu ? 128 : 256) ? 256 : 128;
      c.stagedEpilogue = gemmEpilogue == GemmEpilogue::Staged;
      // TMA on the 256-column blocks only: under the 128 registers of the
      // two-block variant ptxas serialises the wgmma of some TMA kernels
      // (k 320, n 192), and the narrow products that get 128 are small.
      c.tmaB = gemmTma && c.wgmmaN == 256;
      // Persistent: 256 columns, no TMA, outputs of 2 bytes (f32 rows leave
      // no room for the epilogue past four stages), more k steps than the
      // copies run ahead.
      c.persistent = gemmPersistent && c.wgmmaN == 256 && !c.tmaB && c.out != "f32" && c.k / 64 > 2;
    }
  }

  void runOnOperation() override {
    if (gemmKTile != 32 && gemmKTile != 64) {
      emitError(getOperation().getLoc()) << "gemm-k-tile must be 32 or 64, not " << static_cast<int64_t>(gemmKTile);
      return signalPassFailure();
    }
    if (gemmN != 0 && gemmN != 128 && gemmN != 256) {
      emitError(getOperation().getLoc()) << "gemm-n must be 128 or 256, not " << static_cast<int64_t>(gemmN);
      return signalPassFailure();
    }
    engine = gemm != GemmEngine::Auto ? GemmEngine(gemm) : chip == "sm_90a" ? GemmEngine::Wgmma : GemmEngine::Mma;
    if (engine == GemmEngine::Wgmma && chip != "sm_90a") {
      emitError(getOperation().getLoc()) << "gemm=wgmma needs chip sm_90a, not " << chip;
      return signalPassFailure();
    }
    ModuleOp module = getOperation();
    LLVM_DEBUG(llvm::dbgs() << "lowering to GPU kernels for " << chip << " with "
                            << (engine == GemmEngine::Wgmma ? "wgmma" : "mma") << " GEMMs, k tile "
                            << kTile() << "\n");
    KernelModule kernels(module);
    if (failed(lowerKernelOps(module, "GPU", [&](IRRewriter &b, Operation *op) { return lower(b, kernels, op); })))
      signalPassFailure();
  }

  /// The private declaration of runtime function `name` (one of ours in the
  /// runtime's mgpu ABI library), added to the module on first use.
  func::FuncOp runtimeFunction(Host &h, StringRef name, FunctionType type) {
    OpBuilder &b = h.b;
    ModuleOp module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
    if (auto existing = module.lookupSymbol<func::FuncOp>(name))
      return existing;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto callee = func::FuncOp::create(b, h.loc, name, type);
    callee.setPrivate();
    return callee;
  }

  /// The extra kernel operands of a TMA GEMM (none otherwise): the device
  /// addresses of tensor maps for B0 and B1, each seen as [experts][k][n],
  /// made by the runtime's moeCudaTensorMap (once per tensor).
  SmallVector<Value> tensorMaps(Host &h, const gk::GemmConfig &c, Value b0, Value b1, int64_t experts) {
    if (!c.tmaB)
      return {};
    OpBuilder &b = h.b;
    Type i64 = b.getI64Type();
    func::FuncOp callee = runtimeFunction(h, MOE_RUNTIME_ENTRY_POINT(moeCudaTensorMap, b));
    auto constant = [&](int64_t v) { return arith::ConstantIntOp::create(b, h.loc, v, 64).getResult(); };
    auto mapOf = [&](Value w) {
      Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, h.loc, w);
      Value base = arith::IndexCastOp::create(b, h.loc, i64, p);
      SmallVector<Value> args{base, constant(c.elt == "bf16"), constant(c.n), constant(c.k), constant(experts),
                              constant(64), constant(64)};
      return func::CallOp::create(b, h.loc, callee, args).getResult(0);
    };
    // Without a GLU both arguments name the same weights: one lookup serves both.
    Value first = mapOf(b0);
    return {first, b1 == b0 ? first : mapOf(b1)};
  }

  /// A GEMM's grid: `blocks`, or for a persistent kernel one block an SM
  /// (the runtime's moeCudaMultiprocessors) when there are more.
  Value gemmGrid(Host &h, const gk::GemmConfig &c, Value blocks) {
    if (!c.persistent)
      return blocks;
    OpBuilder &b = h.b;
    func::FuncOp callee = runtimeFunction(h, MOE_RUNTIME_ENTRY_POINT(moeCudaMultiprocessors, b));
    Value sms = func::CallOp::create(b, h.loc, callee, ValueRange{}).getResult(0);
    Value smsIndex = arith::IndexCastOp::create(b, h.loc, b.getIndexType(), sms);
    return arith::MinUIOp::create(b, h.loc, blocks, smsIndex);
  }

  /// Placeholders for a GEMM's unused operands.
  struct Unused {
    Value i32s, f32s;
  };
  Unused unused(Host &h) {
    return {h.scratch(h.b.getI32Type(), 1), h.scratch(h.b.getF32Type(), 1)};
  }

  LogicalResult lower(IRRewriter &b, KernelModule &kernels, Operation *op) {
    Location loc = op->getLoc();
    Host h(b, loc);
    if (auto d = dyn_cast<DenseOp>(op))
      return lowerDense(h, kernels, d);
    if (auto t = dyn_cast<TopKOp>(op)) {
      Value logits = t.getLogits();
      auto logitsType = cast<RankedTensorType>(logits.getType());
      gk::TopKConfig c;
      c.logits = eltName(logitsType);
      c.values = eltName(t.getValues().getType());
      c.experts = logitsType.getDimSize(1);
      c.k = static_cast<int64_t>(t.getK());
      c.score = !t.getScore() ? 0 : *t.getScore() == ScoreFn::softmax ? 1 : 2;
      c.renormalize = t.getRenormalize();
      c.scale = t.getScaleOrOne();
      auto fn = kernels.get(loc, c.name(), [&] { return gk::topKKernel(c); });
      if (failed(fn))
        return failure();
      Value rows = h.dim(logits, 0);
      Value in = h.input(logits);
      auto [values, valuesBuf] = h.output(t.getValues().getType(), logits);
      auto [indices, indicesBuf] =
          h.output(t.getIndices().getType(), logits);
      h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1), gk::kRoutingThreads, 0,
               {in, valuesBuf, indicesBuf, rows});
      b.replaceOp(op, ValueRange{values, indices});
      return success();
    }
    if (auto g = dyn_cast<GroupTopKOp>(op)) {
      Value scores = g.getScores();
      auto scoresType = cast<RankedTensorType>(scores.getType());
      gk::GroupTopKConfig c;
      c.scores = eltName(scoresType);
      c.experts = scoresType.getDimSize(1);
      c.k = static_cast<int64_t>(g.getK());
      c.groups = static_cast<int64_t>(g.getGroups());
      c.topGroups = static_cast<int64_t>(g.getTopGroups());
      auto fn = kernels.get(loc, c.name(), [&] { return gk::groupTopKKernel(c); });
      if (failed(fn))
        return failure();
      Value rows = h.dim(scores, 0);
      Value in = h.input(scores);
      auto type = g.getIndices().getType();
      auto [indices, indicesBuf] = h.output(type, scores);
      h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1), gk::kRoutingThreads, 0, {in, indicesBuf, rows});
      b.replaceOp(op, indices);
      return success();
    }
    if (auto g = dyn_cast<GatherOp>(op)) {
      auto type = g.getResult().getType();
      gk::GatherConfig c;
      c.elt = eltName(type);
      c.cols = cast<RankedTensorType>(g.getInput().getType()).getDimSize(1);
      c.k = type.getDimSize(1);
      auto fn = kernels.get(loc, c.name(), [&] { return gk::gatherKernel(c); });
      if (failed(fn))
        return failure();
      Value rows = h.dim(g.getInput(), 0);
      Value in = h.input(g.getInput()), idx = h.input(g.getIndices());
      auto [out, outBuf] = h.output(type, g.getInput());
      h.launch(*fn, h.ceilDiv(h.mul(rows, h.index(c.k)), 256), h.index(1), 256, 0, {in, idx, outBuf, rows});
      b.replaceOp(op, out);
      return success();
    }
    if (auto l = dyn_cast<LoadBalanceLossOp>(op)) {
      auto probsType = cast<RankedTensorType>(l.getProbs().getType());
      std::string elt = eltName(probsType);
      int64_t experts = probsType.getDimSize(1);
      int64_t k = cast<RankedTensorType>(l.getIndices().getType()).getDimSize(1);
      auto fn = kernels.get(loc, gk::loadBalanceName(elt, experts, k),
                            [&] { return gk::loadBalanceKernel(elt, experts, k); });
      if (failed(fn))
        return failure();
      Value rows = h.dim(l.getProbs(), 0);
      Value probs = h.input(l.getProbs()), idx = h.input(l.getIndices());
      auto [out, outBuf] = h.output(l.getLoss().getType(), {});
      h.launch(*fn, h.index(1), h.index(1), gk::kStridedBlock, 0, {probs, idx, outBuf, rows});
      b.replaceOp(op, out);
      return success();
    }
    if (auto z = dyn_cast<ZLossOp>(op)) {
      auto logitsType = cast<RankedTensorType>(z.getLogits().getType());
      std::string elt = eltName(logitsType);
      int64_t experts = logitsType.getDimSize(1);
      auto fn = kernels.get(loc, gk::zLossName(elt, experts), [&] { return gk::zLossKernel(elt, experts); });
      if (failed(fn))
        return failure();
      Value rows = h.dim(z.getLogits(), 0);
      Value logits = h.input(z.getLogits());
      auto [out, outBuf] = h.output(z.getLoss().getType(), {});
      h.launch(*fn, h.index(1), h.index(1), gk::kStridedBlock, 0, {logits, outBuf, rows});
      b.replaceOp(op, out);
      return success();
    }
    return lowerChain(h, kernels, cast<CombineOp>(op));
  }

  LogicalResult lowerDense(Host &h, KernelModule &kernels, DenseOp d) {
    auto type = d.getResult().getType();
    auto inType = cast<RankedTensorType>(d.getInput().getType());
    auto wType = cast<RankedTensorType>(d.getWeight().getType());
    gk::GemmConfig c;
    c.elt = eltName(inType);
    c.out = eltName(type);
    c.k = inType.getDimSize(1);
    c.n = type.getDimSize(1);
    if (eltName(wType) != c.elt)
      return d.emitError() << "the GPU backend needs moe.dense's input and weight of one element type, not "
                           << inType.getElementType() << " and " << wType.getElementType();
    if (gk::NarrowDenseConfig::fits(c.elt, c.k, c.n))
      return lowerNarrowDense(h, kernels, d, {c.elt, c.out, c.k, c.n});
    c.kTile = kTile();
    c.tensorCores = gk::tensorCoresFit(c.elt, eltName(wType), c.k, c.n, c.kTile);
    chooseEngine(c, eltName(wType));
    auto fn = kernels.get(d.getLoc(), c.name(), [&] { return gk::gemmKernel(c); });
    if (failed(fn))
      return failure();
    Value rows = h.dim(d.getInput(), 0);
    Value a = h.input(d.getInput()), w = h.input(d.getWeight());
    auto [out, outBuf] = h.output(type, d.getInput());
    Unused u = unused(h);
    SmallVector<Value> args{a, w, w, outBuf, u.i32s, u.i32s, u.i32s, u.i32s, u.i32s, u.f32s, rows, h.index(1)};
    llvm::append_range(args, tensorMaps(h, c, w, w, 1));
    h.launch(*fn, gemmGrid(h, c, h.mul(h.ceilDiv(rows, c.blockM()), h.index(c.columnBlocks()))), h.index(1), c.threads(),
             c.sharedBytes(), args);
    if (Value bias = d.getBias())
      out = addDenseBias(h.b, h.loc, out, bias);
    static_cast<IRRewriter &>(h.b).replaceOp(d, out);
    return success();
  }

  /// A product with few output columns (a router): a block a few tokens.
  LogicalResult lowerNarrowDense(Host &h, KernelModule &kernels, DenseOp d, const gk::NarrowDenseConfig &c) {
    auto fn = kernels.get(d.getLoc(), c.name(), [&] { return gk::narrowDenseKernel(c); });
    if (failed(fn))
      return failure();
    Value rows = h.dim(d.getInput(), 0);
    Value x = h.input(d.getInput()), w = h.input(d.getWeight());
    auto [out, outBuf] = h.output(d.getResult().getType(), d.getInput());
    h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1),
             gk::NarrowDenseConfig::kThreads, 0, {x, w, outBuf, rows});
    if (Value bias = d.getBias())
      out = addDenseBias(h.b, h.loc, out, bias);
    static_cast<IRRewriter &>(h.b).replaceOp(d, out);
    return success();
  }

  /// dispatch -> [expert_ffn] -> combine: plan, grouped GEMMs, combine.
  LogicalResult lowerChain(Host &h, KernelModule &kernels, CombineOp combine) {
    Location loc = combine.getLoc();
    FailureOr<RoutedChain> chain = matchRoutedChain(combine, "GPU");
    if (failed(chain))
      return failure();
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnOp ffn = chain->ffn;
    RoutedType type = dispatch.getRouted().getType();
    Value x = dispatch.getInput();
    std::string xElt = eltName(x.getType());
    const int64_t experts = type.getExperts(), k = type.getK(), hidden = type.getHidden();
    const int64_t inner = ffn ? ffn.getInnerDim() : 0;
    if (experts > gk::DispatchConfig::scheduleThreads)
      return combine.emitError() << "the GPU backend supports up to " << gk::DispatchConfig::scheduleThreads
                                 << " experts, not " << experts;
    std::string wElt = ffn ? eltName(ffn.getWeights()[0].getType()) : xElt;
    if (ffn && wElt != xElt)
      return combine.emitError() << "the GPU backend needs expert weights of the routed element type (" << xElt
                                 << "), not " << wElt;
    gk::GemmConfig up, down;
    up.kTile = kTile();
    down.kTile = kTile();
    bool tensorCores = ffn && gk::tensorCoresFit(xElt, wElt, hidden, inner, up.kTile) &&
                       gk::tensorCoresFit(xElt, wElt, inner, hidden, down.kTile);
    up.tensorCores = down.tensorCores = tensorCores;
    gk::DispatchConfig plan;
    plan.experts = experts;
    plan.k = k;
    plan.capacity = type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0;
    plan.blockM = up.blockM();

    OpBuilder &b = h.b;
    Type i32 = b.getI32Type();
    Value rows = h.dim(x, 0);
    Value assignments = h.mul(rows, h.index(k));
    Value xBuf = h.input(x), idx = h.input(dispatch.getIndices()), w = h.input(combine.getWeights());
    Value counts = h.scratch(i32, experts), offsets = h.scratch(i32, experts + 1);
    Value maxTiles = h.add(h.ceilDiv(assignments, plan.blockM), h.index(experts));
    Value tileExpert = h.scratch(i32, maxTiles), tileRow = h.scratch(i32, maxTiles), numTiles = h.scratch(i32, 1);
    Value perm = h.scratch(i32, assignments), slotPos = h.scratch(i32, assignments);

    auto count = kernels.get(loc, "moe_count_" + plan.suffix(), [&] { return gk::countKernel(plan); });
    auto schedule = kernels.get(loc, "moe_schedule_" + plan.suffix(), [&] { return gk::scheduleKernel(plan); });
    auto permute = kernels.get(loc, "moe_permute_" + plan.suffix(), [&] { return gk::permuteKernel(plan); });
    if (failed(count) || failed(schedule) || failed(permute))
      return failure();
    h.launch(*count, h.index(experts), h.index(1), gk::kStridedBlock, 0, {idx, counts, rows});
    h.launch(*schedule, h.index(1), h.index(1), gk::DispatchConfig::scheduleThreads, 0,
             {counts, offsets, tileExpert, tileRow, numTiles});
    h.launch(*permute, h.index(experts), h.index(1), gk::DispatchConfig::permuteThreads, 0,
             {idx, offsets, perm, slotPos, rows});

    Value y = xBuf;
    if (ffn) {
      SmallVector<Value> weights;
      for (Value wt : ffn.getWeights())
        weights.push_back(h.input(wt));
      bool glu = ffn.getKind() != FfnKind::mlp;
      up.elt = down.elt = xElt;
      up.out = down.out = xElt;
      up.weight = down.weight = eltName(combine.getWeights().getType());
      up.k = hidden;
      up.n = inner;
      up.glu = glu;
      up.act = ffn.getKind() == FfnKind::swiglu   ? "silu"
               : ffn.getKind() == FfnKind::geglu  ? "gelu"
               : *ffn.getActivation() == Activation::relu ? "relu"
               : *ffn.getActivation() == Activation::gelu ? "gelu"
                                                          : "silu";
      up.gatherRows = true;
      up.grouped = true;
      down.k = inner;
      down.n = hidden;
      down.scaleRows = true;
      down.grouped = true;
      chooseEngine(up, wElt);
      chooseEngine(down, wElt);
      auto upFn = kernels.get(loc, up.name(), [&] { return gk::gemmKernel(up); });
      auto downFn = kernels.get(loc, down.name(), [&] { return gk::gemmKernel(down); });
      if (failed(upFn) || failed(downFn))
        return failure();
      Type elt = cast<ShapedType>(x.getType()).getElementType();
      Value hBuf = h.scratch(elt, h.mul(assignments, h.index(inner)));
      Value yBuf = h.scratch(elt, h.mul(assignments, h.index(hidden)));
      Value b1 = glu ? weights[1] : weights[0];
      Value bDown = glu ? weights[2] : weights[1];
      SmallVector<Value> upArgs{xBuf, weights[0], b1,      hBuf,        perm, tileExpert,
                                tileRow, offsets,  numTiles, w, assignments, h.index(k)};
      llvm::append_range(upArgs, tensorMaps(h, up, weights[0], b1, experts));
      h.launch(*upFn, gemmGrid(h, up, h.mul(maxTiles, h.index(up.columnBlocks()))), h.index(1), up.threads(),
               up.sharedBytes(),
               upArgs);
      SmallVector<Value> downArgs{hBuf,    bDown,   bDown,    yBuf, perm,        tileExpert,
                                  tileRow, offsets, numTiles, w,    assignments, h.index(k)};
      llvm::append_range(downArgs, tensorMaps(h, down, bDown, bDown, experts));
      h.launch(*downFn, gemmGrid(h, down, h.mul(maxTiles, h.index(down.columnBlocks()))), h.index(1), down.threads(),
               down.sharedBytes(), downArgs);
      y = yBuf;
    }

    gk::CombineConfig cc;
    cc.y = xElt;
    cc.w = eltName(combine.getWeights().getType());
    cc.x = xElt;
    cc.out = eltName(combine.getResult().getType());
    cc.hidden = hidden;
    cc.k = k;
    cc.identity = !ffn;
    auto combineFn = kernels.get(loc, cc.name(), [&] { return gk::combineKernel(cc); });
    if (failed(combineFn))
      return failure();
    auto resultType = combine.getResult().getType();
    auto [out, outBuf] = h.output(resultType, x);
    h.launch(*combineFn, h.ceilDiv(h.mul(rows, h.index(hidden / cc.width())), 256), h.index(1), 256, 0,
             {y, slotPos, w, xBuf, outBuf, rows});
    auto &rewriter = static_cast<IRRewriter &>(h.b);
    rewriter.replaceOp(combine, out);
    if (ffn && ffn->use_empty())
      rewriter.eraseOp(ffn);
    return success();
  }
};

} // namespace

LogicalResult mlir::moe::parseGPUKernelOptions(StringRef text, GPUKernelOptions &out,
                                               function_ref<LogicalResult(const Twine &)> errorHandler) {
  ConvertMoEToGPUKernels pass;
  if (failed(pass.initializeOptions(text, errorHandler)))
    return failure();
  out = pass.options();
  return success();
}
