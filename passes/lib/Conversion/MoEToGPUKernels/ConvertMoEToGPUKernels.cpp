//===- ConvertMoEToGPUKernels.cpp - convert-moe-to-gpu-kernels --*- C++ -*-===//
//
// Routing, matrix products and each dispatch -> experts -> combine chain
// become launches of kernels generated for this layer (Kernels/), parsed
// into `gpu.module @moe_kernels`, a conversion pattern per op
// (populateMoEToGPUKernelsPatterns). Operands are passed as flat 1-D memrefs;
// token counts are the only run-time sizes, so grids are computed in the host
// code from them.
//
//===----------------------------------------------------------------------===//
#include "GPUKernelLowering.h"

#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/IR/Dominance.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "convert-moe-to-gpu-kernels"

namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;
using namespace moe::gpu_lowering;

namespace {

/// The forward's ops: the lowering of each (`lower`, called by its pattern
/// with the rewriter at the op).
struct GPUKernelLowering : GPUKernelLoweringBase {
  using GPUKernelLoweringBase::GPUKernelLoweringBase;

  LogicalResult lower(Host &h, TopKOp t) {
    Value logits = t.getLogits();
    auto logitsType = cast<RankedTensorType>(logits.getType());
    gk::TopKConfig c;
    c.logits = eltName(logitsType);
    c.values = eltName(t.getValues().getType());
    c.experts = logitsType.getDimSize(1);
    c.k = static_cast<int64_t>(t.getK());
    c.score = kernelScore(t.getScore());
    c.renormalize = t.getRenormalize();
    c.scale = t.getScaleOrOne();
    auto fn = kernel(h, c.name(), gk::topKKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(logits, 0);
    Value in = h.input(logits);
    auto [values, valuesBuf] = h.output(t.getValues().getType(), logits);
    auto [indices, indicesBuf] = h.output(t.getIndices().getType(), logits);
    h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1), gk::kRoutingThreads, 0,
             {in, valuesBuf, indicesBuf, rows});
    h.b.replaceOp(t, ValueRange{values, indices});
    return success();
  }

