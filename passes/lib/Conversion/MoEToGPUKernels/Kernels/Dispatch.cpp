//===- Dispatch.cpp - the device-side dispatch plan, and combine ----------===//
//
// From the routing indices alone, without leaving the GPU: per-expert counts
// (capped at the capacity), offsets and the GEMM tile list, and a stable
// permutation of the assignments by expert (MegaBlocks' dropless layout with
// no padded copies: the GEMMs gather rows through it). Combine then sums each
// token's k expert rows in slot order, so results are bitwise reproducible.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <tuple>

using namespace moe::gpu_kernels;

namespace {

/// The capacity limit for `rows` tokens: ceil(capacity * rows * k / experts),
/// or rows * k when dropless.
std::string limit(KernelEmitter &k, const DispatchConfig &c) {
  std::string n = k.mul("%rows", k.index(c.k));
  if (c.capacity <= 0)
    return n;
  std::string nf = k.op("arith.uitofp " + k.op("arith.index_cast " + n + " : index to i64") + " : i64 to f64");
  std::string cap = k.op("arith.constant " + llvm::formatv("{0:e}", c.capacity).str() + " : f64");
  std::string q = k.op("arith.divf " + k.op("arith.mulf " + nf + ", " + cap + " : f64") + ", " +
                       k.op("arith.constant " + std::to_string(c.experts) + ".0 : f64") + " : f64");
  std::string ceil = k.op("math.ceil " + q + " : f64");
  return k.op("arith.index_cast " + k.op("arith.fptoui " + ceil + " : f64 to i64") + " : i64 to index");
}

/// How many of indices[lo, hi) (stepping by `step`) equal `e32`, as i32.
std::string countMatches(KernelEmitter &k, const std::string &lo, const std::string &hi, const std::string &step,
                         const std::string &e32) {
  std::string count = k.fresh();
  k.line(count + " = scf.for %a = " + lo + " to " + hi + " step " + step + " iter_args(%c = " + k.i32(0) +
         ") -> (i32) {");
  std::string is = k.op("arith.cmpi eq, " + k.load("%indices", "%a", "i32") + ", " + e32 + " : i32");
  k.line("scf.yield " + k.op("arith.addi %c, " + k.select(is, k.i32(1), k.i32(0), "i32") + " : i32") + " : i32");
  k.line("}");
  return count;
}

/// Inclusive scan of `value` over a block of `threads` threads (Hillis-Steele
/// through workgroup buffer `scan`); returns this thread's inclusive sum.
std::string blockScan(KernelEmitter &k, const std::string &scan, const std::string &scanType, const std::string &tid,
                      const std::string &value, int64_t threads) {
  k.line("memref.store " + value + ", " + scan + "[" + tid + "] : " + scanType);
  k.line("gpu.barrier");
  for (int64_t d = 1; d < threads; d *= 2) {
    std::string own = k.op("memref.load " + scan + "[" + tid + "] : " + scanType);
    std::string has = k.op("arith.cmpi uge, " + tid + ", " + k.index(d) + " : index");
    std::string from = k.select(has, k.op("arith.subi " + tid + ", " + k.index(d) + " : index"), tid, "index");
    std::string other = k.select(has, k.op("memref.load " + scan + "[" + from + "] : " + scanType), k.i32(0), "i32");
    k.line("gpu.barrier");
    k.line("memref.store " + k.add32(own, other) + ", " + scan + "[" + tid + "] : " + scanType);
    k.line("gpu.barrier");
  }
  return k.op("memref.load " + scan + "[" + tid + "] : " + scanType);
}

} // namespace

std::string DispatchConfig::suffix() const {
  return llvm::formatv("e{0}_k{1}_c{2}_m{3}{4}{5}", experts, k, static_cast<int64_t>(capacity * 1e6), blockM,
                       keptCounts ? "_kept" : "", padded ? "_padded" : "")
      .str();
}

std::string moe::gpu_kernels::countKernel(const DispatchConfig &c) {
  KernelEmitter k;
  std::string e = k.op("gpu.block_id x"), tid = k.op("gpu.thread_id x");
  std::string e32 = k.toI32(e);
  std::string n = k.mul("%rows", k.index(c.k));
  std::string count = countMatches(k, tid, n, k.index(kStridedBlock), e32);
  std::string total = k.op("gpu.all_reduce add " + count + " uniform {} : (i32) -> (i32)");
  k.line("scf.if " + k.op("arith.cmpi eq, " + tid + ", " + k.index(0) + " : index") + " {");
  std::string capped = k.op("arith.minui " + total + ", " + k.toI32(limit(k, c)) + " : i32");
  k.store(capped, "%counts", e, "i32");
  k.line("}");
  return k.finish("@moe_count_" + c.suffix() + "(%indices: memref<?xi32>, %counts: memref<?xi32>, %rows: index)");
}

