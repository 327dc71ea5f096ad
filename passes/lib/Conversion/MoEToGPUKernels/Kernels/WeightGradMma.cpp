//===- WeightGradMma.cpp - weight cotangents on tensor cores --------------===//
//
// C[s] = A_s^T . B_s for each segment s of the padded layout: the expert
// weights' cotangents X_e^T dY_e, a grouped GEMM whose reduction runs over
// each expert's rows (MegaBlocks' transposed shapes), its depth read on the
// device (no host synchronisation).
//
// A block owns a 128 x 128 tile of one C[s] and walks its segment's rows 32
// at a time: both operands arrive row by row as they lie in memory (a row of
// A holds m values, a row of B n values) through a 4-stage cp.async ring
// (16-byte copies, zero-filled past the segment's end and the last column),
// XOR-swizzled so the transposing ldmatrix reads are free of bank conflicts;
// 8 warps of 64 x 32, mma.sync m16n8k16 with f32 accumulators. Each block
// sums its rows in one fixed order: the bits repeat from call to call.
//
//===----------------------------------------------------------------------===//
#include "GemmCommon.h"
#include "Kernels.h"

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;

namespace {
constexpr int64_t kTile = 128, kRows = 32, kStages = 4;
constexpr int64_t kOperandBytes = kRows * kTile * 2; // one operand's rows of a stage
constexpr int64_t kStageBytes = 2 * kOperandBytes;

/// The byte offset in an operand's part of a stage of 16-byte chunk `chunk`
/// (of 16) of row `row` (of kRows), swizzled by the row.
std::string swizzled(KernelEmitter &k, const std::string &row, const std::string &chunk) {
  std::string swz = k.op("arith.xori " + chunk + ", " + k.rem(row, k.index(8)) + " : index");
  return k.add(k.mul(row, k.index(kTile * 2)), k.mul(swz, k.index(16)));
}
} // namespace

bool WeightGradConfig::tensorCoresFit() const {
  // Whole 16-byte chunks: every row and column block starts on one.
  return (a == "bf16" || a == "f16") && a == b && !scaleB && m % 8 == 0 && n % 8 == 0 && lda % 8 == 0 && ldb % 8 == 0 &&
         bColumn % 8 == 0;
}

int64_t WeightGradConfig::sharedBytes() const {
  if (!tensorCores)
    return 0;
  if (!wgmma)
    return kStages * kStageBytes;
  GemmConfig shape;
  shape.wgmma = true;
  shape.kTile = 64;
  shape.wgmmaN = wgmmaN;
  return shape.stages() * shape.stageBytes();
}

