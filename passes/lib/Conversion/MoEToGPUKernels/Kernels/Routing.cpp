//===- Routing.cpp - top-k, group top-k, gather and loss kernels ----------===//
//
// Routing work is per token and small (tens to hundreds of experts). A warp
// owns a token: lane l holds experts l, l + 32, ... in registers (loaded
// coalesced), each selection takes every lane's best not yet chosen and
// reduces them across the warp with shuffles, with the CPU kernels' order
// (higher score first, equal scores: lower expert first). A thread a token
// (every selection a pass over its scores) is left for k > 32: it leaves
// most SMs idle (docs/performance.md, "Measured choices").
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <tuple>

using namespace moe::gpu_kernels;

namespace {

/// One selection step: the best score `s` of expert `e32` not yet taken,
/// given the previous pick (pv, pe) and the best so far (bv, be). Returns the
/// new (bv, be).
std::pair<std::string, std::string> consider(KernelEmitter &k, const std::string &s, const std::string &e32,
                                             const std::string &pv, const std::string &pe, const std::string &bv,
                                             const std::string &be) {
  std::string lt = k.op("arith.cmpf olt, " + s + ", " + pv + " : f32");
  std::string eq = k.op("arith.cmpf oeq, " + s + ", " + pv + " : f32");
  std::string after = k.op("arith.cmpi sgt, " + e32 + ", " + pe + " : i32");
  std::string allowed = k.op("arith.ori " + lt + ", " + k.op("arith.andi " + eq + ", " + after + " : i1") + " : i1");
  std::string none = k.op("arith.cmpi eq, " + be + ", " + k.i32(-1) + " : i32");
  std::string gt = k.op("arith.cmpf ogt, " + s + ", " + bv + " : f32");
  std::string take = k.op("arith.andi " + allowed + ", " + k.op("arith.ori " + none + ", " + gt + " : i1") + " : i1");
  return {k.select(take, s, bv, "f32"), k.select(take, e32, be, "i32")};
}

/// Opens `scf.if t < rows` for the thread's token and returns t.
std::string openToken(KernelEmitter &k, const std::string &rows) {
  std::string t = k.globalId();
  k.line("scf.if " + k.lt(t, rows) + " {");
  return t;
}

// --- a warp a token ------------------------------------------------------------

/// A warp's token: its id (block_id * tokens a block + warp), the lane, and
/// `scf.if token < rows` opened (uniform across the warp, so shuffles inside
/// see all 32 lanes).
struct WarpToken {
  std::string t, lane;
};
WarpToken openWarpToken(KernelEmitter &k) {
  std::string tid = k.op("gpu.thread_id x");
  std::string warp = k.div(tid, k.index(32));
  WarpToken w{k.add(k.mul(k.op("gpu.block_id x"), k.index(kTokensPerRoutingBlock)), warp), k.rem(tid, k.index(32))};
  k.line("scf.if " + k.lt(w.t, "%rows") + " {");
  return w;
}

/// The lane's share of a token's row of `experts` values: experts lane + 32 i,
/// f32 (-inf past the row's end, where `valid` is false).
struct LaneRow {
  std::vector<std::string> value, expert, valid; ///< valid: "" when always in the row
};
LaneRow loadLaneRow(KernelEmitter &k, const std::string &memref, const std::string &elt, const std::string &base,
                    const std::string &lane, int64_t experts) {
  LaneRow r;
  for (int64_t i = 0; i < (experts + 31) / 32; ++i) {
    std::string e = k.add(lane, k.index(32 * i));
    r.expert.push_back(k.toI32(e));
    if (32 * (i + 1) <= experts) {
      r.valid.push_back("");
      r.value.push_back(k.loadF32(memref, k.add(base, e), elt));
      continue;
    }
    r.valid.push_back(k.lt(e, k.index(experts)));
    std::string v = k.loadF32If(r.valid.back(), memref, k.add(base, e), elt);
    r.value.push_back(k.select(r.valid.back(), v, k.f32(-INFINITY), "f32"));
  }
  return r;
}

/// Top `count` (<= 32) of `values` over the warp in the CPU's order (higher
/// first, equal values: lower expert first): pick j ends in lane j, as
/// (value, expert); the other lanes hold -inf, -1.
std::pair<std::string, std::string> warpTopK(KernelEmitter &k, const LaneRow &row,
                                             const std::vector<std::string> &values, int64_t count,
                                             const std::string &lane) {
  std::string ninf = k.f32(-INFINITY), none = k.i32(-1);
  std::string sel = k.fresh();
  k.line(sel + ":4 = scf.for %j = " + k.index(0) + " to " + k.index(count) + " step " + k.index(1) +
         " iter_args(%pv = " + k.f32(INFINITY) + ", %pe = " + none + ", %mv = " + ninf + ", %me = " + none +
         ") -> (f32, i32, f32, i32) {");
  // This lane's best after the previous pick (pv, pe)...
  std::string bv = ninf, be = none;
  for (size_t i = 0; i < values.size(); ++i) {
    auto [v, e] = consider(k, values[i], row.expert[i], "%pv", "%pe", bv, be);
    if (!row.valid[i].empty()) { // never a slot past the row's end
      v = k.select(row.valid[i], v, bv, "f32");
      e = k.select(row.valid[i], e, be, "i32");
    }
    bv = v, be = e;
  }
  // ...and the warp's: a lane with none (-1) loses to any, else higher, then lower expert.
  for (int64_t mask = 16; mask >= 1; mask /= 2) {
    std::string ov = k.shuffleXor(bv, mask, "f32"), oe = k.shuffleXor(be, mask, "i32");
    std::string has = k.op("arith.cmpi ne, " + oe + ", " + none + " : i32");
    std::string mineNone = k.op("arith.cmpi eq, " + be + ", " + none + " : i32");
    std::string higher = k.op("arith.cmpf ogt, " + ov + ", " + bv + " : f32");
    std::string tieLower = k.op("arith.andi " + k.op("arith.cmpf oeq, " + ov + ", " + bv + " : f32") + ", " +
                                k.op("arith.cmpi slt, " + oe + ", " + be + " : i32") + " : i1");
    std::string wins =
        k.op("arith.ori " + mineNone + ", " + k.op("arith.ori " + higher + ", " + tieLower + " : i1") + " : i1");
    std::string take = k.op("arith.andi " + has + ", " + wins + " : i1");
    bv = k.select(take, ov, bv, "f32");
    be = k.select(take, oe, be, "i32");
  }
  std::string mine = k.op("arith.cmpi eq, " + lane + ", %j : index");
  k.line("scf.yield " + bv + ", " + be + ", " + k.select(mine, bv, "%mv", "f32") + ", " +
         k.select(mine, be, "%me", "i32") + " : f32, i32, f32, i32");
  k.line("}");
  return {sel + "#2", sel + "#3"};
}

/// One thread a token (k > 32).
std::string threadTopKKernel(const TopKConfig &c);
std::string threadGroupTopKKernel(const GroupTopKConfig &c);

} // namespace