std::string moe::gpu_kernels::scheduleKernel(const DispatchConfig &c) {
  // One thread per expert (experts <= 1024): scans of the counts and of the
  // tile counts give each expert its first row and first tile.
  KernelEmitter k;
  const int64_t threads = DispatchConfig::scheduleThreads;
  std::string scanType = "memref<" + std::to_string(threads) + "xi32, #gpu.address_space<workgroup>>";
  std::string tid = k.op("gpu.thread_id x");
  std::string c1 = k.index(1), bm = k.index(c.blockM);
  std::string mine = k.lt(tid, k.index(c.experts));
  std::string count = k.fresh();
  k.line(count + " = scf.if " + mine + " -> (i32) {");
  k.line("scf.yield " + k.load("%counts", tid, "i32") + " : i32");
  k.line("} else {");
  k.line("scf.yield " + k.i32(0) + " : i32");
  k.line("}");
  std::string tiles = k.op("arith.divui " + k.add32(count, k.i32(c.blockM - 1)) + ", " + k.i32(c.blockM) + " : i32");
  // Padded: an expert's rows take whole tiles.
  std::string span = c.padded ? k.op("arith.muli " + tiles + ", " + k.i32(c.blockM) + " : i32") : count;
  std::string rowsEnd = blockScan(k, "%rowScan", scanType, tid, span, threads);
  std::string tilesEnd = blockScan(k, "%tileScan", scanType, tid, tiles, threads);
  std::string off = k.toIndex(k.op("arith.subi " + rowsEnd + ", " + span + " : i32"));
  std::string first = k.toIndex(k.op("arith.subi " + tilesEnd + ", " + tiles + " : i32"));
  k.line("scf.if " + mine + " {");
  k.store(k.toI32(off), "%offsets", tid, "i32");
  if (c.padded) {
    k.store(k.add32(k.toI32(off), count), "%ends", k.add(tid, c1), "i32");
    k.line("scf.if " + k.op("arith.cmpi eq, " + tid + ", " + k.index(0) + " : index") + " {");
    k.store(k.i32(0), "%ends", k.index(0), "i32");
    k.line("}");
  }
  k.line("scf.for %i = " + k.index(0) + " to " + k.toIndex(tiles) + " step " + c1 + " {");
  std::string slot = k.add(first, "%i");
  k.store(k.toI32(tid), "%tileExpert", slot, "i32");
  k.store(k.toI32(k.add(off, k.mul("%i", bm))), "%tileRow", slot, "i32");
  k.line("}");
  k.line("}");
  k.line("scf.if " + k.op("arith.cmpi eq, " + tid + ", " + k.index(c.experts - 1) + " : index") + " {");
  k.store(rowsEnd, "%offsets", k.index(c.experts), "i32");
  k.store(tilesEnd, "%numTiles", k.index(0), "i32");
  k.line("}");
  return k.finish("@moe_schedule_" + c.suffix() +
                      "(%counts: memref<?xi32>, %offsets: memref<?xi32>, %tileExpert: memref<?xi32>, "
                      "%tileRow: memref<?xi32>, %numTiles: memref<?xi32>" +
                      (c.padded ? ", %ends: memref<?xi32>)" : ")"),
                  "workgroup(%rowScan : " + scanType + ", %tileScan : " + scanType + ")");
}