  LogicalResult lower(Host &h, GroupTopKOp g) {
    Value scores = g.getScores();
    auto scoresType = cast<RankedTensorType>(scores.getType());
    gk::GroupTopKConfig c;
    c.scores = eltName(scoresType);
    c.experts = scoresType.getDimSize(1);
    c.k = static_cast<int64_t>(g.getK());
    c.groups = static_cast<int64_t>(g.getGroups());
    c.topGroups = static_cast<int64_t>(g.getTopGroups());
    auto fn = kernel(h, c.name(), gk::groupTopKKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(scores, 0);
    Value in = h.input(scores);
    auto type = g.getIndices().getType();
    auto [indices, indicesBuf] = h.output(type, scores);
    h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1), gk::kRoutingThreads, 0, {in, indicesBuf, rows});
    h.b.replaceOp(g, indices);
    return success();
  }

  LogicalResult lower(Host &h, GatherOp g) {
    auto type = g.getResult().getType();
    gk::GatherConfig c;
    c.elt = eltName(type);
    c.cols = cast<RankedTensorType>(g.getInput().getType()).getDimSize(1);
    c.k = type.getDimSize(1);
    auto fn = kernel(h, c.name(), gk::gatherKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(g.getInput(), 0);
    Value in = h.input(g.getInput()), idx = h.input(g.getIndices());
    auto [out, outBuf] = h.output(type, g.getInput());
    h.launch(*fn, h.ceilDiv(h.mul(rows, h.index(c.k)), 256), h.index(1), 256, 0, {in, idx, outBuf, rows});
    h.b.replaceOp(g, out);
    return success();
  }

  LogicalResult lower(Host &h, LoadBalanceLossOp l) {
    auto probsType = cast<RankedTensorType>(l.getProbs().getType());
    std::string elt = eltName(probsType);
    int64_t experts = probsType.getDimSize(1);
    int64_t k = cast<RankedTensorType>(l.getIndices().getType()).getDimSize(1);
    auto fn = kernel(h, gk::loadBalanceName(elt, experts, k), gk::loadBalanceKernel(elt, experts, k));
    if (failed(fn))
      return failure();
    Value rows = h.dim(l.getProbs(), 0);
    Value probs = h.input(l.getProbs()), idx = h.input(l.getIndices());
    auto [out, outBuf] = h.output(l.getLoss().getType(), {});
    h.launch(*fn, h.index(1), h.index(1), gk::kStridedBlock, 0, {probs, idx, outBuf, rows});
    h.b.replaceOp(l, out);
    return success();
  }

  LogicalResult lower(Host &h, ZLossOp z) {
    auto logitsType = cast<RankedTensorType>(z.getLogits().getType());
    std::string elt = eltName(logitsType);
    int64_t experts = logitsType.getDimSize(1);
    auto fn = kernel(h, gk::zLossName(elt, experts), gk::zLossKernel(elt, experts));
    if (failed(fn))
      return failure();
    Value rows = h.dim(z.getLogits(), 0);
    Value logits = h.input(z.getLogits());
    auto [out, outBuf] = h.output(z.getLoss().getType(), {});
    h.launch(*fn, h.index(1), h.index(1), gk::kStridedBlock, 0, {logits, outBuf, rows});
    h.b.replaceOp(z, out);
    return success();
  }

  LogicalResult lower(Host &h, DenseOp d) {
    auto type = d.getResult().getType();
    auto inType = cast<RankedTensorType>(d.getInput().getType());
    auto wType = cast<RankedTensorType>(d.getWeight().getType());
    gk::GemmConfig c;
    c.elt = eltName(inType);
    c.out = eltName(type);
    c.k = inType.getDimSize(1);
    c.n = type.getDimSize(1);
    if (gk::NarrowDenseConfig::fits(c.elt, c.k, c.n))
      return lowerNarrowDense(h, d, {c.elt, c.out, c.k, c.n});
    c.kTile = kTile();
    c.tensorCores = gk::tensorCoresFit(c.elt, eltName(wType), c.k, c.n, c.kTile);
    DenseGlu glu = options.gemmDenseGlu && c.tensorCores ? matchDenseGlu(d) : DenseGlu{};
    if (glu.mul) {
      c.glu = true;
      c.act = "silu";
    }
    chooseEngine(c, eltName(wType));
    if (!c.glu)
      chunkAlongK(c);
    auto fn = kernel(h, c.name(), gk::gemmKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(d.getInput(), 0);
    Value a = h.input(d.getInput());
    Value w = h.input(glu.gate ? glu.gate.getWeight() : d.getWeight());
    Value w1 = glu.up ? h.input(glu.up.getWeight()) : w;
    auto [out, outBuf] = h.output(type, d.getInput());
    Unused u = unused(h);
    SmallVector<Value> args{a, w, w1, outBuf, u.i32s, u.i32s, u.i32s, u.i32s, u.i32s, u.f32s, rows, h.index(1)};
    Value tiles = h.mul(h.ceilDiv(rows, c.blockM()), h.index(c.columnBlocks()));
    auto launchWhole = [&] {
      llvm::append_range(args, tensorMaps(h, c, w, w1, 1));
      llvm::append_range(args, tileCounter(h, c));
      h.launch(*fn, gemmGrid(h, c, tiles), h.index(1), c.threads(), c.sharedBytes(), args);
    };
    if (failed(splitAlongK(h, c, tiles, rows, outBuf, args, launchWhole)))
      return failure();
    if (Value bias = d.getBias())
      out = addDenseBias(h.b, h.loc, out, bias);
    if (glu.mul) {
      // silu(x W_gate) .* (x W_up) is the product's result: the mul takes
      // it, the silu and the up product go.
      h.b.replaceOp(glu.mul, out);
      h.b.eraseOp(glu.unary);
      h.b.eraseOp(glu.gate);
      h.b.eraseOp(glu.up);
      return success();
    }
    h.b.replaceOp(d, out);
    return success();
  }

  /// A gated product written out, `silu.(x W_gate) .* (x W_up)` (a shared
  /// expert's SwiGLU), of which `d` is either product (whichever comes first
  /// is lowered first): both products, the silu and the mul, or none (mul
  /// null). Only where nothing else reads the intermediates (a training
  /// forward keeps them for the backward) and both products are unbiased, of
  /// one input, weight type and result type.
  struct DenseGlu {
    DenseOp gate, up;
    UnaryOp unary;
    BinaryOp mul;
  };
  static DenseGlu matchDenseGlu(DenseOp d) {
    if (d.getBias() || !d.getResult().hasOneUse())
      return {};
    Operation *user = *d.getResult().getUsers().begin();
    DenseGlu g;
    if (auto unary = dyn_cast<UnaryOp>(user)) { // d is the gate
      if (!unary.getResult().hasOneUse())
        return {};
      g.gate = d;
      g.unary = unary;
      g.mul = dyn_cast<BinaryOp>(*unary.getResult().getUsers().begin());
      if (!g.mul)
        return {};
      Value other = g.mul.getLhs() == unary.getResult() ? g.mul.getRhs() : g.mul.getLhs();
      g.up = other.getDefiningOp<DenseOp>();
    } else if ((g.mul = dyn_cast<BinaryOp>(user))) { // d is the up product
      g.up = d;
      Value other = g.mul.getLhs() == d.getResult() ? g.mul.getRhs() : g.mul.getLhs();
      g.unary = other.getDefiningOp<UnaryOp>();
      if (!g.unary)
        return {};
      g.gate = g.unary.getInput().getDefiningOp<DenseOp>();
    }
    if (!g.gate || !g.up || !g.unary || !g.mul || g.gate == g.up || g.unary.getFn() != UnaryFn::silu ||
        g.mul.getFn() != BinaryFn::mul || g.mul.getType() != d.getType())
      return {};
    for (DenseOp p : {g.gate, g.up})
      if (p.getBias() || !p.getResult().hasOneUse() || p.getInput() != d.getInput() || p.getType() != d.getType() ||
          p.getWeight().getType() != d.getWeight().getType())
        return {};
    if (!g.unary.getResult().hasOneUse() || g.unary.getInput() != g.gate.getResult())
      return {};
    // The fused product is built where `d` is: the other weight must be there.
    Value other = (d == g.gate ? g.up : g.gate).getWeight();
    if (!DominanceInfo(d->getParentOp()).properlyDominates(other, d))
      return {};
    return g;
  }

  /// A dense product summed in k chunks (GemmConfig::kChunks): with at most
  /// splitKMaxRows rows (known at run time, from the token count), split
  /// along the chunks into a grid (tiles, kChunks) whose f32 chunk sums a
  /// second kernel adds in chunk order; else `launchWhole`. Both give the
  /// same bits, so the choice is only one of speed. `args` are the GEMM's
  /// operands, `outBuf` (C) the result's buffer, `rows` its rows.
  LogicalResult splitAlongK(Host &h, const gk::GemmConfig &c, Value tiles, Value rows, Value outBuf,
                            ArrayRef<Value> args, function_ref<void()> launchWhole) {
    const int64_t maxRows = c.kChunks ? gk::splitKMaxRows(c) : 0;
    if (maxRows == 0) {
      launchWhole();
      return success();
    }
    // Copied first: launchWhole appends to the vector `args` views.
    SmallVector<Value> splitArgs(args);
    gk::GemmConfig split = c;
    split.splitK = true;
    split.out = "f32";
    auto splitFn = kernel(h, split.name(), gk::gemmKernel(split));
    auto sumFn = kernel(h, gk::splitKSumName(c.out), gk::splitKSumKernel(c.out));
    if (failed(splitFn) || failed(sumFn))
      return failure();
    Value few = arith::CmpIOp::create(h.b, h.loc, arith::CmpIPredicate::ule, rows, h.index(maxRows));
    auto branch = scf::IfOp::create(h.b, h.loc, few, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(h.b);
    h.b.setInsertionPointToStart(&branch.getThenRegion().front());
    Value chunks = h.index(c.kChunks);
    Value cells = h.mul(rows, h.index(c.n));
    Value partials = h.scratch(h.b.getF32Type(), h.mul(cells, chunks));
    splitArgs[3] = partials;
    h.launch(*splitFn, tiles, chunks, split.threads(), split.sharedBytes(), splitArgs);
    h.launch(*sumFn, h.ceilDiv(cells, 256), h.index(1), 256, 0, {partials, outBuf, cells, chunks});
    h.b.setInsertionPointToStart(&branch.getElseRegion().front());
    launchWhole();
    return success();
  }

  /// Sums `c` in fixed k chunks (GemmConfig::kChunks) where it may be split
  /// along them at decode: a router's product, whose one or two tiles would
  /// leave most SMs idle, where the cost model expects the split to win at
  /// some token count. It takes the place of the engine chosen (TMA,
  /// persistent, warp-specialised: none splits). The chunks are fixed by the
  /// shape, so a product gives the same bits at every token count and on
  /// every mesh.
  void chunkAlongK(gk::GemmConfig &c) const {
    if (!options.gemmSplitK)
      return;
    gk::GemmConfig chunked = c;
    chunked.wgmmaN = 128;
    chunked.tmaB = chunked.persistent = chunked.warpSpecialized = false;
    if (!gk::splitKFits(chunked)) // at least 4 k steps: 2 or more chunks
      return;
    chunked.kChunks = gk::splitKChunks(chunked);
    if (gk::splitKMaxRows(chunked) > 0)
      c = chunked;
  }

  /// A product with few output columns (a router): a block a few tokens.
  LogicalResult lowerNarrowDense(Host &h, DenseOp d, const gk::NarrowDenseConfig &c) {
    auto fn = kernel(h, c.name(), gk::narrowDenseKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(d.getInput(), 0);
    Value x = h.input(d.getInput()), w = h.input(d.getWeight());
    auto [out, outBuf] = h.output(d.getResult().getType(), d.getInput());
    h.launch(*fn, h.ceilDiv(rows, c.tokensPerBlock()), h.index(1), gk::NarrowDenseConfig::kThreads, 0,
             {x, w, outBuf, rows});
    if (Value bias = d.getBias())
      out = addDenseBias(h.b, h.loc, out, bias);
    h.b.replaceOp(d, out);
    return success();
  }

  /// The GEMM configurations of a routed chain's experts (up with the
  /// activation, down scaled by the routing weights), engines chosen.
  struct ExpertGemms {
    gk::GemmConfig up, down;
  };
  ExpertGemms expertGemms(ExpertFfnOp ffn, const std::string &xElt, const std::string &routingElt, int64_t hidden) {
    ExpertGemms g;
    gk::GemmConfig &up = g.up, &down = g.down;
    const int64_t inner = ffn ? ffn.getInnerDim() : 0;
    std::string wElt = ffn ? eltName(ffn.getWeights()[0].getType()) : xElt;
    up.kTile = kTile();
    down.kTile = kTile();
    bool tensorCores = ffn && gk::tensorCoresFit(xElt, wElt, hidden, inner, up.kTile) &&
                       gk::tensorCoresFit(xElt, wElt, inner, hidden, down.kTile);
    up.tensorCores = down.tensorCores = tensorCores;
    if (!ffn)
      return g;
    up.elt = down.elt = xElt;
    up.out = down.out = xElt;
    up.weight = down.weight = routingElt;
    up.k = hidden;
    up.n = inner;
    up.glu = ffn.getKind() != FfnKind::mlp;
    up.act = gemmActivation(kernelFfn(ffn));
    up.gatherRows = true;
    up.grouped = true;
    down.k = inner;
    down.n = hidden;
    down.scaleRows = true;
    down.grouped = true;
    chooseEngine(up, wElt);
    chooseEngine(down, wElt);
    return g;
  }

  /// The experts' grouped GEMMs on `rows` (`assignments` of them, A row
  /// perm[i] / topK, scaled by w[perm[i]]), into a fresh buffer in tile order;
  /// the up GEMM also stores the kept up products into `up` (g.up.keepUp).
  FailureOr<Value> runExperts(Host &h, ExpertFfnOp ffn, const ExpertGemms &g, Type elt, Value rows, Value perm,
                              const TilePlan &t, Value w, Value assignments, int64_t topK, int64_t experts,
                              Value up = Value()) {
    SmallVector<Value> weights;
    for (Value wt : ffn.getWeights())
      weights.push_back(h.input(wt));
    auto upFn = kernel(h, g.up.name(), gk::gemmKernel(g.up));
    auto downFn = kernel(h, g.down.name(), gk::gemmKernel(g.down));
    if (failed(upFn) || failed(downFn))
      return failure();
    Value hBuf = h.scratch(elt, h.mul(assignments, h.index(g.up.n)));
    Value yBuf = h.scratch(elt, h.mul(assignments, h.index(g.down.n)));
    Value b1 = g.up.glu ? weights[1] : weights[0];
    Value bDown = g.up.glu ? weights[2] : weights[1];
    Value k = h.index(topK);
    SmallVector<Value> upArgs{rows,      weights[0], b1,         hBuf, perm,        t.tileExpert,
                              t.tileRow, t.offsets,  t.numTiles, w,    assignments, k};
    if (g.up.keepUp)
      upArgs.push_back(up);
    llvm::append_range(upArgs, tensorMaps(h, g.up, weights[0], b1, experts));
    llvm::append_range(upArgs, tileCounter(h, g.up));
    h.launch(*upFn, gemmGrid(h, g.up, h.mul(t.maxTiles, h.index(g.up.columnBlocks()))), h.index(1), g.up.threads(),
             g.up.sharedBytes(), upArgs);
    SmallVector<Value> downArgs{hBuf,      bDown,     bDown,      yBuf, perm,        t.tileExpert,
                                t.tileRow, t.offsets, t.numTiles, w,    assignments, k};
    llvm::append_range(downArgs, tensorMaps(h, g.down, bDown, bDown, experts));
    llvm::append_range(downArgs, tileCounter(h, g.down));
    h.launch(*downFn, gemmGrid(h, g.down, h.mul(t.maxTiles, h.index(g.down.columnBlocks()))), h.index(1),
             g.down.threads(), g.down.sharedBytes(), downArgs);
    return yBuf;
  }

  /// Each token's k slots summed in order into the combine's result.
  LogicalResult combineSlots(Host &h, CombineOp combine, Value y, Value slotPos, bool identity) {
    RoutedType type = cast<RoutedType>(combine.getRouted().getType());
    Value x = matchRoutedChain(combine, "GPU")->dispatch.getInput();
    gk::CombineConfig cc;
    cc.y = eltName(x.getType());
    cc.w = eltName(combine.getWeights().getType());
    cc.x = cc.y;
    cc.out = eltName(combine.getResult().getType());
    cc.hidden = type.getHidden();
    cc.k = type.getK();
    cc.identity = identity;
    auto combineFn = kernel(h, cc.name(), gk::combineKernel(cc));
    if (failed(combineFn))
      return failure();
    Value rows = h.dim(x, 0);
    auto [out, outBuf] = h.output(combine.getResult().getType(), x);
    h.launch(*combineFn, h.ceilDiv(h.mul(rows, h.index(cc.hidden / cc.width())), 256), h.index(1), 256, 0,
             {y, slotPos, h.input(combine.getWeights()), h.input(x), outBuf, rows});
    h.b.replaceOp(combine, out);
    return success();
  }

  /// dispatch -> [expert_ffn] -> combine: plan, grouped GEMMs, combine.
  LogicalResult lower(Host &h, CombineOp combine) {
    FailureOr<RoutedChain> chain = matchRoutedChain(combine, "GPU");
    if (failed(chain))
      return failure();
    if (chain->toExperts)
      return lowerExpertParallel(h, *chain, combine);
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnOp ffn = chain->ffn;
    RoutedType type = dispatch.getRouted().getType();
    Value x = dispatch.getInput();
    const int64_t experts = type.getExperts(), k = type.getK();
    ExpertGemms g = expertGemms(ffn, eltName(x.getType()), eltName(combine.getWeights().getType()), type.getHidden());
    gk::DispatchConfig plan;
    plan.experts = experts;
    plan.k = k;
    plan.capacity = type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0;
    plan.blockM = g.up.blockM();

    Type i32 = h.b.getI32Type();
    Value rows = h.dim(x, 0);
    Value assignments = h.mul(rows, h.index(k));
    Value xBuf = h.input(x), idx = h.input(dispatch.getIndices()), w = h.input(combine.getWeights());
    Value counts = h.scratch(i32, experts);
    Value perm = h.scratch(i32, assignments), slotPos = h.scratch(i32, assignments);
    auto count = kernel(h, "moe_count_" + plan.suffix(), gk::countKernel(plan));
    auto permute = kernel(h, "moe_permute_" + plan.suffix(), gk::permuteKernel(plan));
    if (failed(count) || failed(permute))
      return failure();
    h.launch(*count, h.index(experts), h.index(1), gk::kStridedBlock, 0, {idx, counts, rows});
    FailureOr<TilePlan> tiles = schedule(h, plan, counts, assignments);
    if (failed(tiles))
      return failure();
    h.launch(*permute, h.index(experts), h.index(1), gk::DispatchConfig::permuteThreads, 0,
             {idx, tiles->offsets, perm, slotPos, rows});
    Value y = xBuf;
    // A train forward's kept up products (moe-differentiate's residuals).
    Value upTensor, upBuf;
    if (ffn && ffn.getUp()) {
      g.up.keepUp = true;
      // The kept up products' stores are checked on the device in the one-tile kernel only.
      if (options.gemmWarpSpecialized == GemmWarpSpecialization::Auto)
        g.up.warpSpecialized = false;
      std::tie(upTensor, upBuf) = h.output(ffn.getUpType(), x);
    }
    if (ffn) {
      FailureOr<Value> out = runExperts(h, ffn, g, cast<ShapedType>(x.getType()).getElementType(), xBuf, perm, *tiles,
                                        w, assignments, k, experts, upBuf);
      if (failed(out))
        return failure();
      y = *out;
    }
    if (failed(combineSlots(h, combine, y, slotPos, /*identity=*/!ffn)))
      return failure();
    if (upTensor) // the routed result was internal to the chain (the patterns' rewriter: ToKernelLaunch's)
      static_cast<ConversionPatternRewriter &>(h.b).replaceOpWithMultiple(ffn, {{}, {upTensor}});
    return success();
  }

  /// moe.all_gather along dimension 0 over device buffers, by the runtime's
  /// collectives (collective_entry_points.h, the CPU code's too: the NCCL
  /// communicator takes device addresses): equal chunks (FSDP), or each
  /// rank's rows (the auxiliary losses' tokens), sized by a first call.
  LogicalResult lower(Host &h, AllGatherOp g) {
    OpBuilder &b = h.b;
    Value input = g.getInput();
    auto inType = cast<RankedTensorType>(input.getType());
    auto type = cast<RankedTensorType>(g.getResult().getType());
    Type element = type.getElementType();
    Value axes = arith::ConstantIntOp::create(b, h.loc, *kernelAxes(g.getAxes()), 32);
    const int64_t eltBytes = element.getIntOrFloatBitWidth() / 8;
    int64_t rowElements = 1;
    for (int64_t d = 1; d < inType.getRank(); ++d)
      rowElements *= inType.getDimSize(d);
    Value rows = inType.isDynamicDim(0) ? h.dim(input, 0) : h.index(inType.getDimSize(0));
    Value in = h.input(input);
    if (!type.isDynamicDim(0)) {
      auto [out, outBuf] = h.output(type, input);
      callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_comm_all_gather, b),
                  {address(h, in), address(h, outBuf), i64(h, h.mul(rows, h.index(rowElements * eltBytes))), axes});
      h.b.replaceOp(g, out);
      return success();
    }
    Value total = toIndex(h, callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_comm_gathered_rows, b), {i64(h, rows), axes}));
    Value buffer = memref::AllocOp::create(b, h.loc, MemRefType::get(type.getShape(), element), ValueRange{total});
    Value out = bufferization::ToTensorOp::create(b, h.loc, type, buffer, /*restrict=*/true, /*writable=*/true);
    callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_comm_all_gather_rows, b),
                {address(h, in), address(h, h.flatten(buffer)), i64(h, rows), i64(h, rowElements * eltBytes), axes});
    h.b.replaceOp(g, out);
    return success();
  }

  /// On a mesh: dispatch -> all_to_all -> expert_ffn -> all_to_all -> combine.
  /// The plan kernels run on this rank's tokens over every expert, the
  /// runtime exchanges the kept rows (moe_gpu_ep_*), the grouped GEMMs run on
  /// the rows received for this rank's experts, and the outputs come back to
  /// be combined in slot order (docs/sharding.md, "Sharded cuda layers").
  LogicalResult lowerExpertParallel(Host &h, RoutedChain chain, CombineOp combine) {
    DispatchOp dispatch = chain.dispatch;
    ExpertFfnOp ffn = chain.ffn;
    RoutedType type = dispatch.getRouted().getType();
    RoutedType local = cast<RoutedType>(chain.toExperts.getResult().getType());
    std::optional<int32_t> axes = kernelAxes(chain.toExperts.getAxes());
    if (!axes)
      return chain.toExperts.emitError() << "the GPU runtime's meshes have the axes rep, dp and ep; got "
                                         << chain.toExperts.getAxes();
    Value x = dispatch.getInput();
    const int64_t experts = type.getExperts(), k = type.getK(), hidden = type.getHidden();
    const int64_t localExperts = experts / local.getExpertShards();
    std::string xElt = eltName(x.getType()), wElt = eltName(combine.getWeights().getType());
    ExpertGemms g = expertGemms(ffn, xElt, wElt, hidden);
    OpBuilder &b = h.b;
    Type i32 = b.getI32Type();
    Type xType = cast<ShapedType>(x.getType()).getElementType();
    Type wType = cast<ShapedType>(combine.getWeights().getType()).getElementType();
    const int64_t rowBytes = hidden * (xType.getIntOrFloatBitWidth() / 8);
    const int64_t weightBytes = wType.getIntOrFloatBitWidth() / 8;

    // 1. This rank's counts over every expert (no capacity yet), then the
    //    world's: counts becomes the rows this rank keeps.
    gk::DispatchConfig raw;
    raw.experts = experts;
    raw.k = k;
    raw.blockM = g.up.blockM();
    gk::DispatchConfig kept = raw;
    kept.keptCounts = true;
    Value rows = h.dim(x, 0);
    Value assignments = h.mul(rows, h.index(k));
    Value xBuf = h.input(x), idx = h.input(dispatch.getIndices()), w = h.input(combine.getWeights());
    Value counts = h.scratch(i32, experts);
    auto count = kernel(h, "moe_count_" + raw.suffix(), gk::countKernel(raw));
    auto permute = kernel(h, "moe_permute_" + kept.suffix(), gk::permuteKernel(kept));
    gk::PackConfig pc;
    pc.x = xElt;
    pc.w = wElt;
    pc.hidden = hidden;
    pc.k = k;
    auto pack = kernel(h, pc.name(), gk::packKernel(pc));
    if (failed(count) || failed(permute) || failed(pack))
      return failure();
    h.launch(*count, h.index(experts), h.index(1), gk::kStridedBlock, 0, {idx, counts, rows});
    double capacity = type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0;
    Value plan = callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_gpu_ep_plan, b),
                             {address(h, counts), i64(h, experts), i64(h, k),
                              arith::ConstantFloatOp::create(b, h.loc, b.getF64Type(), APFloat(capacity)), i64(h, rows),
                              arith::ConstantIntOp::create(b, h.loc, *axes, 32)});

    // 2. The kept rows in expert order, packed with their routing weights.
    FailureOr<TilePlan> sendPlan = schedule(h, kept, counts, assignments);
    if (failed(sendPlan))
      return failure();
    Value perm = h.scratch(i32, assignments), slotPos = h.scratch(i32, assignments);
    h.launch(*permute, h.index(experts), h.index(1), gk::DispatchConfig::permuteThreads, 0,
             {idx, sendPlan->offsets, perm, slotPos, rows});
    Value sent = toIndex(h, callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_gpu_ep_sent_rows, b), {plan}));
    Value received = toIndex(h, callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_gpu_ep_received_rows, b), {plan}));
    Value sendRows = h.scratch(xType, h.mul(sent, h.index(hidden)));
    Value sendWeights = h.scratch(wType, sent);
    h.launch(*pack, h.ceilDiv(h.mul(sent, h.index(hidden / pc.width())), 256), h.index(1), 256, 0,
             {xBuf, w, perm, sendRows, sendWeights, sent});

    // 3. The exchange, then this rank's experts on what arrived.
    Value recvRows = h.scratch(xType, h.mul(received, h.index(hidden)));
    Value recvWeights = h.scratch(wType, received);
    Value recvCounts = h.scratch(i32, localExperts);
    Value recvPerm = h.scratch(i32, received);
    callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_gpu_ep_dispatch, b),
                {plan, address(h, sendRows), address(h, sendWeights), address(h, recvRows), address(h, recvWeights),
                 address(h, recvCounts), address(h, recvPerm), i64(h, rowBytes), i64(h, weightBytes)});
    gk::DispatchConfig mine = raw;
    mine.experts = localExperts;
    FailureOr<TilePlan> expertPlan = schedule(h, mine, recvCounts, received);
    if (failed(expertPlan))
      return failure();
    FailureOr<Value> y =
        runExperts(h, ffn, g, xType, recvRows, recvPerm, *expertPlan, recvWeights, received, /*topK=*/1, localExperts);
    if (failed(y))
      return failure();

    // 4. The outputs back, combined in slot order.
    Value back = h.scratch(xType, h.mul(sent, h.index(hidden)));
    callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moe_gpu_ep_return, b),
                {plan, address(h, *y), address(h, back), i64(h, rowBytes)});
    return combineSlots(h, combine, back, slotPos, /*identity=*/false);
  }
};