std::string TopKConfig::name() const {
  return llvm::formatv("moe_topk_{0}_{1}_e{2}_k{3}_s{4}_r{5}_x{6}", logits, values, experts, k, static_cast<int>(score),
                       renormalize ? 1 : 0, static_cast<int64_t>(scale * 1e6))
      .str();
}

std::string moe::gpu_kernels::topKKernel(const TopKConfig &c) {
  if (c.k > 32)
    return threadTopKKernel(c);
  KernelEmitter k;
  WarpToken w = openWarpToken(k);
  LaneRow row = loadLaneRow(k, "%logits", c.logits, k.mul(w.t, k.index(c.experts)), w.lane, c.experts);
  // Selection on the logits: every score function is increasing, so the
  // order is the scores' (and no lane computes a score it does not pick).
  auto [pickLogit, pickExpert] = warpTopK(k, row, row.value, c.k, w.lane);
  std::string isPick = k.lt(w.lane, k.index(c.k));
  std::string score = pickLogit;
  if (c.score == MOE_SCORE_SOFTMAX) {
    std::string m = row.value[0];
    for (size_t i = 1; i < row.value.size(); ++i)
      m = k.op("arith.maximumf " + m + ", " + row.value[i] + " : f32");
    m = k.warpReduce(m, "maximumf");
    std::string sum = k.f32(0.0);
    for (size_t i = 0; i < row.value.size(); ++i) {
      std::string x = k.op("math.exp " + k.op("arith.subf " + row.value[i] + ", " + m + " : f32") + " : f32");
      sum = k.op("arith.addf " + sum + ", " + x + " : f32"); // exp(-inf - m) = 0 past the row's end
    }
    sum = k.warpReduce(sum, "addf");
    score = k.op("arith.divf " + k.op("math.exp " + k.op("arith.subf " + pickLogit + ", " + m + " : f32") + " : f32") +
                 ", " + sum + " : f32");
  } else if (c.score == MOE_SCORE_SIGMOID) {
    score = activation(k, "sigmoid", pickLogit);
  }
  std::string v = score;
  if (c.renormalize) {
    std::string total = k.warpReduce(k.select(isPick, score, k.f32(0.0), "f32"), "addf");
    v = k.op("arith.divf " + v + ", " + total + " : f32");
  }
  if (c.scale != 1.0)
    v = k.op("arith.mulf " + v + ", " + k.f32(c.scale) + " : f32");
  k.line("scf.if " + isPick + " {");
  std::string slot = k.add(k.mul(w.t, k.index(c.k)), w.lane);
  k.store(pickExpert, "%indices", slot, "i32");
  k.storeF32(v, "%values", slot, c.values);
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%logits: " + flatMemref(c.logits) + ", %values: " + flatMemref(c.values) +
                  ", %indices: memref<?xi32>, %rows: index)");
}