std::string moe::gpu_kernels::permuteKernel(const DispatchConfig &c) {
  // Warp w owns a contiguous run of assignments, read 32 at a time (lane l the
  // l-th): a ballot of the lanes whose assignment is this block's expert
  // gives each match its rank among the run's (the matches of lower lanes)
  // and the run's count, so ranks follow token order with every load
  // coalesced. (A thread a run, its loads 64 assignments apart across a
  // warp, was measured much slower: docs/performance.md, "Measured choices".)
  KernelEmitter k;
  constexpr int64_t threads = DispatchConfig::permuteThreads, warps = threads / 32;
  std::string warpCountsType = "memref<" + std::to_string(warps) + "xi32, #gpu.address_space<workgroup>>";
  std::string e = k.op("gpu.block_id x"), tid = k.op("gpu.thread_id x");
  std::string e32 = k.toI32(e), c0 = k.index(0), c32 = k.index(32);
  std::string warp = k.div(tid, c32), lane = k.rem(tid, c32);
  std::string n = k.mul("%rows", k.index(c.k));
  // Runs of whole 32-assignment chunks.
  std::string span = k.mul(k.div(k.add(n, k.index(threads - 1)), k.index(threads)), c32);
  std::string lo = k.minIndex(k.mul(warp, span), n), hi = k.minIndex(k.add(lo, span), n);
  std::string below = k.op("arith.subi " + k.op("arith.shli " + k.i32(1) + ", " + k.toI32(lane) + " : i32") + ", " +
                           k.i32(1) + " : i32");
  // The lanes whose assignment at chunk + lane is this expert's, as a mask.
  auto matches = [&](const std::string &chunk) {
    std::string a = k.add(chunk, lane);
    std::string inRun = k.lt(a, hi);
    std::string is = k.fresh();
    k.line(is + " = scf.if " + inRun + " -> (i32) {");
    std::string eq = k.op("arith.cmpi eq, " + k.load("%indices", a, "i32") + ", " + e32 + " : i32");
    k.line("scf.yield " + k.select(eq, k.i32(1), k.i32(0), "i32") + " : i32");
    k.line("} else {");
    k.line("scf.yield " + k.i32(0) + " : i32");
    k.line("}");
    std::string mask =
        k.op("llvm.inline_asm has_side_effects asm_dialect = att \"{ .reg .pred p; setp.ne.u32 p, $1, 0; "
             "vote.sync.ballot.b32 $0, p, 0xffffffff; }\", \"=r,r\" " +
             is + " : (i32) -> i32");
    return std::make_tuple(a, k.op("arith.cmpi ne, " + is + ", " + k.i32(0) + " : i32"), mask);
  };
  auto popc = [&](const std::string &x) { return k.op("llvm.intr.ctpop(" + x + ") : (i32) -> i32"); };
  std::string count = k.fresh();
  k.line(count + " = scf.for %chunk = " + lo + " to " + hi + " step " + c32 + " iter_args(%cnt = " + k.i32(0) +
         ") -> (i32) {");
  auto [a0, is0, mask0] = matches("%chunk");
  (void)a0, (void)is0;
  k.line("scf.yield " + k.add32("%cnt", popc(mask0)) + " : i32");
  k.line("}");
  // The warps' counts through shared memory; a warp's first rank is the sum of those before it.
  k.line("scf.if " + k.op("arith.cmpi eq, " + lane + ", " + c0 + " : index") + " {");
  k.line("memref.store " + count + ", %warpCounts[" + warp + "] : " + warpCountsType);
  k.line("}");
  k.line("gpu.barrier");
  std::string first = k.fresh();
  k.line(first + " = scf.for %w = " + c0 + " to " + warp + " step " + k.index(1) + " iter_args(%f = " + k.i32(0) +
         ") -> (i32) {");
  k.line("scf.yield " + k.add32("%f", k.op("memref.load %warpCounts[%w] : " + warpCountsType)) + " : i32");
  k.line("}");
  std::string base = k.load("%offsets", e, "i32");
  std::string cap = c.keptCounts
                        ? k.op("arith.subi " + k.load("%offsets", k.add(e, k.index(1)), "i32") + ", " + base + " : i32")
                        : k.toI32(limit(k, c));
  k.line(k.fresh() + " = scf.for %chunk = " + lo + " to " + hi + " step " + c32 + " iter_args(%r = " + first +
         ") -> (i32) {");
  auto [a, is, mask] = matches("%chunk");
  k.line("scf.if " + is + " {");
  std::string rank = k.add32("%r", popc(k.op("arith.andi " + mask + ", " + below + " : i32")));
  std::string kept = k.op("arith.cmpi ult, " + rank + ", " + cap + " : i32");
  std::string row = k.add32(base, rank);
  k.line("scf.if " + kept + " {");
  k.store(k.toI32(a), "%perm", k.toIndex(row), "i32");
  k.line("}");
  k.store(k.select(kept, row, k.i32(-1), "i32"), "%slotPos", a, "i32");
  k.line("}");
  k.line("scf.yield " + k.add32("%r", popc(mask)) + " : i32");
  k.line("}");
  return k.finish("@moe_permute_" + c.suffix() +
                      "(%indices: memref<?xi32>, %offsets: memref<?xi32>, %perm: memref<?xi32>, "
                      "%slotPos: memref<?xi32>, %rows: index)",
                  "workgroup(%warpCounts : " + warpCountsType + ")");
}

std::string PackConfig::name() const { return llvm::formatv("moe_pack_{0}_{1}_d{2}_k{3}", x, w, hidden, k).str(); }

int64_t PackConfig::width() const {
  int64_t w = 16 / eltBytes(x);
  return hidden % w == 0 ? w : 1;
}

