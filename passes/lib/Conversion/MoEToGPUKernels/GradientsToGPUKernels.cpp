//===- GradientsToGPUKernels.cpp - the backward's GPU kernel launches -----===//
//
// The backward ops moe-differentiate builds, as launches of generated
// kernels (part of convert-moe-to-gpu-kernels; the elementwise ones are
// linalg's, as in the forward):
//
// - each routed chain's backward (combine_grad -> expert_ffn_grad ->
//   dispatch_grad, rooted at its dispatch_grad) recomputes the dispatch plan
//   in a padded layout (each expert's rows start at a whole 128-row tile),
//   reads the up products the forward kept (or recomputes them), forms the down product's input cotangent and
//   the input rows' cotangents with the forward's grouped GEMMs through
//   transposed weights, and the weight cotangents with a grouped GEMM over
//   each expert's rows (tensor cores for 16-bit layers) that sums them in order;
// - moe.dense_grad: dx through the transposed weight (the forward's GEMM), dw
//   summed over the tokens in order;
// - the routing and the auxiliary losses' backward, a thread per token.
//
//===----------------------------------------------------------------------===//
#include "GPUKernelLowering.h"

#include "moe/Conversion/Patterns.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

using namespace mlir;
using namespace moe;
using namespace moe::gpu_lowering;

namespace {

int64_t staticDim(Value v, int64_t d) { return cast<ShapedType>(v.getType()).getDimSize(d); }
Type elementOf(Value v) { return getElementTypeOrSelf(v.getType()); }

struct GPUGradientLowering : GPUKernelLoweringBase {
  using GPUKernelLoweringBase::GPUKernelLoweringBase;

  /// `in` ([experts][rows][cols], flat) transposed into rows
  /// [rowOffset, rowOffset + cols) of each expert's [outRows][rows] in `out`.
  LogicalResult transpose(Host &h, Value in, Value out, const std::string &elt, int64_t experts, int64_t rows,
                          int64_t cols, int64_t outRows, int64_t rowOffset) {
    gk::TransposeConfig c{elt, experts, rows, cols, outRows, rowOffset};
    auto fn = kernel(h, c.name(), gk::transposeKernel(c));
    if (failed(fn))
      return failure();
    h.launch(*fn, h.index(c.blocks()), h.index(1), 256, 0, {in, out});
    return success();
  }

  LogicalResult weightGrad(Host &h, const gk::WeightGradConfig &c, Value a, Value b, Value out, Value perm,
                           Value offsets, Value ends, Value w, Value rows, int64_t topK) {
    auto fn = kernel(h, c.name(), gk::weightGradKernel(c));
    if (failed(fn))
      return failure();
    h.launch(*fn, h.index(c.blocks()), h.index(1), 256, c.sharedBytes(),
             {a, b, out, perm, offsets, ends, w, rows, h.index(topK)});
    return success();
  }

  /// A grouped GEMM of the forward's kernels over the padded tiles (the
  /// segments' ends standing for the offsets): C = A(.gathered) . B[e].
  LogicalResult groupedGemm(Host &h, gk::GemmConfig c, const std::string &bElt, bool tensorCores, Value a, Value b,
                            Value out, Value perm, const TilePlan &t, Value ends, Value w, Value assignments,
                            int64_t topK, int64_t experts) {
    return launchGemm(h, withEngine(c, bElt, tensorCores, /*grouped=*/true), a, b, b, out, &t, perm, ends, w,
                      assignments, topK, experts);
  }

  /// `c` grouped or not, on tensor cores or not, with its engine chosen.
  gk::GemmConfig withEngine(gk::GemmConfig c, const std::string &wElt, bool tensorCores, bool grouped) {
    c.grouped = grouped;
    c.kTile = kTile();
    c.tensorCores = tensorCores;
    chooseEngine(c, wElt);
    // The backward's GEMMs are checked on the device in the one-tile kernel;
    // the warp-specialised one only where asked for.
    if (options.gemmWarpSpecialized == GemmWarpSpecialization::Auto)
      c.warpSpecialized = false;
    return c;
  }