namespace {
std::string threadTopKKernel(const TopKConfig &c) {
  KernelEmitter k;
  std::string t = openToken(k, "%rows");
  std::string base = k.mul(t, k.index(c.experts));
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(c.experts);
  std::string m, sum;
  if (c.score == MOE_SCORE_SOFTMAX)
    std::tie(m, sum) = maxAndSumExp(k, "%logits", c.logits, base, c.experts);
  auto score = [&](const std::string &e) {
    std::string v = k.loadF32("%logits", k.add(base, e), c.logits);
    if (c.score == MOE_SCORE_SOFTMAX)
      return k.op("arith.divf " + k.op("math.exp " + k.op("arith.subf " + v + ", " + m + " : f32") + " : f32") + ", " +
                  sum + " : f32");
    if (c.score == MOE_SCORE_SIGMOID)
      return activation(k, "sigmoid", v);
    return v;
  };
  std::string sel = k.fresh();
  k.line(sel + ":3 = scf.for %j = " + c0 + " to " + k.index(c.k) + " step " + c1 + " iter_args(%pv = " +
         k.f32(INFINITY) + ", %pe = " + k.i32(-1) + ", %total = " + k.f32(0.0) + ") -> (f32, i32, f32) {");
  std::string best = k.fresh();
  k.line(best + ":2 = scf.for %e = " + c0 + " to " + cE + " step " + c1 + " iter_args(%bv = " + k.f32(-INFINITY) +
         ", %be = " + k.i32(-1) + ") -> (f32, i32) {");
  auto [bv, be] = consider(k, score("%e"), k.toI32("%e"), "%pv", "%pe", "%bv", "%be");
  k.line("scf.yield " + bv + ", " + be + " : f32, i32");
  k.line("}");
  std::string slot = k.add(k.mul(t, k.index(c.k)), "%j");
  k.store(best + "#1", "%indices", slot, "i32");
  k.line("scf.yield " + best + "#0, " + best + "#1, " + k.op("arith.addf %total, " + best + "#0 : f32") +
         " : f32, i32, f32");
  k.line("}");
  // Values: the chosen scores, renormalised over the k and scaled.
  k.line("scf.for %j = " + c0 + " to " + k.index(c.k) + " step " + c1 + " {");
  std::string slot2 = k.add(k.mul(t, k.index(c.k)), "%j");
  std::string e = k.toIndex(k.load("%indices", slot2, "i32"));
  std::string v = score(e);
  if (c.renormalize)
    v = k.op("arith.divf " + v + ", " + sel + "#2 : f32");
  if (c.scale != 1.0)
    v = k.op("arith.mulf " + v + ", " + k.f32(c.scale) + " : f32");
  k.storeF32(v, "%values", slot2, c.values);
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%logits: " + flatMemref(c.logits) + ", %values: " + flatMemref(c.values) +
                  ", %indices: memref<?xi32>, %rows: index)");
}
} // namespace

