//===- Backward.cpp - the backward's GPU kernels --------------------------===//
//
// What the backward needs beyond the forward's kernels (which it reuses for
// the products through transposed weights): weight cotangents summed over an
// expert's rows, weight transposes, the expert FFN's activation backward,
// and the routing and auxiliary losses' backward. Every sum runs in f32 in a
// fixed order (no atomics), so a backward's bits repeat from call to call.
//
//===----------------------------------------------------------------------===//
#include "GemmCommon.h"
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

using namespace moe::gpu_kernels;

namespace {

std::string f32Of(KernelEmitter &k, const std::string &index) {
  return k.op("arith.uitofp " + k.op("arith.index_cast " + index + " : index to i64") + " : i64 to f32");
}

std::string mulf(KernelEmitter &k, const std::string &a, const std::string &b) {
  return k.op("arith.mulf " + a + ", " + b + " : f32");
}
std::string addf(KernelEmitter &k, const std::string &a, const std::string &b) {
  return k.op("arith.addf " + a + ", " + b + " : f32");
}
std::string subf(KernelEmitter &k, const std::string &a, const std::string &b) {
  return k.op("arith.subf " + a + ", " + b + " : f32");
}
std::string divf(KernelEmitter &k, const std::string &a, const std::string &b) {
  return k.op("arith.divf " + a + ", " + b + " : f32");
}

/// f'(x) for the activations of activation() (the reference evaluator's rules).
std::string activationDerivative(KernelEmitter &k, const std::string &name, const std::string &x) {
  std::string one = k.f32(1.0);
  if (name == "silu") {
    std::string s = activation(k, "sigmoid", x);
    return addf(k, s, mulf(k, x, mulf(k, s, subf(k, one, s))));
  }
  if (name == "relu")
    return k.select(k.op("arith.cmpf ogt, " + x + ", " + k.f32(0.0) + " : f32"), one, k.f32(0.0), "f32");
  if (name == "gelu") {
    // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), t = tanh(c (x + a x^3)).
    std::string c = k.f32(0.7978845608028654), a = k.f32(0.044715), half = k.f32(0.5);
    std::string x2 = mulf(k, x, x);
    std::string t = k.op("math.tanh " + mulf(k, c, addf(k, x, mulf(k, a, mulf(k, x2, x)))) + " : f32");
    std::string inner = addf(k, one, mulf(k, k.f32(3.0), mulf(k, a, x2)));
    std::string right = mulf(k, mulf(k, half, x), mulf(k, subf(k, one, mulf(k, t, t)), mulf(k, c, inner)));
    return addf(k, mulf(k, half, addf(k, one, t)), right);
  }
  return one;
}

/// `value` rounded to `elt` and widened back (the bits a buffer of `elt` keeps).
std::string roundedTo(KernelEmitter &k, const std::string &value, const std::string &elt) {
  if (elt == "f32")
    return value;
  return k.op("arith.extf " + k.op("arith.truncf " + value + " : f32 to " + elt) + " : " + elt + " to f32");
}

} // namespace

// --- weight cotangents ------------------------------------------------------

std::string WeightGradConfig::name() const {
  return llvm::formatv("moe_wgrad_{0}_{1}_{2}_w{3}_m{4}_n{5}_lda{6}_ldb{7}_col{8}_s{9}{10}{11}{12}{13}{14}", a, b, out,
                       w, m, n, lda, ldb, bColumn, segments, gatherA ? "_ga" : "", gatherB ? "_gb" : "",
                       topK ? "_t" + std::to_string(topK) : std::string(), scaleB ? "_scale" : "",
                       !tensorCores    ? ""
                       : !wgmma        ? "_mma"
                       : wgmmaN == 256 ? "_wgmmaw"
                                       : "_wgmma")
      .str();
}

WeightGradTile moe::gpu_kernels::openWeightGradTile(KernelEmitter &k, const WeightGradConfig &c) {
  const int64_t mBlocks = (c.m + c.tileM() - 1) / c.tileM(), nBlocks = (c.n + c.tileN() - 1) / c.tileN();
  WeightGradTile t;
  std::string id = k.op("gpu.block_id x");
  t.s = k.div(id, k.index(mBlocks * nBlocks));
  std::string rest = k.rem(id, k.index(mBlocks * nBlocks));
  // In the GEMMs' grouped order: the blocks running at once share a few A
  // and B panels of the segment in L2 (row-major order re-read all of B's
  // panel from memory for every tile of m).
  auto [mt, nt] = gemm::groupedTile(k, nBlocks, rest, k.index(mBlocks));
  t.m0 = k.mul(mt, k.index(c.tileM()));
  t.n0 = k.mul(nt, k.index(c.tileN()));
  t.lo = k.index(0);
  t.hi = "%rows";
  if (c.segments > 1) {
    t.lo = k.toIndex(k.load("%offsets", t.s, "i32"));
    t.hi = k.toIndex(k.load("%ends", k.add(t.s, k.index(1)), "i32"));
  }
  return t;
}