std::string moe::gpu_kernels::weightGradMmaKernel(const WeightGradConfig &c) {
  KernelEmitter k;
  const int64_t eb = 2;
  WeightGradTile tile = openWeightGradTile(k, c);
  std::string tid = k.op("gpu.thread_id x");
  const std::string &s = tile.s, &m0 = tile.m0, &n0 = tile.n0, &lo = tile.lo, &hi = tile.hi;
  std::string depth = k.op("arith.subi " + hi + ", " + lo + " : index");
  std::string steps = k.div(k.add(depth, k.index(kRows - 1)), k.index(kRows));
  std::string lane = k.rem(tid, k.index(32)), warp = k.div(tid, k.index(32));
  std::string wm = k.div(warp, k.index(4)), wn = k.rem(warp, k.index(4));
  std::string smemPtr = k.op("llvm.mlir.addressof @moe_smem : !llvm.ptr<3>");
  std::string smem = k.op("llvm.ptrtoint " + smemPtr + " : !llvm.ptr<3> to i32");
  std::string aAddr = address(k, "%A", c.a), bAddr = address(k, "%B", c.b);
  std::string zero32 = k.i32(0), sixteen = k.i32(16);

  // This thread's copies of a stage: two 16-byte chunks of A's rows and two of B's.
  struct Copy {
    std::string row, chunk, shared;
  };
  std::vector<Copy> copies;
  for (int j = 0; j < 2; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string row = k.div(q, k.index(16)), chunk = k.rem(q, k.index(16));
    copies.push_back({row, chunk, k.toI32(swizzled(k, row, chunk))});
  }
  // The copies of rows [lo + step * kRows, ...) into the step's stage.
  auto loadStep = [&](const std::string &step) {
    std::string stage = k.toI32(k.rem(step, k.index(kStages)));
    std::string base = k.add32(smem, k.mul32(stage, k.i32(kStageBytes)));
    for (const Copy &cp : copies) {
      std::string r = k.add(k.add(lo, k.mul(step, k.index(kRows))), cp.row), inside = k.lt(r, hi);
      std::string clamped = k.select(inside, r, lo, "index");
      for (int operand = 0; operand < 2; ++operand) {
        bool gather = operand == 0 ? c.gatherA : c.gatherB;
        std::string src = gather ? k.div(k.toIndex(k.load("%perm", clamped, "i32")), "%topK") : clamped;
        std::string col = k.add(operand == 0 ? m0 : n0, k.mul(cp.chunk, k.index(8)));
        std::string valid =
            k.op("arith.andi " + inside + ", " + k.lt(col, k.index(operand == 0 ? c.m : c.n)) + " : i1");
        std::string safeCol = k.select(valid, col, k.index(0), "index");
        std::string elem = operand == 0 ? k.add(k.mul(src, k.index(c.lda)), safeCol)
                                        : k.add(k.add(k.mul(src, k.index(c.ldb)), k.index(c.bColumn)), safeCol);
        std::string global =
            k.op("arith.addi " + (operand == 0 ? aAddr : bAddr) + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64");
        std::string shared = k.add32(base, operand == 0 ? cp.shared : k.add32(cp.shared, k.i32(kOperandBytes)));
        cpAsync(k, shared, global, k.select(valid, sixteen, zero32, "i32"));
      }
    }
  };

  // Fragment offsets in a stage, per 16-row step kk: A's m tiles (16 columns
  // of A each) and B's column pairs (16 columns of B each). Lanes 0-7, 8-15,
  // 16-23, 24-31 address the four 8 x 8 matrices of an x4 load.
  std::string l8 = k.rem(lane, k.index(8)), half = k.rem(k.div(lane, k.index(8)), k.index(2));
  std::string upper = k.div(lane, k.index(16));
  std::vector<std::vector<std::string>> offA(2), offB(2);
  for (int kk = 0; kk < 2; ++kk) {
    // A: (m 0-7, rows 0-7), (m 8-15, rows 0-7), (m 0-7, rows 8-15), (m 8-15, rows 8-15) = a0..a3.
    std::string rowA = k.add(k.add(k.index(kk * 16), l8), k.mul(upper, k.index(8)));
    for (int mi = 0; mi < 4; ++mi) {
      std::string col = k.add(k.add(k.mul(wm, k.index(64)), k.index(mi * 16)), k.mul(half, k.index(8)));
      offA[kk].push_back(k.toI32(swizzled(k, rowA, k.div(col, k.index(8)))));
    }
    // B: (rows 0-7, n 0-7), (rows 8-15, n 0-7), (rows 0-7, n 8-15), (rows 8-15, n 8-15).
    std::string rowB = k.add(k.add(k.index(kk * 16), l8), k.mul(half, k.index(8)));
    for (int q = 0; q < 2; ++q) {
      std::string col = k.add(k.add(k.mul(wn, k.index(32)), k.index(q * 16)), k.mul(upper, k.index(8)));
      offB[kk].push_back(k.toI32(k.add(k.index(kOperandBytes), swizzled(k, rowB, k.div(col, k.index(8))))));
    }
  }

  for (int64_t st = 0; st < kStages - 1; ++st) {
    k.line("scf.if " + k.lt(k.index(st), steps) + " {");
    loadStep(k.index(st));
    k.line("}");
    cpAsyncCommit(k);
  }
  std::vector<std::string> acc;
  std::string loop =
      k.openF32Loop("st", k.index(0), steps, k.index(1), "acc", std::vector<std::string>(64, k.f32(0.0)), acc);
  cpAsyncWait(k, kStages - 2);
  k.line("gpu.barrier");
  std::string next = k.add("%st", k.index(kStages - 1));
  k.line("scf.if " + k.lt(next, steps) + " {");
  loadStep(next);
  k.line("}");
  cpAsyncCommit(k);
  std::string stage = k.toI32(k.rem("%st", k.index(kStages)));
  std::string base = k.add32(smem, k.mul32(stage, k.i32(kStageBytes)));
  for (int kk = 0; kk < 2; ++kk)
    warpTileStep(k, c.a, base, offA[kk], offB[kk], /*transA=*/true, acc);
  k.yieldF32(acc);
  k.line("}");
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_all;\", \"\" : () -> ()");

  // Each thread holds rows g and g + 8 of every 16 x 8 tile, two columns each.
  std::string g = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  for (int mi = 0; mi < 4; ++mi)
    for (int h = 0; h < 2; ++h) {
      std::string mm = k.add(m0, k.add(k.add(k.mul(wm, k.index(64)), k.index(mi * 16 + 8 * h)), g));
      k.line("scf.if " + k.lt(mm, k.index(c.m)) + " {");
      for (int nj = 0; nj < 4; ++nj) {
        std::string nn = k.add(n0, k.add(k.add(k.mul(wn, k.index(32)), k.index(nj * 8)), k.mul(tq, k.index(2))));
        k.line("scf.if " + k.lt(nn, k.index(c.n)) + " {");
        auto res = [&](int i) { return loop + "#" + std::to_string((mi * 4 + nj) * 4 + 2 * h + i); };
        k.storeVectorF32({res(0), res(1)}, "%C", c.out,
                         k.add(k.mul(k.add(k.mul(s, k.index(c.m)), mm), k.index(c.n)), nn));
        k.line("}");
      }
      k.line("}");
    }
  return k.finish("@" + c.name() + "(%A: " + flatMemref(c.a) + ", %B: " + flatMemref(c.b) +
                      ", %C: " + flatMemref(c.out) +
                      ", %perm: memref<?xi32>, %offsets: memref<?xi32>, %ends: memref<?xi32>, %w: " + flatMemref(c.w) +
                      ", %rows: index, %topK: index)",
                  "", "attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = 2 : i32}");
}