std::string GroupTopKConfig::name() const {
  return llvm::formatv("moe_group_topk_{0}_e{1}_k{2}_g{3}_t{4}", scores, experts, k, groups, topGroups).str();
}

std::string moe::gpu_kernels::groupTopKKernel(const GroupTopKConfig &c) {
  if (c.k > 32)
    return threadGroupTopKKernel(c);
  KernelEmitter k;
  const int64_t size = c.experts / c.groups;
  WarpToken w = openWarpToken(k);
  LaneRow row = loadLaneRow(k, "%scores", c.scores, k.mul(w.t, k.index(c.experts)), w.lane, c.experts);
  std::string ninf = k.f32(-INFINITY);
  std::vector<std::string> groupOf;
  for (const std::string &e : row.expert)
    groupOf.push_back(k.op("arith.divui " + e + ", " + k.i32(size) + " : i32"));
  // Group scores, the same in every lane: the sum of each group's best two
  // (one, for groups of one), as a multiset (two equal best count twice).
  std::vector<std::string> groupScore;
  for (int64_t g = 0; g < c.groups; ++g) {
    std::string b1 = ninf, b2 = ninf;
    for (size_t i = 0; i < row.value.size(); ++i) {
      std::string in = k.op("arith.cmpi eq, " + groupOf[i] + ", " + k.i32(g) + " : i32");
      if (!row.valid[i].empty())
        in = k.op("arith.andi " + in + ", " + row.valid[i] + " : i1");
      std::string s = k.select(in, row.value[i], ninf, "f32");
      std::string above = k.op("arith.cmpf ogt, " + s + ", " + b1 + " : f32");
      std::string n2 = k.select(above, b1, k.op("arith.maximumf " + b2 + ", " + s + " : f32"), "f32");
      b1 = k.select(above, s, b1, "f32"), b2 = n2;
    }
    for (int64_t mask = 16; mask >= 1; mask /= 2) {
      std::string o1 = k.shuffleXor(b1, mask, "f32"), o2 = k.shuffleXor(b2, mask, "f32");
      // The best two of {b1 >= b2} and {o1 >= o2}.
      std::string mineFirst = k.op("arith.cmpf oge, " + b1 + ", " + o1 + " : f32");
      std::string n2 = k.select(mineFirst, k.op("arith.maximumf " + b2 + ", " + o1 + " : f32"),
                                k.op("arith.maximumf " + b1 + ", " + o2 + " : f32"), "f32");
      b1 = k.op("arith.maximumf " + b1 + ", " + o1 + " : f32"), b2 = n2;
    }
    groupScore.push_back(size >= 2 ? k.op("arith.addf " + b1 + ", " + b2 + " : f32") : b1);
  }
  // The best topGroups groups, by the same rule as experts (every lane alike).
  std::vector<std::string> kept(c.groups, k.boolean(false));
  std::string pv = k.f32(INFINITY), pe = k.i32(-1);
  for (int64_t j = 0; j < c.topGroups; ++j) {
    std::string bv = ninf, be = k.i32(-1);
    for (int64_t g = 0; g < c.groups; ++g)
      std::tie(bv, be) = consider(k, groupScore[g], k.i32(g), pv, pe, bv, be);
    for (int64_t g = 0; g < c.groups; ++g)
      kept[g] =
          k.op("arith.ori " + kept[g] + ", " + k.op("arith.cmpi eq, " + be + ", " + k.i32(g) + " : i32") + " : i1");
    pv = bv, pe = be;
  }
  // Top-k over the kept groups' experts (the others count as -inf, as the CPU).
  std::vector<std::string> masked;
  for (size_t i = 0; i < row.value.size(); ++i) {
    std::string isKept = k.boolean(false);
    for (int64_t g = 0; g < c.groups; ++g)
      isKept = k.select(k.op("arith.cmpi eq, " + groupOf[i] + ", " + k.i32(g) + " : i32"), kept[g], isKept, "i1");
    masked.push_back(k.select(isKept, row.value[i], ninf, "f32"));
  }
  std::string pickExpert = warpTopK(k, row, masked, c.k, w.lane).second;
  k.line("scf.if " + k.lt(w.lane, k.index(c.k)) + " {");
  k.store(pickExpert, "%indices", k.add(k.mul(w.t, k.index(c.k)), w.lane), "i32");
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%scores: " + flatMemref(c.scores) + ", %indices: memref<?xi32>, %rows: index)");
}