std::string moe::gpu_kernels::weightGradKernel(const WeightGradConfig &c) {
  if (c.tensorCores)
    return c.wgmma ? weightGradWgmmaKernel(c) : weightGradMmaKernel(c);
  KernelEmitter k;
  constexpr int64_t BK = 16;
  WeightGradTile tile = openWeightGradTile(k, c);
  std::string tid = k.op("gpu.thread_id x");
  const std::string &s = tile.s, &m0 = tile.m0, &n0 = tile.n0, &lo = tile.lo, &hi = tile.hi;
  std::string tx = k.rem(tid, k.index(16)), ty = k.div(tid, k.index(16));
  std::string tileType = "memref<" + std::to_string(BK) + "x64xf32, #gpu.address_space<workgroup>>";
  // The source row of sorted row r (clamped to the segment's first while past its end).
  auto source = [&](const std::string &r, const std::string &valid, bool gather) {
    std::string clamped = k.select(valid, r, lo, "index");
    if (!gather)
      return clamped;
    return k.div(k.toIndex(k.load("%perm", clamped, "i32")), "%topK");
  };
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("r0", lo, hi, k.index(BK), "acc", std::vector<std::string>(16, k.f32(0.0)), acc);
  k.line("gpu.barrier");
  for (int j = 0; j < 4; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string kk = k.div(q, k.index(64)), col = k.rem(q, k.index(64));
    std::string r = k.add("%r0", kk), valid = k.lt(r, hi);
    std::string mm = k.add(m0, col), nn = k.add(n0, col);
    std::string okA = k.op("arith.andi " + valid + ", " + k.lt(mm, k.index(c.m)) + " : i1");
    std::string ra = source(r, valid, c.gatherA);
    std::string va = k.loadF32If(okA, "%A", k.add(k.mul(ra, k.index(c.lda)), mm), c.a);
    k.line("memref.store " + va + ", %As[" + kk + ", " + col + "] : " + tileType);
    std::string okB = k.op("arith.andi " + valid + ", " + k.lt(nn, k.index(c.n)) + " : i1");
    std::string rb = source(r, valid, c.gatherB);
    std::string vb = k.loadF32If(okB, "%B", k.add(k.add(k.mul(rb, k.index(c.ldb)), k.index(c.bColumn)), nn), c.b);
    if (c.scaleB) {
      std::string slot = k.toIndex(k.load("%perm", k.select(valid, r, lo, "index"), "i32"));
      vb = mulf(k, vb, k.loadF32("%w", slot, c.w));
    }
    k.line("memref.store " + vb + ", %Bs[" + kk + ", " + col + "] : " + tileType);
  }
  k.line("gpu.barrier");
  std::vector<std::string> in;
  std::string inner = k.openF32Loop("kk", k.index(0), k.index(BK), k.index(1), "in", acc, in);
  std::vector<std::string> a(4), b(4), res;
  for (int i = 0; i < 4; ++i) {
    a[i] = k.op("memref.load %As[%kk, " + k.add(k.mul(ty, k.index(4)), k.index(i)) + "] : " + tileType);
    b[i] = k.op("memref.load %Bs[%kk, " + k.add(k.mul(tx, k.index(4)), k.index(i)) + "] : " + tileType);
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      res.push_back(k.op("math.fma " + a[i] + ", " + b[j] + ", " + in[i * 4 + j] + " : f32"));
  k.yieldF32(res);
  k.line("}");
  k.yieldF32(KernelEmitter::results(inner, 16));
  k.line("}");
  for (int i = 0; i < 4; ++i) {
    std::string mm = k.add(m0, k.add(k.mul(ty, k.index(4)), k.index(i)));
    for (int j = 0; j < 4; ++j) {
      std::string nn = k.add(n0, k.add(k.mul(tx, k.index(4)), k.index(j)));
      std::string ok = k.op("arith.andi " + k.lt(mm, k.index(c.m)) + ", " + k.lt(nn, k.index(c.n)) + " : i1");
      k.line("scf.if " + ok + " {");
      std::string at = k.add(k.mul(k.add(k.mul(s, k.index(c.m)), mm), k.index(c.n)), nn);
      k.storeF32(loop + "#" + std::to_string(i * 4 + j), "%C", at, c.out);
      k.line("}");
    }
  }
  return k.finish("@" + c.name() + "(%A: " + flatMemref(c.a) + ", %B: " + flatMemref(c.b) +
                      ", %C: " + flatMemref(c.out) +
                      ", %perm: memref<?xi32>, %offsets: memref<?xi32>, %ends: memref<?xi32>, %w: " + flatMemref(c.w) +
                      ", %rows: index, %topK: index)",
                  "workgroup(%As : " + tileType + ", %Bs : " + tileType + ")");
}

// --- transposes -------------------------------------------------------------

std::string TransposeConfig::name() const {
  return llvm::formatv("moe_transpose_{0}_e{1}_r{2}_c{3}_o{4}_at{5}", elt, experts, rows, cols, outRows, rowOffset)
      .str();
}

std::string moe::gpu_kernels::transposeKernel(const TransposeConfig &c) {
  KernelEmitter k;
  const int64_t rBlocks = (c.rows + 31) / 32, cBlocks = (c.cols + 31) / 32;
  std::string id = k.op("gpu.block_id x"), tid = k.op("gpu.thread_id x");
  std::string e = k.div(id, k.index(rBlocks * cBlocks)), rest = k.rem(id, k.index(rBlocks * cBlocks));
  std::string r0 = k.mul(k.div(rest, k.index(cBlocks)), k.index(32));
  std::string c0 = k.mul(k.rem(rest, k.index(cBlocks)), k.index(32));
  std::string tx = k.rem(tid, k.index(32)), ty = k.div(tid, k.index(32));
  // 33 columns: a warp's column reads fall in 32 different banks.
  std::string tileType = "memref<32x33xf32, #gpu.address_space<workgroup>>";
  for (int i = 0; i < 4; ++i) {
    std::string row = k.add(ty, k.index(8 * i));
    std::string r = k.add(r0, row), col = k.add(c0, tx);
    std::string ok = k.op("arith.andi " + k.lt(r, k.index(c.rows)) + ", " + k.lt(col, k.index(c.cols)) + " : i1");
    std::string at = k.add(k.mul(k.add(k.mul(e, k.index(c.rows)), r), k.index(c.cols)), col);
    k.line("memref.store " + k.loadF32If(ok, "%in", at, c.elt) + ", %tile[" + row + ", " + tx + "] : " + tileType);
  }
  k.line("gpu.barrier");
  for (int i = 0; i < 4; ++i) {
    std::string row = k.add(ty, k.index(8 * i));
    std::string col = k.add(c0, row), r = k.add(r0, tx);
    std::string ok = k.op("arith.andi " + k.lt(r, k.index(c.rows)) + ", " + k.lt(col, k.index(c.cols)) + " : i1");
    k.line("scf.if " + ok + " {");
    std::string v = k.op("memref.load %tile[" + tx + ", " + row + "] : " + tileType);
    std::string outRow = k.add(k.mul(e, k.index(c.outRows)), k.add(k.index(c.rowOffset), col));
    k.storeF32(v, "%out", k.add(k.mul(outRow, k.index(c.rows)), r), c.elt);
    k.line("}");
  }
  return k.finish("@" + c.name() + "(%in: " + flatMemref(c.elt) + ", %out: " + flatMemref(c.elt) + ")",
                  "workgroup(%tile : " + tileType + ")");
}

// --- the expert FFN's activation --------------------------------------------

std::string FfnActivationGradConfig::name() const {
  return llvm::formatv("moe_ffn_act_grad_{0}_w{1}_f{2}_{3}{4}{5}{6}", elt, w, inner, act, glu ? "_glu" : "",
                       scaleHidden ? "_wh" : "", keptUp ? "_kept" : "")
      .str();
}

std::string moe::gpu_kernels::ffnActivationGradKernel(const FfnActivationGradConfig &c) {
  KernelEmitter k;
  std::string a = k.op("gpu.block_id x"), tid = k.op("gpu.thread_id x");
  std::string first = k.op("arith.cmpi eq, " + tid + ", " + k.index(0) + " : index");
  std::string p32 = k.load("%slotPos", a, "i32");
  std::string kept = k.op("arith.cmpi sge, " + p32 + ", " + k.i32(0) + " : i32");
  // Uniform over the block: every thread takes the same branch.
  k.line("scf.if " + kept + " {");
  std::string p = k.toIndex(p32), f = k.index(c.inner);
  std::string w = k.loadF32("%w", a, c.w);
  std::string row = k.mul(p, f), gradRow = k.mul(p, k.index(c.glu ? 2 * c.inner : c.inner));
  std::string partial = k.fresh();
  k.line(partial + " = scf.for %j = " + tid + " to " + f + " step " + k.index(256) + " iter_args(%acc = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string at = k.add(row, "%j");
  std::string d = k.load("%dHu", at, "f32");
  // The kept products: assignment a's row of [G | U].
  std::string upAt = k.add(k.mul(a, k.index(c.glu ? 2 * c.inner : c.inner)), "%j");
  std::string g = c.keptUp ? k.loadF32("%G", upAt, c.elt) : k.load("%G", at, "f32");
  std::string act = activation(k, c.act, g);
  std::string u = !c.glu ? "" : c.keptUp ? k.loadF32("%U", k.add(upAt, f), c.elt) : k.load("%U", at, "f32");
  std::string h = roundedTo(k, c.glu ? mulf(k, act, u) : act, c.elt);
  k.storeF32(c.scaleHidden ? mulf(k, w, h) : h, "%H", at, c.elt);
  std::string dh = mulf(k, w, d);
  std::string dg = mulf(k, c.glu ? mulf(k, dh, u) : dh, activationDerivative(k, c.act, g));
  k.storeF32(dg, "%dGU", k.add(gradRow, "%j"), c.elt);
  if (c.glu)
    k.storeF32(mulf(k, dh, act), "%dGU", k.add(k.add(gradRow, f), "%j"), c.elt);
  k.line("scf.yield " + k.op("math.fma " + h + ", " + d + ", %acc : f32") + " : f32");
  k.line("}");
  std::string total = k.op("gpu.all_reduce add " + partial + " uniform {} : (f32) -> (f32)");
  k.line("scf.if " + first + " {");
  k.storeF32(total, "%dw", a, c.w);
  k.line("}");
  k.line("} else {");
  k.line("scf.if " + first + " {");
  k.storeF32(k.f32(0.0), "%dw", a, c.w);
  k.line("}");
  k.line("}");
  const std::string upType = c.keptUp ? flatMemref(c.elt) : "memref<?xf32>";
  return k.finish("@" + c.name() + "(%G: " + upType + ", %U: " + upType + ", %dHu: memref<?xf32>, %w: " +
                  flatMemref(c.w) + ", %slotPos: memref<?xi32>, %dGU: " + flatMemref(c.elt) +
                  ", %H: " + flatMemref(c.elt) + ", %dw: " + flatMemref(c.w) + ", %rows: index)");
}

// --- routing and the auxiliary losses ---------------------------------------

std::string moe::gpu_kernels::topKGradName(const TopKConfig &c) { return "moe_topk_grad_" + c.name(); }

std::string moe::gpu_kernels::topKGradKernel(const TopKConfig &c) {
  KernelEmitter k;
  std::string t = k.globalId();
  k.line("scf.if " + k.lt(t, "%rows") + " {");
  std::string base = k.mul(t, k.index(c.experts));
  std::string m, sum;
  if (c.score == MOE_SCORE_SOFTMAX)
    std::tie(m, sum) = maxAndSumExp(k, "%logits", c.logits, base, c.experts);
  auto score = [&](const std::string &v) {
    if (c.score == MOE_SCORE_SOFTMAX)
      return divf(k, k.op("math.exp " + subf(k, v, m) + " : f32"), sum);
    if (c.score == MOE_SCORE_SIGMOID)
      return activation(k, "sigmoid", v);
    return v;
  };
  std::string sc = k.f32(c.scale);
  std::vector<std::string> idx(c.k), s(c.k), dv(c.k), ds(c.k);
  std::string total = k.f32(0.0), weighted = k.f32(0.0);
  for (int64_t j = 0; j < c.k; ++j) {
    std::string slot = k.add(k.mul(t, k.index(c.k)), k.index(j));
    idx[j] = k.load("%indices", slot, "i32");
    s[j] = score(k.loadF32("%logits", k.add(base, k.toIndex(idx[j])), c.logits));
    dv[j] = k.load("%dvalues", slot, "f32");
    total = addf(k, total, s[j]);
    weighted = addf(k, weighted, mulf(k, dv[j], s[j]));
  }
  std::string dot = k.f32(0.0);
  for (int64_t j = 0; j < c.k; ++j) {
    std::string g = mulf(k, dv[j], sc);
    ds[j] = c.renormalize ? subf(k, divf(k, g, total), divf(k, mulf(k, sc, weighted), mulf(k, total, total))) : g;
    dot = addf(k, dot, mulf(k, ds[j], s[j]));
  }
  k.line("scf.for %e = " + k.index(0) + " to " + k.index(c.experts) + " step " + k.index(1) + " {");
  std::string e32 = k.toI32("%e");
  std::string dse = k.f32(0.0);
  for (int64_t j = 0; j < c.k; ++j) {
    std::string is = k.op("arith.cmpi eq, " + idx[j] + ", " + e32 + " : i32");
    dse = addf(k, dse, k.select(is, ds[j], k.f32(0.0), "f32"));
  }
  std::string se = score(k.loadF32("%logits", k.add(base, "%e"), c.logits));
  std::string v = c.score == MOE_SCORE_SOFTMAX   ? mulf(k, se, subf(k, dse, dot))
                  : c.score == MOE_SCORE_SIGMOID ? mulf(k, dse, mulf(k, se, subf(k, k.f32(1.0), se)))
                                                 : dse;
  k.storeF32(v, "%out", k.add(base, "%e"), c.logits);
  k.line("}");
  k.line("}");
  return k.finish("@" + topKGradName(c) + "(%logits: " + flatMemref(c.logits) +
                  ", %indices: memref<?xi32>, %dvalues: memref<?xf32>, %out: " + flatMemref(c.logits) +
                  ", %rows: index)");
}

std::string moe::gpu_kernels::gatherGradName(const std::string &dy, const std::string &out, int64_t cols, int64_t k) {
  return llvm::formatv("moe_gather_grad_{0}_{1}_c{2}_k{3}", dy, out, cols, k).str();
}

std::string moe::gpu_kernels::gatherGradKernel(const std::string &dy, const std::string &out, int64_t cols,
                                               int64_t topK) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(cols))) + " {");
  std::string t = k.div(i, k.index(cols)), c32 = k.toI32(k.rem(i, k.index(cols)));
  std::string sum = k.f32(0.0);
  for (int64_t j = 0; j < topK; ++j) {
    std::string slot = k.add(k.mul(t, k.index(topK)), k.index(j));
    std::string is = k.op("arith.cmpi eq, " + k.load("%indices", slot, "i32") + ", " + c32 + " : i32");
    sum = addf(k, sum, k.select(is, k.loadF32("%dy", slot, dy), k.f32(0.0), "f32"));
  }
  k.storeF32(sum, "%out", i, out);
  k.line("}");
  return k.finish("@" + gatherGradName(dy, out, cols, topK) + "(%indices: memref<?xi32>, %dy: " + flatMemref(dy) +
                  ", %out: " + flatMemref(out) + ", %rows: index)");
}