  /// A configured GEMM's launch: grouped over the padded tiles of `t`
  /// (perm, ends, w, assignments, topK as there), or with `t` null over the
  /// `rows` rows of A (the remaining arguments unused).
  LogicalResult launchGemm(Host &h, const gk::GemmConfig &c, Value a, Value b0, Value b1, Value out, const TilePlan *t,
                           Value perm, Value ends, Value w, Value rows, int64_t topK, int64_t experts) {
    auto fn = kernel(h, c.name(), gk::gemmKernel(c));
    if (failed(fn))
      return failure();
    SmallVector<Value> args;
    Value blocks;
    if (t) {
      args = {a, b0, b1, out, perm, t->tileExpert, t->tileRow, ends, t->numTiles, w, rows, h.index(topK)};
      blocks = h.mul(t->maxTiles, h.index(c.columnBlocks()));
    } else {
      Unused u = unused(h);
      args = {a, b0, b1, out, u.i32s, u.i32s, u.i32s, u.i32s, u.i32s, u.f32s, rows, h.index(1)};
      blocks = h.mul(h.ceilDiv(rows, c.blockM()), h.index(c.columnBlocks()));
    }
    llvm::append_range(args, tensorMaps(h, c, b0, b1, experts));
    llvm::append_range(args, tileCounter(h, c));
    h.launch(*fn, gemmGrid(h, c, blocks), h.index(1), c.threads(), c.sharedBytes(), args);
    return success();
  }

  /// `c` (k, n and types set) configured for C = A . W^T with W[e] [n][k]
  /// (split along k at `split` into two weights, or 0): grouped or not, the
  /// engine chosen, and B read k-major where the engine can (wgmma, one
  /// block a tile, no TMA), so W^T is never written.
  gk::GemmConfig transposedProduct(gk::GemmConfig c, const std::string &wElt, bool tensorCores, bool grouped,
                                   int64_t split) {
    c = withEngine(c, wElt, tensorCores, grouped);
    // The warp-specialised kernel reads B n-major only: a k-major B (no W^T
    // written) is worth more than it.
    if (c.wgmma && !c.tmaB && !c.glu && split % 64 == 0)
      c.warpSpecialized = false;
    c.kMajorB = c.wgmma && !c.persistent && !c.tmaB && !c.glu && split % 64 == 0;
    c.bSplitK = c.kMajorB ? split : 0;
    return c;
  }

  /// C = A . [W0 | W1]^T (W1 null: A . W0^T), W0[e] [n][split or k] and
  /// W1[e] [n][k - split], from transposedProduct's config: the weights as
  /// they lie when it reads them k-major, else a transposed copy ([e][k][n],
  /// written each call).
  LogicalResult transposedGemm(Host &h, const gk::GemmConfig &c, Value a, Value w0, Value w1, int64_t split, Value out,
                               const TilePlan *t, Value perm, Value ends, Value w, Value rows, int64_t topK,
                               int64_t experts) {
    if (c.kMajorB)
      return launchGemm(h, c, a, w0, w1 ? w1 : w0, out, t, perm, ends, w, rows, topK, experts);
    Type wType = elementOf(w0);
    const std::string wElt = eltName(wType);
    const int64_t first = w1 ? split : c.k;
    Value wT = h.scratch(wType, experts * c.k * c.n);
    if (failed(transpose(h, w0, wT, wElt, experts, c.n, first, c.k, 0)) ||
        (w1 && failed(transpose(h, w1, wT, wElt, experts, c.n, c.k - first, c.k, first))))
      return failure();
    return launchGemm(h, c, a, wT, wT, out, t, perm, ends, w, rows, topK, experts);
  }

