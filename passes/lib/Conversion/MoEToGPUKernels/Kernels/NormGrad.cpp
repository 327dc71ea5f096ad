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

namespace {

std::string binary(KernelEmitter &k, const char *op, const std::string &a, const std::string &b) {
  return k.op(std::string("arith.") + op + " " + a + ", " + b + " : f32");
}

/// A lane-strided sum over the row's columns of `term(c)`, then the warp's tree.
template <typename Term>
std::string rowSum(KernelEmitter &k, const std::string &lane, const std::string &cols, const std::string &iv,
                   Term term) {
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop(iv, lane, cols, k.index(32), iv + "acc", {k.f32(0.0)}, acc);
  k.yieldF32({binary(k, "addf", acc[0], term("%" + iv))});
  k.line("}");
  return k.warpReduce(KernelEmitter::results(loop, 1)[0], "addf");
}

} // namespace

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
  std::string ss = rowSum(k, lane, cols, "a", [&](const std::string &col) {
    std::string x = k.loadF32("%x", at(col), c.x);
    return binary(k, "mulf", x, x);
  });
  std::string mean = binary(k, "divf", ss, k.f32(static_cast<double>(c.cols)));
  std::string root = k.op("llvm.inline_asm asm_dialect = att \"sqrt.rn.f32 $0, $1;\", \"=f,f\" " +
                          binary(k, "addf", mean, k.f32(c.eps)) + " : (f32) -> f32");
  std::string s = binary(k, "divf", k.f32(1.0), root);
  std::string dot = rowSum(k, lane, cols, "b", [&](const std::string &col) {
    std::string dy = k.loadF32("%dy", at(col), c.dy), w = k.loadF32("%w", col, c.w);
    return binary(k, "mulf", binary(k, "mulf", dy, w), k.loadF32("%x", at(col), c.x));
  });
  std::string s3dot = binary(k, "divf", binary(k, "mulf", binary(k, "mulf", binary(k, "mulf", s, s), s), dot),
                             k.f32(static_cast<double>(c.cols)));
  k.line("scf.for %c = " + lane + " to " + cols + " step " + c32 + " {");
  std::string i = at("%c");
  std::string x = k.loadF32("%x", i, c.x), dy = k.loadF32("%dy", i, c.dy), w = k.loadF32("%w", "%c", c.w);
  k.store(binary(k, "mulf", binary(k, "mulf", dy, x), s), "%terms", i, "f32");
  k.storeF32(binary(k, "subf", binary(k, "mulf", binary(k, "mulf", dy, w), s), binary(k, "mulf", x, s3dot)), "%dx", i,
             c.x);
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
  k.yieldF32({binary(k, "addf", partial[0], k.load("%terms", k.add(k.mul("%r", cols), col), "f32"))});
  k.line("}");
  k.yieldF32({binary(k, "addf", acc[0], KernelEmitter::results(rowsLoop, 1)[0])});
  k.line("}");
  k.storeF32(KernelEmitter::results(blocks, 1)[0], "%dw", col, c.w);
  k.line("}");
  return k.finish("@" + rmsNormGradGainName(c) + "(%terms: memref<?xf32>, %dw: " + flatMemref(c.w) + ", %rows: index)");
}
