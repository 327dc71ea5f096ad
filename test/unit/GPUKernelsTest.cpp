// GPUKernelsTest.cpp - every variant of the generated GPU kernels is valid
// MLIR: it parses into a gpu.module, verifies, and lowers to NVVM (the PTX
// itself is checked by ptxas in test/Target/ptxas.test, and on a GPU by
// bench/gpu). Catches a generator change that only some variant breaks.
#include "../../passes/lib/Conversion/MoEToGPUKernels/Kernels/Kernels.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

using namespace mlir;
namespace gk = moe::gpu_kernels;

namespace {

class GPUKernelsTest : public ::testing::Test {
protected:
  GPUKernelsTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    context = std::make_unique<MLIRContext>(registry);
    context->loadAllAvailableDialects();
    static bool passes = [] {
      registerAllPasses();
      return true;
    }();
    (void)passes;
  }

  /// Parses `kernel` into a gpu.module, verifies it and lowers it to NVVM;
  /// returns the first error, or "" when all went well.
  std::string check(const std::string &kernel) {
    std::string source = "gpu.module @k {\n  llvm.mlir.global external @moe_smem() {addr_space = 3 : i32, "
                         "alignment = 1024 : i64} : !llvm.array<0 x i8>\n" +
                         kernel + "}\n";
    std::string errors;
    ScopedDiagnosticHandler handler(context.get(), [&](Diagnostic &d) {
      if (errors.empty())
        errors = d.str();
      return success();
    });
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, context.get());
    if (!module)
      return errors.empty() ? "does not parse" : errors;
    if (failed(verify(*module)))
      return errors;
    PassManager pm(context.get());
    if (failed(parsePassPipeline("builtin.module(convert-scf-to-cf,gpu.module(convert-gpu-to-nvvm),"
                                 "reconcile-unrealized-casts)",
                                 pm)) ||
        failed(pm.run(*module)))
      return errors.empty() ? "does not lower to NVVM" : errors;
    return "";
  }

  std::unique_ptr<MLIRContext> context;
};

TEST_F(GPUKernelsTest, EveryGemmVariant) {
  for (bool tensorCores : {true, false})
    for (int64_t kTile : {32, 64})
      for (std::string elt : {"bf16", "f16", "f32"})
        for (bool glu : {false, true})
          for (bool grouped : {false, true}) {
            if (tensorCores && elt == "f32")
              continue;
            if (!tensorCores && kTile == 64)
              continue;
            gk::GemmConfig c;
            c.tensorCores = tensorCores;
            c.kTile = kTile;
            c.elt = c.out = elt;
            c.k = 128;
            c.n = 192;
            c.glu = glu;
            c.act = glu ? "silu" : "gelu";
            c.grouped = c.gatherRows = c.scaleRows = grouped;
            EXPECT_EQ(check(gk::gemmKernel(c)), "") << c.name();
          }
}

/// A wgmma GEMM of `elt` with partial column blocks, GLU (SwiGLU) or not, and
/// grouped (gathered, scaled rows) or dense.
gk::GemmConfig wgmmaConfig(const std::string &elt, int64_t k, bool glu, bool grouped) {
  gk::GemmConfig c;
  c.wgmma = true;
  c.kTile = 64;
  c.elt = c.out = elt;
  c.k = k;
  c.n = glu ? 200 : 136; // partial column blocks
  c.glu = glu;
  c.act = glu ? "silu" : "relu";
  c.grouped = c.gatherRows = c.scaleRows = grouped;
  return c;
}