  /// combine_grad -> expert_ffn_grad -> dispatch_grad.
  LogicalResult lower(Host &h, DispatchGradOp root) {
    FailureOr<RoutedChainGrad> chain = matchRoutedChainGrad(root, "GPU");
    if (failed(chain))
      return failure();
    DispatchOp dispatch = chain->dispatch;
    ExpertFfnGradOp ffnGrad = chain->ffnGrad;
    CombineGradOp combineGrad = chain->combineGrad;
    RoutedType type = dispatch.getRouted().getType();
    const int64_t experts = type.getExperts(), k = type.getK(), d = type.getHidden();
    const bool glu = ffnGrad.getKind() != FfnKind::mlp;
    ValueRange stacked = ffnGrad.getWeights();
    const int64_t f = staticDim(stacked[0], 2), upWidth = glu ? 2 * f : f;
    std::optional<Activation> activation;
    if (ffnGrad.getActivation())
      activation = *ffnGrad.getActivation();
    const std::string act = gemmActivation(kernelFfn(ffnGrad.getKind(), activation));
    Value x = dispatch.getInput(), dout = combineGrad.getGrad();
    Type xType = elementOf(x), f32 = h.b.getF32Type(), i32 = h.b.getI32Type();
    const std::string xElt = eltName(x.getType()), wElt = eltName(combineGrad.getWeights().getType());
    const std::string weightElt = eltName(stacked[0].getType()), doutElt = eltName(dout.getType());

    // The chain's four GEMMs share one tile list, so one engine family (and
    // its rows per tile): tensor cores where every product fits them.
    const bool tensorCores = gk::tensorCoresFit(xElt, weightElt, d, f, kTile()) &&
                             gk::tensorCoresFit(doutElt, weightElt, d, f, kTile()) &&
                             gk::tensorCoresFit(xElt, weightElt, upWidth, d, kTile());
    gk::GemmConfig probe;
    probe.tensorCores = tensorCores;

    // 1. The plan, padded: expert e's rows [offsets[e], ends[e + 1]).
    gk::DispatchConfig plan;
    plan.experts = experts;
    plan.k = k;
    plan.capacity = type.getCapacity() ? type.getCapacity().getValueAsDouble() : 0.0;
    plan.blockM = probe.blockM();
    gk::DispatchConfig countPlan = plan;
    plan.padded = true;
    auto count = kernel(h, "moe_count_" + countPlan.suffix(), gk::countKernel(countPlan));
    auto schedule = kernel(h, "moe_schedule_" + plan.suffix(), gk::scheduleKernel(plan));
    auto permute = kernel(h, "moe_permute_" + plan.suffix(), gk::permuteKernel(plan));
    if (failed(count) || failed(schedule) || failed(permute))
      return failure();
    Value rows = h.dim(x, 0), assignments = h.mul(rows, h.index(k));
    Value padded = h.add(assignments, h.index(experts * plan.blockM));
    Value xBuf = h.input(x), idx = h.input(dispatch.getIndices()), w = h.input(combineGrad.getWeights());
    Value doutBuf = h.input(dout);
    SmallVector<Value> weights;
    for (Value wt : stacked)
      weights.push_back(h.input(wt));
    Value counts = h.scratch(i32, experts);
    h.launch(*count, h.index(experts), h.index(1), gk::kStridedBlock, 0, {idx, counts, rows});
    TilePlan t;
    t.offsets = h.scratch(i32, experts + 1);
    Value ends = h.scratch(i32, experts + 1);
    t.maxTiles = h.add(h.ceilDiv(assignments, plan.blockM), h.index(experts));
    t.tileExpert = h.scratch(i32, t.maxTiles);
    t.tileRow = h.scratch(i32, t.maxTiles);
    t.numTiles = h.scratch(i32, 1);
    h.launch(*schedule, h.index(1), h.index(1), gk::DispatchConfig::scheduleThreads, 0,
             {counts, t.offsets, t.tileExpert, t.tileRow, t.numTiles, ends});
    Value perm = h.scratch(i32, padded), slotPos = h.scratch(i32, assignments);
    h.launch(*permute, h.index(experts), h.index(1), gk::DispatchConfig::permuteThreads, 0,
             {idx, t.offsets, perm, slotPos, rows});

    // 2. The up products: kept by the forward (moe-differentiate's
    //    residual, read by slot), or again (f32, before the activation).
    Value kept = ffnGrad.getUp() ? h.input(ffnGrad.getUp()) : Value();
    gk::GemmConfig up;
    up.elt = xElt;
    up.out = "f32";
    up.weight = wElt;
    up.k = d;
    up.n = f;
    up.gatherRows = true;
    Value g = kept, u = kept;
    if (!kept) {
      g = h.scratch(f32, h.mul(padded, h.index(f)));
      u = glu ? h.scratch(f32, h.mul(padded, h.index(f))) : g;
      if (failed(groupedGemm(h, up, weightElt, tensorCores, xBuf, weights[0], g, perm, t, ends, w, assignments, k,
                             experts)) ||
          (glu && failed(groupedGemm(h, up, weightElt, tensorCores, xBuf, weights[1], u, perm, t, ends, w, assignments,
                                     k, experts))))
        return failure();
    }

    // 3. The down product's input cotangent: dout rows . w_down^T, unweighted.
    Value down = weights[glu ? 2 : 1];
    gk::GemmConfig back;
    back.elt = doutElt;
    back.out = "f32";
    back.weight = wElt;
    back.k = d;
    back.n = f;
    back.gatherRows = true;
    back = transposedProduct(back, weightElt, tensorCores, /*grouped=*/true, 0);
    Value dHu = h.scratch(f32, h.mul(padded, h.index(f)));
    if (failed(transposedGemm(h, back, doutBuf, down, Value(), 0, dHu, &t, perm, ends, w, assignments, k, experts)))
      return failure();

    // 4. Through the activation: the up products' cotangents, the routing
    //    weights' cotangent, the activations for the down weights' cotangent
    //    (times the routing weight where the tensor cores take that product:
    //    their operands arrive untouched in shared memory).
    gk::WeightGradConfig downGrad;
    downGrad.a = xElt;
    downGrad.b = doutElt;
    downGrad.out = weightElt;
    downGrad.w = wElt;
    downGrad.m = f;
    downGrad.n = d;
    downGrad.lda = f;
    downGrad.ldb = d;
    downGrad.segments = experts;
    downGrad.gatherB = true;
    downGrad.tensorCores = downGrad.tensorCoresFit();
    chooseWeightGradEngine(downGrad);
    downGrad.topK = downGrad.wgmma ? k : 0;
    downGrad.scaleB = !downGrad.tensorCores;
    gk::FfnActivationGradConfig ac;
    ac.scaleHidden = downGrad.tensorCores;
    ac.elt = xElt;
    ac.w = wElt;
    ac.inner = f;
    ac.glu = glu;
    ac.act = act;
    ac.keptUp = static_cast<bool>(kept);
    auto actFn = kernel(h, ac.name(), gk::ffnActivationGradKernel(ac));
    if (failed(actFn))
      return failure();
    Value dGU = h.scratch(xType, h.mul(padded, h.index(upWidth)));
    Value hidden = h.scratch(xType, h.mul(padded, h.index(f)));
    auto [dweights, dweightsBuf] = h.output(combineGrad.getWeightsGrad().getType(), combineGrad.getWeights());
    h.launch(*actFn, assignments, h.index(1), 256, 0, {g, u, dHu, w, slotPos, dGU, hidden, dweightsBuf, assignments});

    // 5. Each expert's weight cotangents, summed over its rows in order.
    SmallVector<Value> dstacked, dstackedBufs;
    for (Value wt : stacked) {
      auto [tensor, buf] = h.output(cast<RankedTensorType>(wt.getType()), wt);
      dstacked.push_back(tensor);
      dstackedBufs.push_back(buf);
    }
    gk::WeightGradConfig upGrad;
    upGrad.a = xElt;
    upGrad.b = xElt;
    upGrad.out = weightElt;
    upGrad.w = wElt;
    upGrad.m = d;
    upGrad.n = f;
    upGrad.lda = d;
    upGrad.ldb = upWidth;
    upGrad.segments = experts;
    upGrad.gatherA = true;
    upGrad.tensorCores = upGrad.tensorCoresFit();
    chooseWeightGradEngine(upGrad);
    upGrad.topK = upGrad.wgmma ? k : 0;
    for (int64_t i = 0; i < (glu ? 2 : 1); ++i) {
      upGrad.bColumn = i * f;
      if (failed(weightGrad(h, upGrad, xBuf, dGU, dstackedBufs[i], perm, t.offsets, ends, w, assignments, k)))
        return failure();
    }
    if (failed(weightGrad(h, downGrad, hidden, doutBuf, dstackedBufs.back(), perm, t.offsets, ends, w, assignments, k)))
      return failure();

    // 6. The rows' cotangents, [dG | dU] . [w_gate; w_up]^T, then each
    //    token's slots summed in order.
    gk::GemmConfig rowsBack;
    rowsBack.elt = xElt;
    rowsBack.out = "f32";
    rowsBack.weight = wElt;
    rowsBack.k = upWidth;
    rowsBack.n = d;
    rowsBack = transposedProduct(rowsBack, weightElt, tensorCores, /*grouped=*/true, glu ? f : 0);
    Value dRows = h.scratch(f32, h.mul(padded, h.index(d)));
    if (failed(transposedGemm(h, rowsBack, dGU, weights[0], glu ? weights[1] : Value(), glu ? f : 0, dRows, &t, perm,
                              ends, w, assignments, k, experts)))
      return failure();
    gk::CombineConfig cc;
    cc.y = "f32";
    cc.w = wElt;
    cc.x = xElt;
    cc.out = eltName(root.getResult().getType());
    cc.hidden = d;
    cc.k = k;
    auto combineFn = kernel(h, cc.name(), gk::combineKernel(cc));
    if (failed(combineFn))
      return failure();
    auto [dx, dxBuf] = h.output(root.getResult().getType(), x);
    h.launch(*combineFn, h.ceilDiv(h.mul(rows, h.index(cc.hidden / cc.width())), 256), h.index(1), 256, 0,
             {dRows, slotPos, w, xBuf, dxBuf, rows});

    // The routed cotangents between the three ops were internal.
    h.b.replaceOp(root, dx);
    SmallVector<SmallVector<Value>> results{{}};
    for (Value dw : dstacked)
      results.push_back({dw});
    // (The patterns' rewriter: ToKernelLaunch's.)
    auto &rewriter = static_cast<ConversionPatternRewriter &>(h.b);
    rewriter.replaceOpWithMultiple(ffnGrad, std::move(results));
    rewriter.replaceOpWithMultiple(combineGrad, {{}, {dweights}});
    return success();
  }