std::string moe::gpu_kernels::zLossGradName(const std::string &elt, int64_t experts) {
  return "moe_z_loss_grad_" + elt + "_e" + std::to_string(experts);
}

std::string moe::gpu_kernels::zLossGradKernel(const std::string &elt, int64_t experts) {
  KernelEmitter k;
  std::string t = k.globalId();
  k.line("scf.if " + k.lt(t, "%rows") + " {");
  std::string base = k.mul(t, k.index(experts));
  auto [m, sum] = maxAndSumExp(k, "%logits", elt, base, experts);
  std::string lse = addf(k, m, k.op("math.log " + sum + " : f32"));
  std::string factor =
      divf(k, mulf(k, mulf(k, k.load("%dloss", k.index(0), "f32"), k.f32(2.0)), lse), f32Of(k, "%rows"));
  k.line("scf.for %e = " + k.index(0) + " to " + k.index(experts) + " step " + k.index(1) + " {");
  std::string v = k.loadF32("%logits", k.add(base, "%e"), elt);
  k.storeF32(mulf(k, factor, k.op("math.exp " + subf(k, v, lse) + " : f32")), "%out", k.add(base, "%e"), elt);
  k.line("}");
  k.line("}");
  return k.finish("@" + zLossGradName(elt, experts) + "(%logits: " + flatMemref(elt) +
                  ", %dloss: memref<?xf32>, %out: " + flatMemref(elt) + ", %rows: index)");
}