struct ConvertMoEToGPUKernels : moe::impl::ConvertMoEToGPUKernelsBase<ConvertMoEToGPUKernels> {
  using Base::Base;

  /// The options as the typed struct (parseGPUKernelOptions).
  GPUKernelOptions options() const {
    return {chip,    gemm,           gemmKTile,           gemmN,      gemmEpilogue,
            gemmTma, gemmPersistent, gemmWarpSpecialized, gemmSplitK, gemmDenseGlu};
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    GPUKernelOptions opts = options();
    if (failed(checkOptions(module.getLoc(), opts)) || failed(checkSupported(module)) ||
        failed(checkRoutedChainGrads(module, "GPU")))
      return signalPassFailure();
    LLVM_DEBUG(llvm::dbgs() << "lowering to GPU kernels for " << chip << " with "
                            << (resolveEngine(opts) == GemmEngine::Wgmma ? "wgmma" : "mma") << " GEMMs, k tile "
                            << gemmKTile << "\n");
    RewritePatternSet patterns(&getContext());
    populateMoEToGPUKernelsPatterns(patterns, opts);
    if (failed(applyKernelConversion(module, std::move(patterns), "GPU")))
      signalPassFailure();
  }

  /// The option values the kernels support.
  static LogicalResult checkOptions(Location loc, const GPUKernelOptions &o) {
    if (o.gemmKTile != 32 && o.gemmKTile != 64)
      return emitError(loc) << "gemm-k-tile must be 32 or 64, not " << o.gemmKTile;
    if (o.gemmN != 0 && o.gemmN != 128 && o.gemmN != 256)
      return emitError(loc) << "gemm-n must be 128 or 256, not " << o.gemmN;
    std::optional<::moe::runtime::Target> target = ::moe::runtime::parseTarget(o.chip);
    if (!target || !target->isCuda())
      return emitError(loc) << "chip must be a CUDA architecture, not '" << o.chip << "'; "
                            << ::moe::runtime::kTargetsHelp;
    if (o.gemm == GemmEngine::Wgmma && !hasWgmma(o.chip))
      return emitError(loc) << "gemm=wgmma needs chip sm_90a, not " << o.chip;
    return success();
  }