  LogicalResult lower(Host &h, DenseGradOp op) {
    Value x = op.getInput(), wt = op.getWeight(), dy = op.getGrad();
    const int64_t kDim = staticDim(wt, 0), n = staticDim(wt, 1);
    const std::string xElt = eltName(x.getType()), wElt = eltName(wt.getType()), dyElt = eltName(dy.getType());
    Value rows = h.dim(x, 0);
    Value xBuf = h.input(x), wBuf = h.input(wt), dyBuf = h.input(dy);
    Unused unusedBuffers = unused(h);
    auto [dx, dxBuf] = h.output(op.getInputGrad().getType(), x);
    // dy . w^T on tensor cores: the forward's GEMM reading w k-major (or
    // transposed). A 16-bit layer's router has an f32 cotangent: split into
    // high and low 16-bit halves, [high | low] . [w; w]^T.
    const bool sameTypes = xElt == wElt && wElt == dyElt;
    const bool split = dyElt == "f32" && xElt == wElt && (xElt == "bf16" || xElt == "f16");
    gk::GemmConfig g;
    g.elt = sameTypes ? dyElt : xElt;
    g.out = xElt;
    g.k = split ? 2 * n : n;
    g.n = kDim;
    g = transposedProduct(g, wElt, gk::tensorCoresFit(g.elt, wElt, g.k, g.n, kTile()), /*grouped=*/false,
                          split ? n : 0);
    Value halves; // [high | low] of the f32 cotangent, where split
    if (sameTypes || (split && g.tensorCores)) {
      if (split) {
        auto splitFn = kernel(h, gk::splitHighLowName(xElt, n), gk::splitHighLowKernel(xElt, n));
        if (failed(splitFn))
          return failure();
        halves = h.scratch(elementOf(x), h.mul(rows, h.index(2 * n)));
        h.launch(*splitFn, h.ceilDiv(h.mul(rows, h.index(n)), 256), h.index(1), 256, 0, {dyBuf, halves, rows});
      }
      if (failed(transposedGemm(h, g, split ? halves : dyBuf, wBuf, split ? wBuf : Value(), split ? n : 0, dxBuf,
                                nullptr, Value(), Value(), Value(), rows, 1, 1)))
        return failure();
    } else {
      std::string name = gk::denseInputGradName(dyElt, wElt, xElt, kDim, n);
      auto fn = kernel(h, name, gk::denseInputGradKernel(dyElt, wElt, xElt, kDim, n));
      if (failed(fn))
        return failure();
      h.launch(*fn, h.ceilDiv(h.mul(rows, h.index(kDim)), 256), h.index(1), 256, 0, {dyBuf, wBuf, dxBuf, rows});
    }
    // x^T dy, over the tokens in order; from the split cotangent, x^T [high |
    // low] on tensor cores (f32), its two halves then added.
    auto [dw, dwBuf] = h.output(op.getWeightGrad().getType(), wt);
    auto weightGradOf = [&](const std::string &bElt, const std::string &out, int64_t columns) {
      gk::WeightGradConfig c;
      c.a = xElt;
      c.b = bElt;
      c.out = out;
      c.m = kDim;
      c.n = c.ldb = columns;
      c.lda = kDim;
      c.tensorCores = c.tensorCoresFit();
      chooseWeightGradEngine(c);
      return c;
    };
    Value i32s = unusedBuffers.i32s, f32s = unusedBuffers.f32s;
    gk::WeightGradConfig ofHalves = weightGradOf(xElt, "f32", 2 * n);
    if (halves && ofHalves.tensorCores) {
      Value both = h.scratch(h.b.getF32Type(), kDim * 2 * n);
      auto sumFn = kernel(h, gk::sumHalvesName(wElt, n), gk::sumHalvesKernel(wElt, n));
      if (failed(sumFn) || failed(weightGrad(h, ofHalves, xBuf, halves, both, i32s, i32s, i32s, f32s, rows, 1)))
        return failure();
      h.launch(*sumFn, h.index((kDim * n + 255) / 256), h.index(1), 256, 0, {both, dwBuf, h.index(kDim)});
    } else if (failed(
                   weightGrad(h, weightGradOf(dyElt, wElt, n), xBuf, dyBuf, dwBuf, i32s, i32s, i32s, f32s, rows, 1))) {
      return failure();
    }
    h.b.replaceOp(op, ValueRange{dx, dw});
    return success();
  }