std::string moe::gpu_kernels::loadBalanceGradName(const std::string &elt, int64_t experts, int64_t topK) {
  return "moe_load_balance_grad_" + elt + "_e" + std::to_string(experts) + "_k" + std::to_string(topK);
}

std::string moe::gpu_kernels::loadBalanceGradKernel(const std::string &elt, int64_t experts, int64_t topK) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(experts))) + " {");
  std::string e = k.rem(i, k.index(experts));
  std::string count = k.op("arith.uitofp " + k.load("%counts", e, "i32") + " : i32 to f32");
  std::string rows = f32Of(k, "%rows");
  std::string assignments = f32Of(k, k.mul("%rows", k.index(topK)));
  std::string g = mulf(k, k.load("%dloss", k.index(0), "f32"), k.f32(static_cast<double>(experts)));
  k.storeF32(divf(k, divf(k, mulf(k, g, count), assignments), rows), "%out", i, elt);
  k.line("}");
  return k.finish("@" + loadBalanceGradName(elt, experts, topK) +
                  "(%counts: memref<?xi32>, %dloss: memref<?xf32>, %out: " + flatMemref(elt) + ", %rows: index)");
}

std::string moe::gpu_kernels::denseInputGradName(const std::string &dy, const std::string &w, const std::string &dx,
                                                 int64_t kDim, int64_t n) {
  return llvm::formatv("moe_dense_dx_{0}_{1}_{2}_k{3}_n{4}", dy, w, dx, kDim, n).str();
}