TEST_F(GPUKernelsTest, EveryGemmVariantKeepingUpProducts) {
  // A train forward's up GEMM: every engine also stores its pre-activation
  // products into %R (the kernel's extra argument), at the row's assignment.
  auto variants = [] {
    std::vector<gk::GemmConfig> out;
    for (bool glu : {false, true}) {
      gk::GemmConfig c;
      c.elt = c.out = "f32";
      c.tensorCores = false;
      c.k = 128;
      c.n = 192;
      c.glu = glu;
      c.act = glu ? "silu" : "gelu";
      c.grouped = c.gatherRows = true;
      out.push_back(c); // FMA
      c.elt = c.out = "bf16";
      c.tensorCores = true;
      out.push_back(c); // mma.sync
      for (bool staged : {false, true})
        for (int64_t n : {128, 256}) {
          gk::GemmConfig w = wgmmaConfig("bf16", 192, glu, /*grouped=*/true);
          w.scaleRows = false;
          w.stagedEpilogue = staged;
          w.wgmmaN = n;
          out.push_back(w);
        }
      gk::GemmConfig p = wgmmaConfig("bf16", 256, glu, /*grouped=*/true);
      p.scaleRows = false;
      p.stagedEpilogue = p.persistent = true;
      p.wgmmaN = 256;
      out.push_back(p);
    }
    return out;
  };
  for (gk::GemmConfig c : variants()) {
    c.keepUp = true;
    std::string kernel = gk::gemmKernel(c);
    EXPECT_NE(c.name().find("_keep"), std::string::npos);
    EXPECT_NE(kernel.find("%R: memref<?x" + c.out + ">"), std::string::npos) << c.name();
    // Stored into %R: a pair at a time through its address (16-bit types), or element by element (f32).
    EXPECT_NE(kernel.find(c.out == "f32" ? ", %R[" : "llvm.store"), std::string::npos) << c.name();
    if (c.out != "f32")
      EXPECT_NE(kernel.find("vector<2x" + c.out + ">, !llvm.ptr"), std::string::npos) << c.name();
    EXPECT_EQ(check(kernel), "") << c.name();
    c.keepUp = false;
    EXPECT_EQ(gk::gemmKernel(c).find("%R"), std::string::npos) << c.name();
  }
}

TEST_F(GPUKernelsTest, EveryWgmmaGemmVariant) {
  for (bool tma : {false, true})
    for (bool staged : {false, true})
      for (int64_t n : {128, 256})
        for (std::string elt : {"bf16", "f16"})
          for (bool glu : {false, true})
            for (bool grouped : {false, true}) {
              gk::GemmConfig c = wgmmaConfig(elt, 192, glu, grouped);
              c.wgmmaN = n;
              c.stagedEpilogue = staged;
              c.tmaB = tma;
              std::string kernel = gk::gemmKernel(c);
              EXPECT_NE(kernel.find("wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." + elt),
                        std::string::npos);
              EXPECT_NE(kernel.find("wgmma.wait_group.sync.aligned " + std::to_string(n == 256 ? 1 : 0) + ";"),
                        std::string::npos);
              EXPECT_EQ(kernel.find("cp.async.bulk.tensor.3d") != std::string::npos, tma) << c.name();
              EXPECT_EQ(check(kernel), "") << c.name();
            }
}

TEST_F(GPUKernelsTest, EveryKMajorWgmmaGemmVariant) {
  // B read k-major ([experts][n][k]), whole or split along k between two
  // weights; wgmma's B untransposed.
  for (int64_t n : {128, 256})
    for (int64_t split : {0, 128})
      for (bool grouped : {false, true}) {
        gk::GemmConfig c = wgmmaConfig("bf16", 192, /*glu=*/false, grouped);
        c.wgmmaN = n;
        c.stagedEpilogue = true;
        c.kMajorB = true;
        c.bSplitK = split;
        std::string kernel = gk::gemmKernel(c);
        EXPECT_NE(kernel.find(", 1, 1, 0, 0;"), std::string::npos) << c.name();
        EXPECT_EQ(kernel.find(", 1, 1, 0, 1;"), std::string::npos) << c.name();
        EXPECT_NE(c.name().find(split ? "_kb128" : "_kb"), std::string::npos);
        EXPECT_EQ(check(kernel), "") << c.name();
      }
}