namespace {
std::string threadGroupTopKKernel(const GroupTopKConfig &c) {
  KernelEmitter k;
  const int64_t size = c.experts / c.groups;
  std::string t = openToken(k, "%rows");
  std::string base = k.mul(t, k.index(c.experts));
  std::string c0 = k.index(0), c1 = k.index(1), ninf = k.f32(-INFINITY);
  std::string groupType = "memref<" + std::to_string(c.groups) + "xf32>";
  std::string keepType = "memref<" + std::to_string(c.groups) + "xi32>";
  std::string gs = k.op("memref.alloca() : " + groupType), keep = k.op("memref.alloca() : " + keepType);
  // Group scores: the sum of each group's best two (one, for groups of one).
  k.line("scf.for %g = " + c0 + " to " + k.index(c.groups) + " step " + c1 + " {");
  std::string gb = k.mul("%g", k.index(size));
  std::string top2 = k.fresh();
  k.line(top2 + ":2 = scf.for %i = " + c0 + " to " + k.index(size) + " step " + c1 + " iter_args(%b1 = " + ninf +
         ", %b2 = " + ninf + ") -> (f32, f32) {");
  std::string s = k.loadF32("%scores", k.add(base, k.add(gb, "%i")), c.scores);
  std::string above1 = k.op("arith.cmpf ogt, " + s + ", %b1 : f32");
  std::string n2 = k.select(above1, "%b1", k.op("arith.maximumf %b2, " + s + " : f32"), "f32");
  std::string n1 = k.select(above1, s, "%b1", "f32");
  k.line("scf.yield " + n1 + ", " + n2 + " : f32, f32");
  k.line("}");
  std::string groupScore = size >= 2 ? k.op("arith.addf " + top2 + "#0, " + top2 + "#1 : f32") : top2 + "#0";
  k.line("memref.store " + groupScore + ", " + gs + "[%g] : " + groupType);
  k.line("memref.store " + k.i32(0) + ", " + keep + "[%g] : " + keepType);
  k.line("}");
  // Keep the best topGroups groups.
  std::string gsel = k.fresh();
  k.line(gsel + ":2 = scf.for %j = " + c0 + " to " + k.index(c.topGroups) + " step " + c1 +
         " iter_args(%pv = " + k.f32(INFINITY) + ", %pe = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string gbest = k.fresh();
  k.line(gbest + ":2 = scf.for %g = " + c0 + " to " + k.index(c.groups) + " step " + c1 + " iter_args(%bv = " + ninf +
         ", %be = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string v = k.op("memref.load " + gs + "[%g] : " + groupType);
  auto [bv, be] = consider(k, v, k.toI32("%g"), "%pv", "%pe", "%bv", "%be");
  k.line("scf.yield " + bv + ", " + be + " : f32, i32");
  k.line("}");
  k.line("memref.store " + k.i32(1) + ", " + keep + "[" + k.toIndex(gbest + "#1") + "] : " + keepType);
  k.line("scf.yield " + gbest + "#0, " + gbest + "#1 : f32, i32");
  k.line("}");
  // Top-k over the kept groups' experts.
  k.line(k.fresh() + ":2 = scf.for %j = " + c0 + " to " + k.index(c.k) + " step " + c1 +
         " iter_args(%pv = " + k.f32(INFINITY) + ", %pe = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string best = k.fresh();
  k.line(best + ":2 = scf.for %e = " + c0 + " to " + k.index(c.experts) + " step " + c1 + " iter_args(%bv = " + ninf +
         ", %be = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string raw = k.loadF32("%scores", k.add(base, "%e"), c.scores);
  std::string kept = k.op("memref.load " + keep + "[" + k.div("%e", k.index(size)) + "] : " + keepType);
  std::string isKept = k.op("arith.cmpi ne, " + kept + ", " + k.i32(0) + " : i32");
  std::string masked = k.select(isKept, raw, ninf, "f32");
  auto [bv2, be2] = consider(k, masked, k.toI32("%e"), "%pv", "%pe", "%bv", "%be");
  k.line("scf.yield " + bv2 + ", " + be2 + " : f32, i32");
  k.line("}");
  k.store(best + "#1", "%indices", k.add(k.mul(t, k.index(c.k)), "%j"), "i32");
  k.line("scf.yield " + best + "#0, " + best + "#1 : f32, i32");
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%scores: " + flatMemref(c.scores) + ", %indices: memref<?xi32>, %rows: index)");
}
} // namespace

std::string GatherConfig::name() const { return llvm::formatv("moe_gather_{0}_c{1}_k{2}", elt, cols, k).str(); }

std::string moe::gpu_kernels::gatherKernel(const GatherConfig &c) {
  KernelEmitter k;
  std::string i = k.globalId();
  std::string n = k.mul("%rows", k.index(c.k));
  k.line("scf.if " + k.lt(i, n) + " {");
  std::string t = k.div(i, k.index(c.k));
  std::string e = k.toIndex(k.load("%indices", i, "i32"));
  k.store(k.load("%in", k.add(k.mul(t, k.index(c.cols)), e), c.elt), "%out", i, c.elt);
  k.line("}");
  return k.finish("@" + c.name() + "(%in: " + flatMemref(c.elt) +
                  ", %indices: memref<?xi32>, %out: " + flatMemref(c.elt) + ", %rows: index)");
}

std::string moe::gpu_kernels::zLossName(const std::string &elt, int64_t experts) {
  return "moe_z_loss_" + elt + "_e" + std::to_string(experts);
}

std::string moe::gpu_kernels::zLossKernel(const std::string &elt, int64_t experts) {
  KernelEmitter k;
  std::string tid = k.op("gpu.thread_id x");
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(experts);
  std::string partial = k.fresh();
  k.line(partial + " = scf.for %t = " + tid + " to %rows step " + k.index(256) + " iter_args(%acc = " + k.f32(0.0) +
         ") -> (f32) {");
  auto [m, sum] = maxAndSumExp(k, "%logits", elt, k.mul("%t", cE), experts);
  std::string lse = k.op("arith.addf " + m + ", " + k.op("math.log " + sum + " : f32") + " : f32");
  k.line("scf.yield " + k.op("math.fma " + lse + ", " + lse + ", %acc : f32") + " : f32");
  k.line("}");
  std::string total = k.op("gpu.all_reduce add " + partial + " uniform {} : (f32) -> (f32)");
  k.line("scf.if " + k.op("arith.cmpi eq, " + tid + ", " + c0 + " : index") + " {");
  std::string rows = k.op("arith.uitofp " + k.op("arith.index_cast %rows : index to i64") + " : i64 to f32");
  std::string mean =
      k.op("arith.divf " + total + ", " + k.op("arith.maximumf " + rows + ", " + k.f32(1.0) + " : f32") + " : f32");
  k.store(mean, "%out", c0, "f32");
  k.line("}");
  return k.finish("@" + zLossName(elt, experts) + "(%logits: " + flatMemref(elt) +
                  ", %out: memref<?xf32>, %rows: index)");
}

std::string moe::gpu_kernels::loadBalanceName(const std::string &elt, int64_t experts, int64_t topK) {
  return "moe_load_balance_" + elt + "_e" + std::to_string(experts) + "_k" + std::to_string(topK);
}

std::string moe::gpu_kernels::loadBalanceKernel(const std::string &elt, int64_t experts, int64_t topK) {
  KernelEmitter k;
  std::string tid = k.op("gpu.thread_id x");
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(experts);
  std::string n = k.mul("%rows", k.index(topK));
  std::string nf = k.op("arith.uitofp " + k.op("arith.index_cast " + n + " : index to i64") + " : i64 to f32");
  std::string rf = k.op("arith.uitofp " + k.op("arith.index_cast %rows : index to i64") + " : i64 to f32");
  std::string partial = k.fresh();
  k.line(partial + " = scf.for %e = " + tid + " to " + cE + " step " + k.index(256) +
         " iter_args(%acc = " + k.f32(0.0) + ") -> (f32) {");
  std::string e32 = k.toI32("%e");
  std::string count = k.fresh();
  k.line(count + " = scf.for %a = " + c0 + " to " + n + " step " + c1 + " iter_args(%c = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string is = k.op("arith.cmpi eq, " + k.load("%indices", "%a", "i32") + ", " + e32 + " : i32");
  k.line("scf.yield " + k.op("arith.addf %c, " + k.select(is, k.f32(1.0), k.f32(0.0), "f32") + " : f32") + " : f32");
  k.line("}");
  std::string prob = k.fresh();
  k.line(prob + " = scf.for %t = " + c0 + " to %rows step " + c1 + " iter_args(%p = " + k.f32(0.0) + ") -> (f32) {");
  k.line("scf.yield " + k.op("arith.addf %p, " + k.loadF32("%probs", k.add(k.mul("%t", cE), "%e"), elt) + " : f32") +
         " : f32");
  k.line("}");
  std::string f = k.op("arith.divf " + count + ", " + nf + " : f32");
  std::string p = k.op("arith.divf " + prob + ", " + rf + " : f32");
  k.line("scf.yield " + k.op("math.fma " + f + ", " + p + ", %acc : f32") + " : f32");
  k.line("}");
  std::string total = k.op("gpu.all_reduce add " + partial + " uniform {} : (f32) -> (f32)");
  k.line("scf.if " + k.op("arith.cmpi eq, " + tid + ", " + c0 + " : index") + " {");
  std::string loss = k.op("arith.mulf " + total + ", " + k.f32(static_cast<double>(experts)) + " : f32");
  std::string some = k.op("arith.cmpi ugt, %rows, " + c0 + " : index");
  k.store(k.select(some, loss, k.f32(0.0), "f32"), "%out", c0, "f32");
  k.line("}");
  return k.finish("@" + loadBalanceName(elt, experts, topK) + "(%probs: " + flatMemref(elt) +
                  ", %indices: memref<?xi32>, %out: memref<?xf32>, %rows: index)");
}