std::string moe::gpu_kernels::denseInputGradKernel(const std::string &dy, const std::string &w, const std::string &dx,
                                                   int64_t kDim, int64_t n) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(kDim))) + " {");
  std::string t = k.div(i, k.index(kDim)), c = k.rem(i, k.index(kDim));
  std::string sum = k.fresh();
  k.line(sum + " = scf.for %j = " + k.index(0) + " to " + k.index(n) + " step " + k.index(1) +
         " iter_args(%acc = " + k.f32(0.0) + ") -> (f32) {");
  std::string g = k.loadF32("%dy", k.add(k.mul(t, k.index(n)), "%j"), dy);
  std::string wv = k.loadF32("%w", k.add(k.mul(c, k.index(n)), "%j"), w);
  k.line("scf.yield " + k.op("math.fma " + g + ", " + wv + ", %acc : f32") + " : f32");
  k.line("}");
  k.storeF32(sum, "%dx", i, dx);
  k.line("}");
  return k.finish("@" + denseInputGradName(dy, w, dx, kDim, n) + "(%dy: " + flatMemref(dy) + ", %w: " + flatMemref(w) +
                  ", %dx: " + flatMemref(dx) + ", %rows: index)");
}

std::string moe::gpu_kernels::splitHighLowName(const std::string &elt, int64_t n) {
  return llvm::formatv("moe_split_high_low_f32_{0}_n{1}", elt, n).str();
}

