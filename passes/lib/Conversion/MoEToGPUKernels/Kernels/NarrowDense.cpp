//===- NarrowDense.cpp - products with a few output columns (routers) -----===//
//
// A router multiplies each token by a [k][experts] matrix with a handful of
// columns (Mixtral: 8). A GEMM tile of 128 columns wastes all but those, and
// its k loop runs serially in one block a row tile, a large share of a
// decode call. (A warp a token was no better: each lane's k loop serial at
// few tokens, every warp reading all the weights at many. Figures in
// docs/performance.md, "Measured choices".)
//
// Here a block of 256 threads owns `tokens` tokens and splits k among its
// threads, each taking 16-byte pieces of the tokens' rows and multiplying
// them by the matching weight rows, which it loads once for all the tokens.
// The tokens x n partial sums are then reduced: across a warp by a butterfly
// that halves the values each lane keeps at each step (reduce-scatter: 62
// shuffles for 64 values, not 320), across the warps through shared memory
// in warp order. Every sum is in a fixed order: results are reproducible.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace moe::gpu_kernels;

namespace {
constexpr int64_t kWarps = NarrowDenseConfig::kThreads / 32;
/// Elements of `elt` in 16 bytes.
int64_t perVector(const std::string &elt) { return 16 / eltBytes(elt); }
} // namespace

int64_t NarrowDenseConfig::tokensPerBlock() const { return std::clamp<int64_t>(kMaxSums / n, 1, 8); }

bool NarrowDenseConfig::fits(const std::string &elt, int64_t k, int64_t n) {
  return n >= 1 && n <= kMaxColumns && k % (kThreads * perVector(elt)) == 0;
}

std::string NarrowDenseConfig::name() const {
  return llvm::formatv("moe_narrow_dense_{0}_{1}_k{2}_n{3}", elt, out, k, n).str();
}

std::string moe::gpu_kernels::narrowDenseKernel(const NarrowDenseConfig &c) {
  KernelEmitter k;
  const int64_t vx = perVector(c.elt), steps = c.k / (NarrowDenseConfig::kThreads * vx);
  const int64_t tokens = c.tokensPerBlock(), sums = tokens * c.n;
  const int64_t padded = (sums + 31) / 32 * 32, perLane = padded / 32;
  const bool vectorRows = (c.n * eltBytes(c.elt)) % 16 == 0; // weight rows as whole 16-byte vectors
  std::string partialType = "memref<" + std::to_string(kWarps * padded) + "xf32, #gpu.address_space<workgroup>>";
  std::string tid = k.op("gpu.thread_id x");
  std::string lane = k.rem(tid, k.index(32)), warp = k.div(tid, k.index(32));
  std::string t0 = k.mul(k.op("gpu.block_id x"), k.index(tokens));
  // Tokens past the last are read as the last (their sums are not stored).
  std::string last = k.op("arith.subi %rows, " + k.index(1) + " : index");
  std::vector<std::string> rowOf;
  for (int64_t i = 0; i < tokens; ++i)
    rowOf.push_back(k.mul(k.minIndex(k.add(t0, k.index(i)), last), k.index(c.k)));

  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("s", k.index(0), k.index(steps), k.index(1), "acc",
                                   std::vector<std::string>(sums, k.f32(0.0)), acc);
  // This thread's piece of step s: k from (256 s + tid) * vx, vx of them.
  std::string k0 = k.mul(k.add(k.mul("%s", k.index(NarrowDenseConfig::kThreads)), tid), k.index(vx));
  std::vector<std::vector<std::string>> xs;
  for (int64_t i = 0; i < tokens; ++i)
    xs.push_back(k.loadVectorF32("%x", c.elt, k.add(rowOf[i], k0), vx));
  std::vector<std::string> next = acc;
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
    for (int64_t i = 0; i < tokens; ++i)
      for (int64_t j = 0; j < c.n; ++j)
        next[i * c.n + j] = k.op("math.fma " + xs[i][q] + ", " + w[j] + ", " + next[i * c.n + j] + " : f32");
  }
  k.yieldF32(next);
  k.line("}");

  // Reduce-scatter over the warp: at the step across lanes `mask` apart, the
  // lane with that bit set keeps the upper half of its values and sends the
  // lower; in the end lane l holds values l * perLane + r.
  std::vector<std::string> v = KernelEmitter::results(loop, sums);
  v.resize(padded, k.f32(0.0));
  std::string lane32 = k.toI32(lane);
  for (int64_t mask = 16; mask >= 1; mask /= 2) {
    std::string upper = k.op("arith.cmpi ne, " + k.op("arith.andi " + lane32 + ", " + k.i32(mask) + " : i32") + ", " +
                             k.i32(0) + " : i32");
    const size_t half = v.size() / 2;
    std::vector<std::string> kept;
    for (size_t i = 0; i < half; ++i) {
      std::string send = k.select(upper, v[i], v[i + half], "f32");
      std::string mine = k.select(upper, v[i + half], v[i], "f32");
      kept.push_back(k.op("arith.addf " + mine + ", " + k.shuffleXor(send, mask, "f32") + " : f32"));
    }
    v = kept;
  }
  // Across the warps, in warp order.
  for (int64_t r = 0; r < perLane; ++r) {
    std::string at = k.add(k.mul(warp, k.index(padded)), k.add(k.mul(lane, k.index(perLane)), k.index(r)));
    k.line("memref.store " + v[r] + ", %partial[" + at + "] : " + partialType);
  }
  k.line("gpu.barrier");
  for (int64_t j0 = 0; j0 < sums; j0 += NarrowDenseConfig::kThreads) {
    std::string j = k.add(tid, k.index(j0));
    std::string t = k.add(t0, k.div(j, k.index(c.n)));
    std::string stores = k.op("arith.andi " + k.lt(j, k.index(sums)) + ", " + k.lt(t, "%rows") + " : i1");
    k.line("scf.if " + stores + " {");
    std::string total = k.f32(0.0);
    for (int64_t w = 0; w < kWarps; ++w)
      total = k.op("arith.addf " + total + ", " +
                   k.op("memref.load %partial[" + k.add(j, k.index(w * padded)) + "] : " + partialType) + " : f32");
    k.storeF32(total, "%y", k.add(k.mul(t, k.index(c.n)), k.rem(j, k.index(c.n))), c.out);
    k.line("}");
  }
  return k.finish("@" + c.name() + "(%x: " + flatMemref(c.elt) + ", %w: " + flatMemref(c.elt) +
                      ", %y: " + flatMemref(c.out) + ", %rows: index)",
                  "workgroup(%partial : " + partialType + ")");
}