std::string moe::gpu_kernels::packKernel(const PackConfig &c) {
  // Values pass through f32, which holds every bf16, f16 and f32 exactly.
  KernelEmitter k;
  const int64_t width = c.width(), chunks = c.hidden / width;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, k.mul("%rows", k.index(chunks))) + " {");
  std::string r = k.div(i, k.index(chunks)), chunk = k.rem(i, k.index(chunks));
  std::string col = k.mul(chunk, k.index(width));
  std::string a = k.toIndex(k.load("%perm", r, "i32"));
  std::string t = k.div(a, k.index(c.k));
  std::vector<std::string> v = k.loadVectorF32("%x", c.x, k.add(k.mul(t, k.index(c.hidden)), col), width);
  k.storeVectorF32(v, "%out", c.x, k.add(k.mul(r, k.index(c.hidden)), col));
  k.line("scf.if " + k.op("arith.cmpi eq, " + chunk + ", " + k.index(0) + " : index") + " {");
  k.store(k.load("%w", a, c.w), "%outW", r, c.w);
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%x: " + flatMemref(c.x) + ", %w: " + flatMemref(c.w) +
                  ", %perm: memref<?xi32>, %out: " + flatMemref(c.x) + ", %outW: " + flatMemref(c.w) +
                  ", %rows: index)");
}

std::string CombineConfig::name() const {
  return llvm::formatv("moe_combine_{0}_{1}_{2}_{3}_d{4}_k{5}{6}", y, w, x, out, hidden, k, identity ? "_id" : "")
      .str();
}

int64_t CombineConfig::width() const {
  // 16 bytes of the widest element type a thread; one where rows do not split so.
  int64_t widest = std::max({eltBytes(y), eltBytes(x), eltBytes(out)});
  int64_t w = 16 / widest;
  return hidden % w == 0 ? w : 1;
}

std::string moe::gpu_kernels::combineKernel(const CombineConfig &c) {
  // A thread sums `width` consecutive columns of a token (16-byte loads and
  // stores: a thread an element spent most of its time issuing 2-byte
  // loads, at a third of the memory bandwidth).
  KernelEmitter k;
  const int64_t width = c.width(), chunks = c.hidden / width;
  std::string i = k.globalId();
  std::string n = k.mul("%rows", k.index(chunks));
  k.line("scf.if " + k.lt(i, n) + " {");
  std::string t = k.div(i, k.index(chunks)), col = k.mul(k.rem(i, k.index(chunks)), k.index(width));
  std::string at = k.add(k.mul(t, k.index(c.hidden)), col);
  std::vector<std::string> acc;
  std::string loop =
      k.openF32Loop("s", k.index(0), k.index(c.k), k.index(1), "acc", std::vector<std::string>(width, k.f32(0.0)), acc);
  std::string slot = k.add(k.mul(t, k.index(c.k)), "%s");
  std::string pos = k.load("%slotPos", slot, "i32");
  std::string kept = k.op("arith.cmpi sge, " + pos + ", " + k.i32(0) + " : i32");
  std::string part = k.fresh();
  std::string types;
  for (int64_t j = 0; j < width; ++j)
    types += j ? ", f32" : "f32";
  k.line(part + ":" + std::to_string(width) + " = scf.if " + kept + " -> (" + types + ") {");
  std::vector<std::string> x;
  if (c.identity) {
    std::string weight = k.loadF32("%w", slot, c.w);
    for (const std::string &v : k.loadVectorF32("%x", c.x, at, width))
      x.push_back(k.op("arith.mulf " + weight + ", " + v + " : f32"));
  } else {
    x = k.loadVectorF32("%y", c.y, k.add(k.mul(k.toIndex(pos), k.index(c.hidden)), col), width);
  }
  k.yieldF32(x);
  k.line("} else {");
  k.yieldF32(std::vector<std::string>(width, k.f32(0.0)));
  k.line("}");
  std::vector<std::string> sums;
  for (int64_t j = 0; j < width; ++j)
    sums.push_back(k.op("arith.addf " + acc[j] + ", " + part + "#" + std::to_string(j) + " : f32"));
  k.yieldF32(sums);
  k.line("}");
  k.storeVectorF32(KernelEmitter::results(loop, width), "%out", c.out, at);
  k.line("}");
  return k.finish("@" + c.name() + "(%y: " + flatMemref(c.y) + ", %slotPos: memref<?xi32>, %w: " + flatMemref(c.w) +
                  ", %x: " + flatMemref(c.x) + ", %out: " + flatMemref(c.out) + ", %rows: index)");
}