std::string moe::gpu_kernels::splitHighLowKernel(const std::string &elt, int64_t n) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(n))) + " {");
  std::string r = k.div(i, k.index(n)), j = k.rem(i, k.index(n));
  std::string v = k.load("%x", i, "f32");
  std::string high = k.op("arith.truncf " + v + " : f32 to " + elt);
  std::string rest = k.f32op("subf", v, k.op("arith.extf " + high + " : " + elt + " to f32"));
  std::string row = k.mul(r, k.index(2 * n));
  k.store(high, "%out", k.add(row, j), elt);
  k.store(k.op("arith.truncf " + rest + " : f32 to " + elt), "%out", k.add(k.add(row, k.index(n)), j), elt);
  k.line("}");
  return k.finish("@" + splitHighLowName(elt, n) + "(%x: memref<?xf32>, %out: " + flatMemref(elt) + ", %rows: index)");
}

std::string moe::gpu_kernels::sumHalvesName(const std::string &elt, int64_t n) {
  return llvm::formatv("moe_sum_halves_f32_{0}_n{1}", elt, n).str();
}

std::string moe::gpu_kernels::sumHalvesKernel(const std::string &elt, int64_t n) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(n))) + " {");
  std::string r = k.div(i, k.index(n)), j = k.rem(i, k.index(n));
  std::string row = k.mul(r, k.index(2 * n));
  std::string high = k.load("%in", k.add(row, j), "f32"), low = k.load("%in", k.add(k.add(row, k.index(n)), j), "f32");
  k.storeF32(k.f32op("addf", high, low), "%out", i, elt);
  k.line("}");
  return k.finish("@" + sumHalvesName(elt, n) + "(%in: memref<?xf32>, %out: " + flatMemref(elt) + ", %rows: index)");
}
