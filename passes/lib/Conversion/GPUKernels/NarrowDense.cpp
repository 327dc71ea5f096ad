//===- NarrowDense.cpp - products with a few output columns (routers) -----===//
//
// A router multiplies each token by a [k][experts] matrix with a handful of
// columns (Mixtral: 8). A GEMM tile of 128 columns wastes all but those, and
// its k loop runs serially in one block a row tile: on an H200 the Mixtral
// router took 31 us of a 0.7 ms decode call (one block, 64 k steps) and 40 us
// at 8192 tokens. Here a warp owns a token: lanes take k in 16-byte pieces of
// the token's row, multiply them by the matching rows of the (L1-resident)
// weights, and the n partial sums are reduced across the warp.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir::moe::gpu_kernels;

namespace {
/// Elements of `elt` in 16 bytes.
int64_t perVector(const std::string &elt) { return 16 / eltBytes(elt); }
} // namespace

bool NarrowDenseConfig::fits(const std::string &elt, int64_t k, int64_t n) {
  return n >= 1 && n <= kMaxColumns && k % (32 * perVector(elt)) == 0;
}

std::string NarrowDenseConfig::name() const {
  return llvm::formatv("moe_narrow_dense_{0}_{1}_k{2}_n{3}", elt, out, k, n).str();
}

std::string mlir::moe::gpu_kernels::narrowDenseKernel(const NarrowDenseConfig &c) {
  KernelEmitter k;
  const int64_t vx = perVector(c.elt), steps = c.k / (32 * vx);
  // The weights' rows as 16-byte vectors where a row is a whole number of them.
  const bool vectorRows = (c.n * eltBytes(c.elt)) % 16 == 0;
  std::string tid = k.op("gpu.thread_id x");
  std::string lane = k.rem(tid, k.index(32));
  std::string t = k.add(k.mul(k.op("gpu.block_id x"), k.index(NarrowDenseConfig::kTokensPerBlock)),
                        k.div(tid, k.index(32)));
  k.line("scf.if " + k.lt(t, "%rows") + " {"); // uniform across the warp: the shuffles see all lanes
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("s", k.index(0), k.index(steps), k.index(1), "acc",
                                   std::vector<std::string>(c.n, k.f32(0.0)), acc);
  // Lane l's piece of step s: k from (32 s + l) * vx, vx of them.
  std::string k0 = k.mul(k.add(k.mul("%s", k.index(32)), lane), k.index(vx));
  std::vector<std::string> xs = k.loadVectorF32("%x", c.elt, k.add(k.mul(t, k.index(c.k)), k0), vx);
  std::vector<std::string> sums = acc;
  for (int64_t q = 0; q < vx; ++q) {
    std::string rowStart = k.mul(k.add(k0, k.index(q)), k.index(c.n));
    std::vector<std::string> w;
    if (vectorRows) {
      for (int64_t j = 0; j < c.n; j += vx)
        for (const std::string &v : k.loadVectorF32("%w", c.elt, k.add(rowStart, k.index(j)), vx))
          w.push_back(v);
    } else {
      for (int64_t j = 0; j < c.n; ++j)
        w.push_back(k.loadF32("%w", k.add(rowStart, k.index(j)), c.elt));
    }
    for (int64_t j = 0; j < c.n; ++j)
      sums[j] = k.op("math.fma " + xs[q] + ", " + w[j] + ", " + sums[j] + " : f32");
  }
  k.yieldF32(sums);
  k.line("}");
  std::vector<std::string> total = KernelEmitter::results(loop, c.n);
  for (std::string &v : total)
    v = k.warpReduce(v, "addf");
  // Every lane has the sums: lane 0 writes the row.
  k.line("scf.if " + k.op("arith.cmpi eq, " + lane + ", " + k.index(0) + " : index") + " {");
  for (int64_t j = 0; j < c.n; ++j)
    k.storeF32(total[j], "%y", k.add(k.mul(t, k.index(c.n)), k.index(j)), c.out);
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%x: " + flatMemref(c.elt) + ", %w: " + flatMemref(c.elt) + ", %y: " +
                  flatMemref(c.out) + ", %rows: index)");
}