  LogicalResult lower(Host &h, TopKGradOp op) {
    Value logits = op.getLogits();
    gk::TopKConfig c;
    c.logits = eltName(logits.getType());
    c.experts = staticDim(logits, 1);
    c.k = static_cast<int64_t>(op.getK());
    c.score = kernelScore(op.getScore());
    c.renormalize = op.getRenormalize();
    c.scale = op.getScale() ? op.getScale()->convertToDouble() : 1.0;
    auto fn = kernel(h, gk::topKGradName(c), gk::topKGradKernel(c));
    if (failed(fn))
      return failure();
    Value rows = h.dim(logits, 0);
    auto [out, outBuf] = h.output(op.getResult().getType(), logits);
    h.launch(*fn, h.ceilDiv(rows, 256), h.index(1), 256, 0,
             {h.input(logits), h.input(op.getIndices()), h.input(op.getGrad()), outBuf, rows});
    h.b.replaceOp(op, out);
    return success();
  }

  LogicalResult lower(Host &h, GatherGradOp op) {
    Value dy = op.getGrad();
    const std::string dyElt = eltName(dy.getType()), outElt = eltName(op.getResult().getType());
    const int64_t cols = op.getResult().getType().getDimSize(1), k = staticDim(dy, 1);
    auto fn = kernel(h, gk::gatherGradName(dyElt, outElt, cols, k), gk::gatherGradKernel(dyElt, outElt, cols, k));
    if (failed(fn))
      return failure();
    Value rows = h.dim(dy, 0);
    auto [out, outBuf] = h.output(op.getResult().getType(), dy);
    h.launch(*fn, h.ceilDiv(h.mul(rows, h.index(cols)), 256), h.index(1), 256, 0,
             {h.input(op.getIndices()), h.input(dy), outBuf, rows});
    h.b.replaceOp(op, out);
    return success();
  }