  /// The collectives the GPU backend lowers: moe-place-on-mesh's (all_gather
  /// along dimension 0, the routed all_to_all of an expert-parallel chain).
  static LogicalResult checkCollective(Operation *op) {
    if (!isa<AllGatherOp, AllReduceOp, ReduceScatterOp, AllToAllOp>(op))
      return success();
    auto names = op->getAttrOfType<ArrayAttr>("axes");
    if (names && !kernelAxes(names))
      return op->emitError() << "the GPU runtime's meshes have the axes rep, dp and ep; got " << names;
    if (isa<AllReduceOp, ReduceScatterOp>(op))
      return op->emitError() << "the GPU backend does not lower " << op->getName()
                             << " (moe-place-on-mesh does not emit it; the CPU backend lowers it)";
    if (auto a = dyn_cast<AllToAllOp>(op); a && !isa<RoutedType>(a.getInput().getType()))
      return op->emitError() << "the GPU backend lowers moe.all_to_all of routed values (around moe.expert_ffn) "
                                "only, not of "
                             << a.getInput().getType();
    if (auto g = dyn_cast<AllGatherOp>(op)) {
      auto type = cast<RankedTensorType>(g.getResult().getType());
      if (g.getGatherDim() != 0)
        return g.emitError() << "the GPU backend gathers along dimension 0 only, got gather_dim = " << g.getGatherDim();
      for (int64_t d = 1; d < type.getRank(); ++d)
        if (type.isDynamicDim(d))
          return g.emitError() << "the GPU backend gathers rows of a static size, got " << type;
      if (type.getRank() == 0)
        return g.emitError() << "the GPU backend gathers tensors of rank 1 or more";
    }
    return success();
  }

