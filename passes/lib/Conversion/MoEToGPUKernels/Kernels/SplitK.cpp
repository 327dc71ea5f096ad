//===- SplitK.cpp - the sum of a split-k GEMM's partial products ----------===//
//
// A dense product with few row tiles (a router at decode: one or two blocks
// for the whole product) leaves most SMs idle and reads its weights at a
// single block's pace. Summed in fixed k chunks (GemmConfig::kChunks), it
// can be split along them (GemmConfig::splitK): its blocks write f32 chunk
// sums [chunks][rows][n] and this kernel adds them in chunk order, the order
// the unsplit kernel adds them in, so both give the same bits (no atomics).
//
//===----------------------------------------------------------------------===//
#include "KernelEmitter.h"
#include "Kernels.h"
#include "moe/Support/MLIR.h"

#include <algorithm>

using namespace moe::gpu_kernels;

std::string moe::gpu_kernels::splitKSumName(const std::string &out) { return "moe_split_k_sum_f32_" + out; }

std::string moe::gpu_kernels::splitKSumKernel(const std::string &out) {
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, "%cells") + " {");
  std::string sum = k.fresh();
  k.line(sum + " = scf.for %z = " + k.index(0) + " to %splits step " + k.index(1) + " iter_args(%s = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string v = k.load("%partials", k.add(k.mul("%z", "%cells"), i), "f32");
  k.line("scf.yield " + k.f32op("addf", "%s", v) + " : f32");
  k.line("}");
  k.storeF32(sum, "%out", i, out);
  k.line("}");
  return k.finish("@" + splitKSumName(out) + "(%partials: memref<?xf32>, %out: " + flatMemref(out) +
                  ", %cells: index, %splits: index)");
}

bool moe::gpu_kernels::splitKFits(const GemmConfig &c) {
  return c.tensorCores && c.wgmma && !c.grouped && !c.glu && c.act == "identity" && !c.scaleRows && !c.keepUp &&
         !c.kMajorB && !c.gatherRows && !c.tmaB && !c.persistent && !c.warpSpecialized && c.wgmmaN == 128 &&
         c.n <= 256 && c.k / 64 >= 2 * kSplitKMinSteps;
}

int64_t moe::gpu_kernels::splitKChunks(const GemmConfig &c) {
  return std::min(c.k / 64 / kSplitKMinSteps, kSplitKSMs / c.columnBlocks());
}

namespace {
// The cost model's constants, measured on an H200 (docs/gpu.md, "Split-k"):
// a block's k step at decode (the whole router GEMMs of Qwen3-30B-A3B and
// DeepSeek-V3 at 32 tokens, 17.8 us / 32 steps and 59.7 us / 112), the
// bandwidth the f32 chunk sums are written and read back at, and the sum
// kernel's launch and tail.
constexpr double kStepMicros = 0.55;
constexpr double kPartialBytesPerMicro = 3.0e6;
constexpr double kSumMicros = 3.0;
} // namespace

int64_t moe::gpu_kernels::splitKMaxRows(const GemmConfig &c) {
  const int64_t steps = c.k / 64, chunks = c.kChunks, columns = c.columnBlocks();
  int64_t best = 0;
  // Up to one wave of whole tiles: past it the whole product fills the SMs.
  for (int64_t rowTiles = 1; rowTiles * columns <= kSplitKSMs; ++rowTiles) {
    const int64_t rows = rowTiles * c.blockM();
    const double whole = steps * kStepMicros;
    const int64_t waves = (rowTiles * columns * chunks + kSplitKSMs - 1) / kSplitKSMs;
    const double split = waves * ((steps + chunks - 1) / chunks) * kStepMicros +
                         2.0 * rows * c.n * chunks * 4 / kPartialBytesPerMicro + kSumMicros;
    if (split < whole)
      best = rows;
  }
  return best;
}