  LogicalResult lower(Host &h, ZLossGradOp op) {
    Value logits = op.getLogits();
    const std::string elt = eltName(logits.getType());
    const int64_t experts = staticDim(logits, 1);
    auto fn = kernel(h, gk::zLossGradName(elt, experts), gk::zLossGradKernel(elt, experts));
    if (failed(fn))
      return failure();
    Value rows = h.dim(logits, 0);
    auto [out, outBuf] = h.output(op.getResult().getType(), logits);
    h.launch(*fn, h.ceilDiv(rows, 256), h.index(1), 256, 0, {h.input(logits), h.input(op.getGrad()), outBuf, rows});
    h.b.replaceOp(op, out);
    return success();
  }

  LogicalResult lower(Host &h, RMSNormGradOp op) {
    Value x = op.getInput(), w = op.getWeight(), dy = op.getGrad();
    gk::RMSNormGradConfig c;
    c.x = eltName(x.getType());
    c.w = eltName(w.getType());
    c.dy = eltName(dy.getType());
    c.cols = staticDim(x, 1);
    c.eps = op.getEps().convertToDouble();
    auto rowsFn = kernel(h, c.name(), gk::rmsNormGradRowsKernel(c));
    auto gainFn = kernel(h, gk::rmsNormGradGainName(c), gk::rmsNormGradGainKernel(c));
    if (failed(rowsFn) || failed(gainFn))
      return failure();
    Value rows = h.dim(x, 0);
    auto [dx, dxBuf] = h.output(op.getInputGrad().getType(), x);
    auto [dw, dwBuf] = h.output(op.getWeightGrad().getType(), w);
    Value terms = h.scratch(h.b.getF32Type(), h.mul(rows, h.index(c.cols)));
    // A warp a row, 8 rows a block; then a thread a column.
    h.launch(*rowsFn, h.ceilDiv(rows, 8), h.index(1), 256, 0,
             {h.input(x), h.input(w), h.input(dy), dxBuf, terms, rows});
    h.launch(*gainFn, h.ceilDiv(h.index(c.cols), 256), h.index(1), 256, 0, {terms, dwBuf, rows});
    h.b.replaceOp(op, ValueRange{dx, dw});
    return success();
  }

