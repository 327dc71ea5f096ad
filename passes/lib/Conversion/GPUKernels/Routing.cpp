//===- Routing.cpp - top-k, group top-k, gather and loss kernels ----------===//
//
// Routing work is per token and small (tens to hundreds of experts), so one
// thread owns a token: every selection is a pass over its scores, in the same
// order and with the same tie rule (equal scores: lower expert first) as the
// CPU kernels.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <tuple>

using namespace mlir::moe::gpu_kernels;

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

/// The max of a row of `experts` logits at `base` and the sum of exp(logit -
/// max): softmax's and logsumexp's statistics, in f32.
std::pair<std::string, std::string> maxAndSumExp(KernelEmitter &k, const std::string &logits, const std::string &elt,
                                                 const std::string &base, int64_t experts) {
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(experts);
  std::string m = k.fresh();
  k.line(m + " = scf.for %e = " + c0 + " to " + cE + " step " + c1 + " iter_args(%m = " + k.f32(-INFINITY) +
         ") -> (f32) {");
  std::string v = k.loadF32(logits, k.add(base, "%e"), elt);
  k.line("scf.yield " + k.op("arith.maximumf %m, " + v + " : f32") + " : f32");
  k.line("}");
  std::string sum = k.fresh();
  k.line(sum + " = scf.for %e = " + c0 + " to " + cE + " step " + c1 + " iter_args(%s = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string v2 = k.loadF32(logits, k.add(base, "%e"), elt);
  std::string x = k.op("math.exp " + k.op("arith.subf " + v2 + ", " + m + " : f32") + " : f32");
  k.line("scf.yield " + k.op("arith.addf %s, " + x + " : f32") + " : f32");
  k.line("}");
  return {m, sum};
}

/// Opens `scf.if t < rows` for the thread's token and returns t.
std::string openToken(KernelEmitter &k, const std::string &rows) {
  std::string t = k.globalId();
  k.line("scf.if " + k.lt(t, rows) + " {");
  return t;
}

} // namespace

std::string TopKConfig::name() const {
  return llvm::formatv("moe_topk_{0}_{1}_e{2}_k{3}_s{4}_r{5}_x{6}", logits, values, experts, k, score,
                       renormalize ? 1 : 0, static_cast<int64_t>(scale * 1e6))
      .str();
}