  /// What the GPU kernels do not cover, refused before the conversion (so
  /// that its patterns never fail with a message).
  static LogicalResult checkSupported(ModuleOp module) {
    WalkResult result = module.walk([&](Operation *op) -> WalkResult {
      if (failed(checkCollective(op)))
        return WalkResult::interrupt();
      if (auto root = dyn_cast<DispatchGradOp>(op)) {
        FailureOr<RoutedChainGrad> chain = matchRoutedChainGrad(root, "GPU");
        if (failed(chain))
          return WalkResult::interrupt();
        if (!chain->ffnGrad || chain->toExperts || chain->fromExperts)
          return root.emitError() << "the GPU backend lowers the backward of dispatch -> expert_ffn -> combine on "
                                     "one device only (a chain without experts, or with exchanges, trains on the CPU)";
      }
      if (auto d = dyn_cast<DenseOp>(op)) {
        Type in = getElementTypeOrSelf(d.getInput().getType()), w = getElementTypeOrSelf(d.getWeight().getType());
        if (eltName(in) != eltName(w))
          return d.emitError() << "the GPU backend needs moe.dense's input and weight of one element type, not " << in
                               << " and " << w;
      }
      if (auto combine = dyn_cast<CombineOp>(op)) {
        FailureOr<RoutedChain> matched = matchRoutedChain(combine, "GPU");
        if (failed(matched))
          return WalkResult::interrupt();
        RoutedChain chain = *matched;
        if (chain.toExperts && chain.ffn.getUp())
          return chain.ffn.emitError() << "the GPU backend keeps the up products of experts on one device only, not "
                                          "of an expert-parallel chain";
        RoutedType type = chain.dispatch.getRouted().getType();
        if (type.getExperts() > gk::DispatchConfig::scheduleThreads)
          return combine.emitError() << "the GPU backend supports up to " << gk::DispatchConfig::scheduleThreads
                                     << " experts, not " << type.getExperts();
        std::string xElt = eltName(chain.dispatch.getInput().getType());
        if (chain.ffn && eltName(chain.ffn.getWeights()[0].getType()) != xElt)
          return combine.emitError() << "the GPU backend needs expert weights of the routed element type (" << xElt
                                     << "), not " << eltName(chain.ffn.getWeights()[0].getType());
      }
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }
};

} // namespace

void moe::populateMoEToGPUKernelsPatterns(RewritePatternSet &patterns, const GPUKernelOptions &options) {
  auto kernels = std::make_shared<KernelModule>();
  auto lowering = std::make_shared<GPUKernelLowering>(options, kernels);
  populateGradientsToGPUKernelsPatterns(patterns, options, kernels);
  MLIRContext *context = patterns.getContext();
  using L = GPUKernelLowering;
  patterns.add<ToKernelLaunch<L, DenseOp>, ToKernelLaunch<L, TopKOp>, ToKernelLaunch<L, GroupTopKOp>,
               ToKernelLaunch<L, GatherOp>, ToKernelLaunch<L, LoadBalanceLossOp>, ToKernelLaunch<L, ZLossOp>,
               ToKernelLaunch<L, CombineOp>, ToKernelLaunch<L, AllGatherOp>>(context, lowering);
}

LogicalResult moe::parseGPUKernelOptions(StringRef text, GPUKernelOptions &out,
                                         function_ref<LogicalResult(const Twine &)> errorHandler) {
  ConvertMoEToGPUKernels pass;
  if (failed(pass.initializeOptions(text, errorHandler)))
    return failure();
  out = pass.options();
  return success();
}