  LogicalResult lower(Host &h, LoadBalanceLossGradOp op) {
    Value probs = op.getProbs();
    const std::string elt = eltName(probs.getType());
    const int64_t experts = staticDim(probs, 1), k = staticDim(op.getIndices(), 1);
    // The counts the loss saw: every assignment, no capacity.
    gk::DispatchConfig all;
    all.experts = experts;
    all.k = k;
    auto count = kernel(h, "moe_count_" + all.suffix(), gk::countKernel(all));
    auto fn = kernel(h, gk::loadBalanceGradName(elt, experts, k), gk::loadBalanceGradKernel(elt, experts, k));
    if (failed(count) || failed(fn))
      return failure();
    Value rows = h.dim(probs, 0), idx = h.input(op.getIndices());
    Value counts = h.scratch(h.b.getI32Type(), experts);
    h.launch(*count, h.index(experts), h.index(1), gk::kStridedBlock, 0, {idx, counts, rows});
    auto [out, outBuf] = h.output(op.getResult().getType(), probs);
    h.launch(*fn, h.ceilDiv(h.mul(rows, h.index(experts)), 256), h.index(1), 256, 0,
             {counts, h.input(op.getGrad()), outBuf, rows});
    h.b.replaceOp(op, out);
    return success();
  }
};

} // namespace

void moe::gpu_lowering::populateGradientsToGPUKernelsPatterns(RewritePatternSet &patterns,
                                                              const GPUKernelOptions &options,
                                                              std::shared_ptr<KernelModule> kernels) {
  auto lowering = std::make_shared<GPUGradientLowering>(options, std::move(kernels));
  using L = GPUGradientLowering;
  patterns.add<ToKernelLaunch<L, DispatchGradOp>, ToKernelLaunch<L, DenseGradOp>, ToKernelLaunch<L, TopKGradOp>,
               ToKernelLaunch<L, GatherGradOp>, ToKernelLaunch<L, ZLossGradOp>,
               ToKernelLaunch<L, LoadBalanceLossGradOp>, ToKernelLaunch<L, RMSNormGradOp>>(patterns.getContext(),
                                                                                           lowering);
}
