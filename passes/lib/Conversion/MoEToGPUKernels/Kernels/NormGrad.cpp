//===- NormGrad.cpp - rmsnorm's backward on the GPU -----------------------===//
//
// moe.rmsnorm_grad as two kernels: a warp a row for the input's cotangent
// and the gain's per-row terms, then a thread a column summing the terms
// per gradient block of rows, the partials in block order, as the CPU
// kernel (moe_cpu_rmsnorm_grad) does: no atomics, the same bits every call.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

using namespace moe::gpu_kernels;

std::string RMSNormGradConfig::name() const {
  float e = static_cast<float>(eps);
  uint32_t bits;
  __builtin_memcpy(&bits, &e, sizeof bits);
  return llvm::formatv("moe_rmsnorm_grad_{0}_{1}_{2}_c{3}_eps{4:x8}", x, w, dy, cols, bits).str();
}

std::string moe::gpu_kernels::rmsNormGradRowsKernel(const RMSNormGradConfig &c) {
  KernelEmitter k;
  std::string id = k.globalId(), c32 = k.index(32), cols = k.index(c.cols);
  std::string row = k.div(id, c32), lane = k.rem(id, c32);
  // The row is the warp's: every lane takes part in the shuffles or none.
  k.line("scf.if " + k.lt(row, "%rows") + " {");
  std::string base = k.mul(row, cols);
  auto at = [&](const std::string &col) { return k.add(base, col); };
  std::string ss = k.warpRowSum(lane, cols, "a", [&](const std::string &col) {
    std::string x = k.loadF32("%x", at(col), c.x);
    return k.f32op("mulf", x, x);
  });
  std::string mean = k.f32op("divf", ss, k.f32(static_cast<double>(c.cols)));
  std::string root = k.sqrtRn(k.f32op("addf", mean, k.f32(c.eps)));
  std::string s = k.f32op("divf", k.f32(1.0), root);
  std::string dot = k.warpRowSum(lane, cols, "b", [&](const std::string &col) {
    std::string dy = k.loadF32("%dy", at(col), c.dy), w = k.loadF32("%w", col, c.w);
    return k.f32op("mulf", k.f32op("mulf", dy, w), k.loadF32("%x", at(col), c.x));
  });
  std::string s3dot = k.f32op("divf", k.f32op("mulf", k.f32op("mulf", k.f32op("mulf", s, s), s), dot),
                              k.f32(static_cast<double>(c.cols)));
  k.line("scf.for %c = " + lane + " to " + cols + " step " + c32 + " {");
  std::string i = at("%c");
  std::string x = k.loadF32("%x", i, c.x), dy = k.loadF32("%dy", i, c.dy), w = k.loadF32("%w", "%c", c.w);
  k.store(k.f32op("mulf", k.f32op("mulf", dy, x), s), "%terms", i, "f32");
  k.storeF32(k.f32op("subf", k.f32op("mulf", k.f32op("mulf", dy, w), s), k.f32op("mulf", x, s3dot)), "%dx", i, c.x);
  k.line("}");
  k.line("}");
  return k.finish("@" + c.name() + "(%x: " + flatMemref(c.x) + ", %w: " + flatMemref(c.w) + ", %dy: " +
                  flatMemref(c.dy) + ", %dx: " + flatMemref(c.x) + ", %terms: memref<?xf32>, %rows: index)");
}

std::string moe::gpu_kernels::rmsNormGradGainName(const RMSNormGradConfig &c) { return c.name() + "_gain"; }

std::string moe::gpu_kernels::rmsNormGradGainKernel(const RMSNormGradConfig &c) {
  KernelEmitter k;
  std::string col = k.globalId(), cols = k.index(c.cols), block = k.index(MOE_GRADIENT_BLOCK_TOKENS);
  k.line("scf.if " + k.lt(col, cols) + " {");
  std::vector<std::string> acc, partial;
  std::string blocks = k.openF32Loop("b", k.index(0), "%rows", block, "acc", {k.f32(0.0)}, acc);
  std::string end = k.minIndex(k.add("%b", block), "%rows");
  std::string rowsLoop = k.openF32Loop("r", "%b", end, k.index(1), "part", {k.f32(0.0)}, partial);
  k.yieldF32({k.f32op("addf", partial[0], k.load("%terms", k.add(k.mul("%r", cols), col), "f32"))});
  k.line("}");
  k.yieldF32({k.f32op("addf", acc[0], KernelEmitter::results(rowsLoop, 1)[0])});
  k.line("}");
  k.storeF32(KernelEmitter::results(blocks, 1)[0], "%dw", col, c.w);
  k.line("}");
  return k.finish("@" + rmsNormGradGainName(c) + "(%terms: memref<?xf32>, %dw: " + flatMemref(c.w) + ", %rows: index)");
}