std::string mlir::moe::gpu_kernels::topKKernel(const TopKConfig &c) {
  KernelEmitter k;
  std::string t = openToken(k, "%rows");
  std::string base = k.mul(t, k.index(c.experts));
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(c.experts);
  std::string m, sum;
  if (c.score == 1)
    std::tie(m, sum) = maxAndSumExp(k, "%logits", c.logits, base, c.experts);
  auto score = [&](const std::string &e) {
    std::string v = k.loadF32("%logits", k.add(base, e), c.logits);
    if (c.score == 1)
      return k.op("arith.divf " + k.op("math.exp " + k.op("arith.subf " + v + ", " + m + " : f32") + " : f32") +
                  ", " + sum + " : f32");
    if (c.score == 2)
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

std::string GroupTopKConfig::name() const {
  return llvm::formatv("moe_group_topk_{0}_e{1}_k{2}_g{3}_t{4}", scores, experts, k, groups, topGroups).str();
}

std::string mlir::moe::gpu_kernels::groupTopKKernel(const GroupTopKConfig &c) {
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
  k.line(gsel + ":2 = scf.for %j = " + c0 + " to " + k.index(c.topGroups) + " step " + c1 + " iter_args(%pv = " +
         k.f32(INFINITY) + ", %pe = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string gbest = k.fresh();
  k.line(gbest + ":2 = scf.for %g = " + c0 + " to " + k.index(c.groups) + " step " + c1 + " iter_args(%bv = " +
         ninf + ", %be = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string v = k.op("memref.load " + gs + "[%g] : " + groupType);
  auto [bv, be] = consider(k, v, k.toI32("%g"), "%pv", "%pe", "%bv", "%be");
  k.line("scf.yield " + bv + ", " + be + " : f32, i32");
  k.line("}");
  k.line("memref.store " + k.i32(1) + ", " + keep + "[" + k.toIndex(gbest + "#1") + "] : " + keepType);
  k.line("scf.yield " + gbest + "#0, " + gbest + "#1 : f32, i32");
  k.line("}");
  // Top-k over the kept groups' experts.
  k.line(k.fresh() + ":2 = scf.for %j = " + c0 + " to " + k.index(c.k) + " step " + c1 + " iter_args(%pv = " +
         k.f32(INFINITY) + ", %pe = " + k.i32(-1) + ") -> (f32, i32) {");
  std::string best = k.fresh();
  k.line(best + ":2 = scf.for %e = " + c0 + " to " + k.index(c.experts) + " step " + c1 + " iter_args(%bv = " +
         ninf + ", %be = " + k.i32(-1) + ") -> (f32, i32) {");
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

std::string GatherConfig::name() const { return llvm::formatv("moe_gather_{0}_c{1}_k{2}", elt, cols, k).str(); }

std::string mlir::moe::gpu_kernels::gatherKernel(const GatherConfig &c) {
  KernelEmitter k;
  std::string i = k.globalId();
  std::string n = k.mul("%rows", k.index(c.k));
  k.line("scf.if " + k.lt(i, n) + " {");
  std::string t = k.div(i, k.index(c.k));
  std::string e = k.toIndex(k.load("%indices", i, "i32"));
  k.store(k.load("%in", k.add(k.mul(t, k.index(c.cols)), e), c.elt), "%out", i, c.elt);
  k.line("}");
  return k.finish("@" + c.name() + "(%in: " + flatMemref(c.elt) + ", %indices: memref<?xi32>, %out: " + flatMemref(c.elt) +
                  ", %rows: index)");
}

std::string mlir::moe::gpu_kernels::zLossName(const std::string &elt, int64_t experts) {
  return "moe_z_loss_" + elt + "_e" + std::to_string(experts);
}

std::string mlir::moe::gpu_kernels::zLossKernel(const std::string &elt, int64_t experts) {
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
  std::string mean = k.op("arith.divf " + total + ", " + k.op("arith.maximumf " + rows + ", " + k.f32(1.0) + " : f32") + " : f32");
  k.store(mean, "%out", c0, "f32");
  k.line("}");
  return k.finish("@" + zLossName(elt, experts) + "(%logits: " + flatMemref(elt) + ", %out: memref<?xf32>, %rows: index)");
}

std::string mlir::moe::gpu_kernels::loadBalanceName(const std::string &elt, int64_t experts, int64_t topK) {
  return "moe_load_balance_" + elt + "_e" + std::to_string(experts) + "_k" + std::to_string(topK);
}

std::string mlir::moe::gpu_kernels::loadBalanceKernel(const std::string &elt, int64_t experts, int64_t topK) {
  KernelEmitter k;
  std::string tid = k.op("gpu.thread_id x");
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(experts);
  std::string n = k.mul("%rows", k.index(topK));
  std::string nf = k.op("arith.uitofp " + k.op("arith.index_cast " + n + " : index to i64") + " : i64 to f32");
  std::string rf = k.op("arith.uitofp " + k.op("arith.index_cast %rows : index to i64") + " : i64 to f32");
  std::string partial = k.fresh();
  k.line(partial + " = scf.for %e = " + tid + " to " + cE + " step " + k.index(256) + " iter_args(%acc = " +
         k.f32(0.0) + ") -> (f32) {");
  std::string e32 = k.toI32("%e");
  std::string count = k.fresh();
  k.line(count + " = scf.for %a = " + c0 + " to " + n + " step " + c1 + " iter_args(%c = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string is = k.op("arith.cmpi eq, " + k.load("%indices", "%a", "i32") + ", " + e32 + " : i32");
  k.line("scf.yield " + k.op("arith.addf %c, " + k.select(is, k.f32(1.0), k.f32(0.0), "f32") + " : f32") + " : f32");
  k.line("}");
  std::string prob = k.fresh();
  k.line(prob + " = scf.for %t = " + c0 + " to %rows step " + c1 + " iter_args(%p = " + k.f32(0.0) + ") -> (f32) {");
  k.line("scf.yield " + k.op("arith.addf %p, " + k.loadF32("%probs", k.add(k.mul("%t", cE), "%e"), elt) + " : f32") + " : f32");
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
