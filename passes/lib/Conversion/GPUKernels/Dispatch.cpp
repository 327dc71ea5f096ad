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

using namespace mlir::moe::gpu_kernels;

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
  return llvm::formatv("e{0}_k{1}_c{2}_m{3}", experts, k, static_cast<int64_t>(capacity * 1e6), blockM).str();
}

std::string mlir::moe::gpu_kernels::countKernel(const DispatchConfig &c) {
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

std::string mlir::moe::gpu_kernels::scheduleKernel(const DispatchConfig &c) {
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
  std::string rowsEnd = blockScan(k, "%rowScan", scanType, tid, count, threads);
  std::string tilesEnd = blockScan(k, "%tileScan", scanType, tid, tiles, threads);
  std::string off = k.toIndex(k.op("arith.subi " + rowsEnd + ", " + count + " : i32"));
  std::string first = k.toIndex(k.op("arith.subi " + tilesEnd + ", " + tiles + " : i32"));
  k.line("scf.if " + mine + " {");
  k.store(k.toI32(off), "%offsets", tid, "i32");
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
                      "%tileRow: memref<?xi32>, %numTiles: memref<?xi32>)",
                  "workgroup(%rowScan : " + scanType + ", %tileScan : " + scanType + ")");
}

std::string mlir::moe::gpu_kernels::permuteKernel(const DispatchConfig &c) {
  KernelEmitter k;
  constexpr int64_t threads = DispatchConfig::permuteThreads;
  std::string scanType = "memref<" + std::to_string(threads) + "xi32, #gpu.address_space<workgroup>>";
  std::string e = k.op("gpu.block_id x"), tid = k.op("gpu.thread_id x");
  std::string e32 = k.toI32(e), c1 = k.index(1);
  std::string n = k.mul("%rows", k.index(c.k));
  // Thread i owns assignments [lo, hi): a contiguous run, so ranks follow token order.
  std::string span = k.div(k.add(n, k.index(threads - 1)), k.index(threads));
  std::string lo = k.minIndex(k.mul(tid, span), n), hi = k.minIndex(k.add(lo, span), n);
  std::string count = countMatches(k, lo, hi, c1, e32);
  // Inclusive scan of the counts over the block.
  std::string inclusive = blockScan(k, "%scan", scanType, tid, count, threads);
  std::string first = k.toIndex(k.op("arith.subi " + inclusive + ", " + count + " : i32"));
  std::string cap = limit(k, c);
  std::string base = k.toIndex(k.load("%offsets", e, "i32"));
  k.line(k.fresh() + " = scf.for %a = " + lo + " to " + hi + " step " + c1 + " iter_args(%r = " + first +
         ") -> (index) {");
  std::string mine = k.op("arith.cmpi eq, " + k.load("%indices", "%a", "i32") + ", " + e32 + " : i32");
  std::string nextR = k.fresh();
  k.line(nextR + " = scf.if " + mine + " -> (index) {");
  std::string kept = k.lt("%r", cap);
  std::string row = k.add(base, "%r");
  k.line("scf.if " + kept + " {");
  k.store(k.toI32("%a"), "%perm", row, "i32");
  k.line("}");
  k.store(k.select(kept, k.toI32(row), k.i32(-1), "i32"), "%slotPos", "%a", "i32");
  k.line("scf.yield " + k.add("%r", c1) + " : index");
  k.line("} else {");
  k.line("scf.yield %r : index");
  k.line("}");
  k.line("scf.yield " + nextR + " : index");
  k.line("}");
  return k.finish("@moe_permute_" + c.suffix() +
                      "(%indices: memref<?xi32>, %offsets: memref<?xi32>, %perm: memref<?xi32>, "
                      "%slotPos: memref<?xi32>, %rows: index)",
                  "workgroup(%scan : " + scanType + ")");
}

std::string CombineConfig::name() const {
  return llvm::formatv("moe_combine_{0}_{1}_{2}_{3}_d{4}_k{5}{6}", y, w, x, out, hidden, k, identity ? "_id" : "")
      .str();
}

std::string mlir::moe::gpu_kernels::combineKernel(const CombineConfig &c) {
  KernelEmitter k;
  std::string i = k.globalId();
  std::string n = k.mul("%rows", k.index(c.hidden));
  k.line("scf.if " + k.lt(i, n) + " {");
  std::string t = k.div(i, k.index(c.hidden)), col = k.rem(i, k.index(c.hidden));
  std::string sum = k.fresh();
  k.line(sum + " = scf.for %s = " + k.index(0) + " to " + k.index(c.k) + " step " + k.index(1) + " iter_args(%acc = " +
         k.f32(0.0) + ") -> (f32) {");
  std::string slot = k.add(k.mul(t, k.index(c.k)), "%s");
  std::string pos = k.load("%slotPos", slot, "i32");
  std::string kept = k.op("arith.cmpi sge, " + pos + ", " + k.i32(0) + " : i32");
  std::string v = k.fresh();
  k.line(v + " = scf.if " + kept + " -> (f32) {");
  std::string x;
  if (c.identity)
    x = k.op("arith.mulf " + k.loadF32("%w", slot, c.w) + ", " + k.loadF32("%x", i, c.x) + " : f32");
  else
    x = k.loadF32("%y", k.add(k.mul(k.toIndex(pos), k.index(c.hidden)), col), c.y);
  k.line("scf.yield " + x + " : f32");
  k.line("} else {");
  k.line("scf.yield " + k.f32(0.0) + " : f32");
  k.line("}");
  k.line("scf.yield " + k.op("arith.addf %acc, " + v + " : f32") + " : f32");
  k.line("}");
  k.storeF32(sum, "%out", i, c.out);
  k.line("}");
  return k.finish("@" + c.name() + "(%y: " + flatMemref(c.y) + ", %slotPos: memref<?xi32>, %w: " + flatMemref(c.w) +
                  ", %x: " + flatMemref(c.x) + ", %out: " + flatMemref(c.out) + ", %rows: index)");
}