TEST_F(GPUKernelsTest, EveryPersistentWgmmaGemmVariant) {
  for (std::string elt : {"bf16", "f16"})
    for (bool glu : {false, true})
      for (bool grouped : {false, true}) {
        gk::GemmConfig c = wgmmaConfig(elt, 256, glu, grouped);
        c.stagedEpilogue = c.persistent = true;
        c.wgmmaN = 256;
        std::string kernel = gk::gemmKernel(c);
        EXPECT_NE(kernel.find("wgmma.mma_async.sync.aligned.m64n256k16.f32." + elt), std::string::npos);
        EXPECT_NE(kernel.find("gpu.grid_dim x"), std::string::npos) << c.name(); // strides by the grid
        EXPECT_EQ(check(kernel), "") << c.name();
      }
}

TEST_F(GPUKernelsTest, EveryWarpSpecializedWgmmaGemmVariant) {
  for (std::string elt : {"bf16", "f16"})
    for (bool glu : {false, true})
      for (bool grouped : {false, true})
        for (bool keepUp : {false, true}) {
          gk::GemmConfig c = wgmmaConfig(elt, 192, glu, grouped);
          c.stagedEpilogue = c.warpSpecialized = true;
          c.wgmmaN = 256;
          c.keepUp = keepUp && grouped && glu;
          std::string kernel = gk::gemmKernel(c);
          EXPECT_NE(c.name().find("_ws"), std::string::npos);
          // The roles' registers, the producer's arrivals, the consumers' waits and releases.
          EXPECT_NE(kernel.find("setmaxnreg.dec.sync.aligned.u32"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("setmaxnreg.inc.sync.aligned.u32"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("cp.async.mbarrier.arrive.noinc.shared::cta.b64"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("mbarrier.try_wait.parity"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("mbarrier.arrive.shared::cta.b64"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("wgmma.mma_async.sync.aligned.m64n256k16.f32." + elt), std::string::npos);
          EXPECT_NE(kernel.find("nvvm.maxntid = array<i32: 384, 1, 1>"), std::string::npos) << c.name();
          // The tile scheduler's counter, the last operand.
          EXPECT_NE(kernel.find("%tileCounter: memref<?xi32>)"), std::string::npos) << c.name();
          EXPECT_NE(kernel.find("memref.atomic_rmw addi"), std::string::npos) << c.name();
          // No block-wide barrier past the roles' split: only the one after the mbarriers' init.
          size_t first = kernel.find("gpu.barrier");
          EXPECT_NE(first, std::string::npos);
          EXPECT_EQ(kernel.find("gpu.barrier", first + 1), std::string::npos) << c.name();
          EXPECT_EQ(check(kernel), "") << c.name();
        }
}

/// A router's product (Qwen3-30B-A3B's: 2048 -> 128, DeepSeek-V3's: 7168 -> 256).
gk::GemmConfig routerConfig(int64_t k, int64_t n) {
  gk::GemmConfig c;
  c.tensorCores = c.wgmma = c.stagedEpilogue = true;
  c.kTile = 64;
  c.elt = "bf16";
  c.out = "f32";
  c.k = k;
  c.n = n;
  c.act = "identity";
  return c;
}

TEST_F(GPUKernelsTest, SplitKRouterProducts) {
  struct Router {
    int64_t k, n, chunks;
  };
  // One row tile's chunks fill the 132 SMs (2 steps of 64 a chunk at most).
  for (Router r : {Router{2048, 128, 16}, Router{7168, 256, 56}, Router{1024, 72, 8}}) {
    gk::GemmConfig c = routerConfig(r.k, r.n);
    ASSERT_TRUE(gk::splitKFits(c)) << c.name();
    EXPECT_EQ(gk::splitKChunks(c), r.chunks) << c.name();
    c.kChunks = gk::splitKChunks(c);
    // Worth it at decode (a tile of 128 rows), not at prefill.
    const int64_t maxRows = gk::splitKMaxRows(c);
    EXPECT_GE(maxRows, 128) << c.name();
    EXPECT_LT(maxRows, 8192) << c.name();
    EXPECT_EQ(maxRows % c.blockM(), 0) << c.name();
    gk::GemmConfig split = c;
    split.splitK = true;
    EXPECT_NE(c.name().find("_kc" + std::to_string(r.chunks)), std::string::npos) << c.name();
    EXPECT_NE(split.name().find("_splitk" + std::to_string(r.chunks)), std::string::npos) << split.name();
    // The whole form loops over the chunks, the split one takes its chunk from the grid's y.
    std::string whole = gk::gemmKernel(c), part = gk::gemmKernel(split);
    EXPECT_NE(part.find("gpu.block_id y"), std::string::npos) << split.name();
    EXPECT_EQ(whole.find("gpu.block_id y"), std::string::npos) << c.name();
    EXPECT_EQ(check(whole), "") << c.name();
    EXPECT_EQ(check(part), "") << split.name();
  }
  for (std::string out : {"f32", "bf16", "f16"})
    EXPECT_EQ(check(gk::splitKSumKernel(out)), "") << out;
  // Not where the chunk sums would not fit beside the accumulators, nor
  // where an epilogue or a gather would have to run on partial sums.
  gk::GemmConfig wide = routerConfig(2048, 512);
  EXPECT_FALSE(gk::splitKFits(wide));
  gk::GemmConfig shallow = routerConfig(192, 128);
  EXPECT_FALSE(gk::splitKFits(shallow));
  gk::GemmConfig glu = routerConfig(2048, 128);
  glu.glu = true;
  glu.act = "silu";
  EXPECT_FALSE(gk::splitKFits(glu));
  gk::GemmConfig grouped = routerConfig(2048, 128);
  grouped.grouped = true;
  EXPECT_FALSE(gk::splitKFits(grouped));
}

TEST_F(GPUKernelsTest, StagedEpilogueToF32) {
  gk::GemmConfig c;
  c.wgmma = c.stagedEpilogue = true;
  c.kTile = 64;
  c.out = "f32";
  c.k = 128;
  c.n = 72;
  EXPECT_EQ(check(gk::gemmKernel(c)), "") << c.name();
}

TEST_F(GPUKernelsTest, RoutingKernels) {
  for (moe_score_t score : {MOE_SCORE_NONE, MOE_SCORE_SOFTMAX, MOE_SCORE_SIGMOID}) {
    gk::TopKConfig c;
    c.logits = score == MOE_SCORE_SOFTMAX ? "bf16" : "f32";
    c.experts = 64;
    c.k = 4;
    c.score = score;
    c.renormalize = score != MOE_SCORE_SIGMOID;
    c.scale = score == MOE_SCORE_SIGMOID ? 2.5 : 1.0;
    EXPECT_EQ(check(gk::topKKernel(c)), "") << c.name();
  }
  gk::GroupTopKConfig g;
  g.experts = 256;
  g.k = 8;
  g.groups = 8;
  g.topGroups = 4;
  EXPECT_EQ(check(gk::groupTopKKernel(g)), "") << g.name();
  // A warp a token for k <= 32, with experts that leave lanes empty (12, 40)
  // or fill them (256); a thread a token beyond.
  for (int64_t experts : {12, 40, 256})
    for (int64_t k : {1, 3, 32}) {
      if (k > experts)
        continue;
      gk::TopKConfig c;
      c.experts = experts;
      c.k = k;
      c.score = MOE_SCORE_SOFTMAX;
      c.renormalize = true;
      std::string kernel = gk::topKKernel(c);
      EXPECT_NE(kernel.find("gpu.shuffle xor"), std::string::npos) << c.name();
      EXPECT_EQ(c.tokensPerBlock(), gk::kTokensPerRoutingBlock);
      EXPECT_EQ(check(kernel), "") << c.name();
    }
  gk::TopKConfig wide;
  wide.experts = 64;
  wide.k = 40;
  EXPECT_EQ(wide.tokensPerBlock(), gk::kRoutingThreads);
  EXPECT_EQ(gk::topKKernel(wide).find("gpu.shuffle"), std::string::npos);
  EXPECT_EQ(check(gk::topKKernel(wide)), "") << wide.name();
  for (auto [experts, groups, topGroups, k] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{64, 4, 2, 6}, {12, 3, 2, 2}, {48, 48, 8, 4}}) {
    gk::GroupTopKConfig gc;
    gc.experts = experts;
    gc.groups = groups;
    gc.topGroups = topGroups;
    gc.k = k;
    EXPECT_EQ(check(gk::groupTopKKernel(gc)), "") << gc.name();
  }
  gk::GatherConfig gather;
  gather.cols = 256;
  gather.k = 8;
  EXPECT_EQ(check(gk::gatherKernel(gather)), "") << gather.name();
  EXPECT_EQ(check(gk::zLossKernel("bf16", 64)), "");
  EXPECT_EQ(check(gk::loadBalanceKernel("f32", 64, 2)), "");
}

TEST_F(GPUKernelsTest, DispatchPlanAndCombine) {
  for (double capacity : {0.0, 1.25}) {
    gk::DispatchConfig c;
    c.experts = 256;
    c.k = 8;
    c.capacity = capacity;
    EXPECT_EQ(check(gk::countKernel(c)), "") << c.suffix();
    EXPECT_EQ(check(gk::scheduleKernel(c)), "") << c.suffix();
    EXPECT_EQ(check(gk::permuteKernel(c)), "") << c.suffix();
  }
  for (bool identity : {false, true})
    for (std::string elt : {"bf16", "f32"})
      for (int64_t hidden : {256, 202}) {
        gk::CombineConfig c;
        c.y = c.x = c.out = elt;
        c.hidden = hidden;
        c.k = 2;
        c.identity = identity;
        // 16 bytes a thread where the width allows it, else a column.
        EXPECT_EQ(c.width(), hidden == 256 ? 16 / (elt == "f32" ? 4 : 2) : 1) << c.name();
        EXPECT_EQ(check(gk::combineKernel(c)), "") << c.name();
      }
}

TEST_F(GPUKernelsTest, NarrowDenseKernels) {
  for (std::string elt : {"bf16", "f32"})
    for (int64_t n : {1, 8, 12, 32}) {
      gk::NarrowDenseConfig c;
      c.elt = c.out = elt;
      c.k = elt == "f32" ? 2048 : 4096;
      c.n = n;
      ASSERT_TRUE(gk::NarrowDenseConfig::fits(c.elt, c.k, c.n));
      EXPECT_EQ(c.tokensPerBlock(), std::clamp<int64_t>(64 / n, 1, 8));
      EXPECT_EQ(check(gk::narrowDenseKernel(c)), "") << c.name();
    }
  // Too many columns, or a k the block's 16-byte pieces do not divide: the GEMM instead.
  EXPECT_FALSE(gk::NarrowDenseConfig::fits("bf16", 4096, 33));
  EXPECT_FALSE(gk::NarrowDenseConfig::fits("bf16", 1024, 8));
  EXPECT_FALSE(gk::NarrowDenseConfig::fits("f32", 768, 8));
}

TEST_F(GPUKernelsTest, EveryWeightGradVariant) {
  // Both engines; gathered or sorted rows on either side; one segment or an
  // expert's each; a width that is not a whole tile; a second column block of B.
  // engine 0: FMA, 1: mma.sync, 2 and 3: wgmma with 128 and 256 columns.
  for (int engine = 0; engine < 4; ++engine)
    for (std::string elt : {"bf16", "f16", "f32"})
      for (int gather = 0; gather < 3; ++gather)
        for (int64_t segments : {1, 8})
          for (auto [m, n] : {std::pair<int64_t, int64_t>{128, 256}, {200, 72}}) {
            gk::WeightGradConfig c;
            c.a = c.b = c.out = elt;
            c.m = m;
            c.n = n;
            c.lda = m;
            c.ldb = 2 * n;
            c.bColumn = n;
            c.segments = segments;
            c.gatherA = gather == 1;
            c.gatherB = gather == 2;
            const bool tensorCores = engine > 0;
            c.scaleB = !tensorCores && gather == 2;
            c.tensorCores = tensorCores;
            c.wgmma = engine >= 2;
            c.wgmmaN = engine == 3 ? 256 : 128;
            if (tensorCores && !c.tensorCoresFit())
              continue;
            SCOPED_TRACE(c.name());
            std::string kernel = gk::weightGradKernel(c);
            if (c.wgmma) // A m-major and B n-major: both transposed
              EXPECT_NE(kernel.find("m64n" + std::to_string(c.wgmmaN) + "k16.f32." + elt + "." + elt),
                        std::string::npos);
            EXPECT_EQ(check(kernel), "");
          }
}

TEST_F(GPUKernelsTest, WeightGradOnTensorCoresOnlyWhereItFits) {
  gk::WeightGradConfig c;
  c.m = 128;
  c.n = 256;
  c.lda = 128;
  c.ldb = 256;
  EXPECT_TRUE(c.tensorCoresFit());
  gk::WeightGradConfig f32 = c;
  f32.a = f32.b = "f32";
  EXPECT_FALSE(f32.tensorCoresFit());
  gk::WeightGradConfig mixed = c;
  mixed.b = "f32"; // a router's f32 logits against bf16 activations
  EXPECT_FALSE(mixed.tensorCoresFit());
  gk::WeightGradConfig scaled = c;
  scaled.scaleB = true; // the operands reach shared memory untouched
  EXPECT_FALSE(scaled.tensorCoresFit());
  gk::WeightGradConfig odd = c;
  odd.n = 250; // not whole 16-byte chunks
  EXPECT_FALSE(odd.tensorCoresFit());
  c.tensorCores = true;
  EXPECT_EQ(c.sharedBytes(), 4 * 2 * 32 * 128 * 2);
  EXPECT_EQ(c.blocks(), 1 * 2);
  gk::WeightGradConfig fma = c;
  fma.tensorCores = false;
  EXPECT_NE(fma.name(), c.name());
  EXPECT_EQ(fma.sharedBytes(), 0);
  EXPECT_EQ(fma.blocks(), 2 * 4);
  gk::WeightGradConfig wide = c;
  wide.wgmma = true;
  wide.wgmmaN = 256;
  EXPECT_EQ(wide.sharedBytes(), 4 * (128 * 64 * 2 + 64 * 256 * 2));
  EXPECT_EQ(wide.blocks(), 1 * 1); // one 128 x 256 tile
  EXPECT_NE(wide.name(), c.name());
}

TEST_F(GPUKernelsTest, BackwardKernels) {
  for (std::string elt : {"bf16", "f32"}) {
    SCOPED_TRACE(elt);
    gk::TransposeConfig t{elt, 4, 100, 72, 144, 72};
    EXPECT_EQ(check(gk::transposeKernel(t)), "");
    for (bool glu : {true, false})
      for (std::string act : {"silu", "gelu", "relu"})
        for (bool scaleHidden : {false, true})
          for (bool keptUp : {false, true}) {
            gk::FfnActivationGradConfig a;
            a.elt = elt;
            a.inner = 96;
            a.glu = glu;
            a.act = act;
            a.scaleHidden = scaleHidden;
            a.keptUp = keptUp; // the forward's up products, in elt, by assignment
            SCOPED_TRACE(a.name());
            std::string kernel = gk::ffnActivationGradKernel(a);
            EXPECT_EQ(kernel.find("%G: memref<?x" + elt + ">") != std::string::npos, keptUp || elt == "f32");
            EXPECT_EQ(check(kernel), "");
          }
  }
  gk::TopKConfig topk;
  topk.experts = 16;
  topk.k = 2;
  topk.score = MOE_SCORE_SOFTMAX;
  topk.renormalize = true;
  EXPECT_EQ(check(gk::topKGradKernel(topk)), "");
  EXPECT_EQ(check(gk::gatherGradKernel("f32", "f32", 16, 2)), "");
  EXPECT_EQ(check(gk::zLossGradKernel("f32", 16)), "");
  EXPECT_EQ(check(gk::loadBalanceGradKernel("f32", 16, 2)), "");
  EXPECT_EQ(check(gk::denseInputGradKernel("f32", "bf16", "bf16", 64, 16)), "");
}

TEST_F(GPUKernelsTest, RMSNormGradKernels) {
  for (auto [x, w, dy] : {std::tuple{"f32", "f32", "f32"}, {"bf16", "f32", "f32"}, {"bf16", "bf16", "bf16"}}) {
    gk::RMSNormGradConfig c{x, w, dy, 96, 1e-5};
    SCOPED_TRACE(c.name());
    EXPECT_EQ(check(gk::rmsNormGradRowsKernel(c)), "");
    EXPECT_EQ(check(gk::rmsNormGradGainKernel(c)), "");
  }
}

TEST_F(GPUKernelsTest, TrainingStepKernels) {
  // Every parameter and gradient type pair AdamW meets, and the squared
  // error of each output type (moe/runtime/train_kernels.h).
  for (std::string param : {"f32", "bf16", "f16"})
    for (std::string grad : {"f32", "bf16", "f16"}) {
      SCOPED_TRACE(param + " " + grad);
      EXPECT_EQ(check(gk::adamwKernel(param, grad)), "");
    }
  for (std::string elt : {"f32", "bf16", "f16"}) {
    SCOPED_TRACE(elt);
    EXPECT_EQ(check(gk::squaredErrorKernel(elt)), "");
  }
}

TEST_F(GPUKernelsTest, NamesTellVariantsApart) {
  gk::GemmConfig a, b;
  a.k = b.k = 64;
  a.n = b.n = 64;
  b.kTile = 64;
  EXPECT_NE(a.name(), b.name());
  b = a;
  b.scaleRows = true;
  EXPECT_NE(a.name(), b.name());
  EXPECT_EQ(a.sharedBytes(), 4 * 128 * 32 * 2 * 2);
  b.kTile = 64;
  EXPECT_EQ(b.sharedBytes(), 3 * 128 * 64 * 2 * 2);
  gk::GemmConfig w = b;
  w.wgmma = true;
  EXPECT_NE(w.name(), b.name());
  EXPECT_EQ(w.sharedBytes(), 3 * 128 * 64 * 2 * 2);
  gk::GemmConfig wide = w;
  wide.wgmmaN = 256;
  EXPECT_NE(wide.name(), w.name());
  EXPECT_EQ(wide.sharedBytes(), 4 * (128 * 64 + 64 * 256) * 2);
  EXPECT_EQ(wide.blockN(), 256);
  wide.glu = true;
  EXPECT_EQ(wide.blockN(), 128);
  wide.tmaB = true;
  EXPECT_EQ(wide.sharedBytes(), 4 * (128 * 64 + 64 * 256) * 2 + 4 * 8); // and an mbarrier a stage
  gk::GemmConfig persistent = wide;
  persistent.tmaB = false;
  persistent.persistent = true;
  EXPECT_NE(persistent.name(), wide.name());
  // Four stages and 64 epilogue rows of 128 bf16 columns padded by 16 bytes: within the 227 KiB an SM has.
  EXPECT_EQ(persistent.sharedBytes(), 4 * (128 * 64 + 64 * 256) * 2 + 64 * (128 * 2 + 16));
  persistent.glu = false;
  EXPECT_LE(persistent.sharedBytes(), 227 * 1024);
  // Warp-specialised: four stages, each consumer warpgroup's 64 rows of up
  // to 128 columns, a full and an empty mbarrier a stage, each stage's tile
  // and two fetched tile numbers, in 227 KiB.
  gk::GemmConfig ws = wide;
  ws.tmaB = false;
  ws.warpSpecialized = true;
  EXPECT_NE(ws.name(), wide.name());
  EXPECT_EQ(ws.threads(), 384);
  EXPECT_TRUE(ws.oneBlockAnSM());
  EXPECT_EQ(ws.epilogueColumns(), 128);
  EXPECT_EQ(ws.sharedBytes(), 4 * (128 * 64 + 64 * 256) * 2 + 2 * 64 * (128 * 2 + 16) + 2 * 4 * 8 + 4 * 16 + 8);
  ws.glu = false;
  EXPECT_EQ(ws.epilogueColumns(), 128); // 256 output columns: two passes of 128
  EXPECT_LE(ws.sharedBytes(), 227 * 1024);
}

} // namespace
