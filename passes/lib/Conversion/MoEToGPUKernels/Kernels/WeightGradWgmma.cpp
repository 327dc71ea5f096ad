//===- WeightGradWgmma.cpp - weight cotangents on sm_90a's warpgroup MMA --===//
//
// C[s] = A_s^T . B_s for each segment s of the padded layout (the expert
// weights' cotangents X_e^T dY_e), as WeightGradMma.cpp computes it, on
// wgmma: the operands are read by the tensor cores from shared memory, so
// no thread spends issue slots on ldmatrix.
//
// A block owns a 128 x N tile of one C[s] (N = 128 or 256) and walks its
// segment's rows 64 at a time. Both operands arrive row by row as they lie
// in memory (a row of A holds m values, a row of B n values), through
// 16-byte cp.async (zero-filled past the segment's end and the last column)
// into the layout of the forward's weights: atoms of 8 rows x 64 columns,
// chunks XOR-swizzled by the row, 64-column slices 8 KiB apart. For B that
// is wgmma's n-major B, as in the forward; for A it is the m-major
// (transposed) A, X^T without a transpose. Two warpgroups take 64 of the
// tile's m each. The pipeline is the forward's (GemmWgmma.cpp): 3 stages
// and two blocks an SM for N = 128, 4 stages with a stage's wgmma in flight
// for N = 256; the epilogue stages the tile in shared memory for 16-byte
// stores. Each block sums its rows in one fixed order: the bits repeat from
// call to call, and a segment without rows stores zeros.
//
//===----------------------------------------------------------------------===//
#include "GemmWgmmaParts.h"

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;
using namespace moe::gpu_kernels::gemm::wgmma;

namespace {

/// One thread's 16-byte copy of an operand's stage: row `row` (of 64) and
/// 8-element chunk `chunk` of it, at `shared` within the stage.
struct RowCopy {
  std::string row, chunk, shared, col, colValid;
};

std::vector<RowCopy> rowCopies(KernelEmitter &k, const std::string &tid, int64_t columns, const std::string &col0,
                               int64_t limit, int64_t sharedBase) {
  std::vector<RowCopy> out;
  const int64_t chunksPerRow = columns / 8;
  for (int64_t j = 0; j < kBK * chunksPerRow / 256; ++j) {
    RowCopy c;
    std::string q = k.add(tid, k.index(256 * j));
    c.row = k.div(q, k.index(chunksPerRow));
    c.chunk = k.rem(q, k.index(chunksPerRow));
    c.shared = k.toI32(k.add(k.index(sharedBase), majorAtomOffset(k, c.row, c.chunk)));
    c.col = k.add(col0, k.mul(c.chunk, k.index(8)));
    c.colValid = k.lt(c.col, k.index(limit));
    out.push_back(c);
  }
  return out;
}

} // namespace

std::string moe::gpu_kernels::weightGradWgmmaKernel(const WeightGradConfig &c) {
  KernelEmitter k;
  const int64_t eb = 2;
  GemmConfig shapeConfig;
  shapeConfig.elt = c.a;
  shapeConfig.wgmma = true;
  shapeConfig.kTile = kBK;
  shapeConfig.wgmmaN = c.wgmmaN;
  const Shape s(shapeConfig);
  WeightGradTile tile = openWeightGradTile(k, c);
  const std::string &seg = tile.s, &m0 = tile.m0, &n0 = tile.n0, &lo = tile.lo, &hi = tile.hi;
  std::string tid = k.op("gpu.thread_id x");
  std::string lane = k.rem(tid, k.index(32)), warpgroup = k.div(tid, k.index(128));
  std::string warpInGroup = k.rem(k.div(tid, k.index(32)), k.index(4));
  std::string smemPtr = k.op("llvm.mlir.addressof @moe_smem : !llvm.ptr<3>");
  std::string smem = k.op("llvm.ptrtoint " + smemPtr + " : !llvm.ptr<3> to i32");
  std::string aAddr = address(k, "%A", c.a), bAddr = address(k, "%B", c.b);
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  std::string depth = k.op("arith.subi " + hi + ", " + lo + " : index");
  std::string steps = k.div(k.add(depth, k.index(kBK - 1)), k.index(kBK));

  auto stageBaseOf = [&](const std::string &step) {
    std::string stage = k.toI32(k.rem(step, k.index(s.stages)));
    return k.add32(smem, k.mul32(stage, k.i32(s.stageBytes)));
  };
  // The copies of the segment's rows [lo + step * 64, ...) into the step's
  // stage. What does not change from step to step is formed once: each
  // copy's column offset and, for an operand read in row order, its row's
  // address at step 0 (a step then adds 64 rows). Rows past the segment's
  // end copy nothing (size 0) from a row that exists.
  struct Operand {
    std::vector<RowCopy> copies;
    bool gather;
    std::string addr;
    int64_t ld, column;
    std::vector<std::string> offset; // i64 bytes: the column, plus the step-0 row where not gathered
    std::string firstRow;            // i64 address of a row that exists (lo, or a token's 0), column `column`
  };
  auto prepare = [&](std::vector<RowCopy> copies, bool gather, const std::string &addr, int64_t ld, int64_t column) {
    Operand o{std::move(copies), gather, addr, ld, column, {}, ""};
    for (const RowCopy &cp : o.copies) {
      std::string col = k.add(k.index(column), k.select(cp.colValid, cp.col, k.index(0), "index"));
      std::string elem = gather ? col : k.add(k.mul(k.add(lo, cp.row), k.index(ld)), col);
      o.offset.push_back(i64(k, k.mul(elem, k.index(eb))));
    }
    // (A gathered operand's rows are the tokens': its row 0.)
    std::string firstElem = gather ? k.index(column) : k.add(k.mul(lo, k.index(ld)), k.index(column));
    o.firstRow = k.op("arith.addi " + addr + ", " + i64(k, k.mul(firstElem, k.index(eb))) + " : i64");
    return o;
  };
  Operand aOp = prepare(rowCopies(k, tid, 128, m0, c.m, 0), c.gatherA, aAddr, c.lda, 0);
  Operand bOp = prepare(rowCopies(k, tid, s.n, n0, c.n, kABytes), c.gatherB, bAddr, c.ldb, c.bColumn);
  const std::string topK = c.topK ? k.index(c.topK) : "%topK";
  auto loadStep = [&](const std::string &step) {
    std::string base = stageBaseOf(step), first = k.add(lo, k.mul(step, k.index(kBK)));
    for (const Operand *o : {&aOp, &bOp}) {
      std::string stepBytes =
          o->gather ? "" : k.op("arith.muli " + i64(k, step) + ", " + constant64(k, kBK * o->ld * eb) + " : i64");
      for (size_t j = 0; j < o->copies.size(); ++j) {
        const RowCopy &cp = o->copies[j];
        std::string r = k.add(first, cp.row), inside = k.lt(r, hi);
        std::string rowBytes;
        if (o->gather) {
          std::string src = k.div(k.toIndex(k.load("%perm", k.select(inside, r, lo, "index"), "i32")), topK);
          rowBytes = i64(k, k.mul(src, k.index(o->ld * eb)));
        } else {
          rowBytes = stepBytes;
        }
        std::string at = k.op("arith.addi " + o->addr + ", " +
                              k.op("arith.addi " + rowBytes + ", " + o->offset[j] + " : i64") + " : i64");
        std::string valid = k.op("arith.andi " + inside + ", " + cp.colValid + " : i1");
        cpAsync(k, k.add32(base, cp.shared), k.select(inside, at, o->firstRow, "i64"),
                k.select(valid, sixteen, zero32, "i32"));
      }
    }
  };

  for (int64_t i = 0; i < s.lookahead; ++i) {
    k.line("scf.if " + k.lt(k.index(i), steps) + " {");
    loadStep(k.index(i));
    k.line("}");
    cpAsyncCommit(k);
  }
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("st", k.index(0), steps, k.index(1), "acc",
                                   std::vector<std::string>(s.accumulators, k.f32(0.0)), acc);
  cpAsyncWait(k, s.lookahead - 1);
  // As in the forward: each thread orders its own copies before the async
  // proxy reads them, the barrier everyone's; past it the stage `lookahead`
  // ahead is free (every warpgroup waited for all but `inFlight` stages).
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"fence.proxy.async.shared::cta;\", \"\" : () -> ()");
  k.line("gpu.barrier");
  std::string stageBase = stageBaseOf("%st");
  // A m-major: this warpgroup's 64 of m are one 64-column slice; B n-major as the forward's.
  std::string descA =
      descriptor(k, k.add32(stageBase, k.mul32(k.toI32(warpgroup), k.i32(kSliceBytes))), kSliceBytes, kAtomBytes);
  std::string descB = descriptor(k, k.add32(stageBase, k.i32(kABytes)), kSliceBytes, kAtomBytes);
  // The stage's wgmma first, then the copies `lookahead` steps ahead while
  // it runs: their row lookups (the dispatch permutation, a dependent load a
  // row each step, unlike the forward's fixed rows) would otherwise stall
  // every step before the tensor cores get work. The stage they fill was
  // last read by step st - 1 - inFlight, whose wgmma every warpgroup waited
  // for before the barrier.
  std::vector<std::string> issued =
      wgmmaStage(k, StageOperands{c.a, /*mMajorA=*/true, /*kMajorB=*/false, /*issueOnly=*/true}, s, descA, descB, acc);
  std::string next = k.add("%st", k.index(s.lookahead));
  k.line("scf.if " + k.lt(next, steps) + " {");
  loadStep(next);
  k.line("}");
  cpAsyncCommit(k);
  k.yieldF32(
      accumulatorAsm(k, s, "wgmma.wait_group.sync.aligned " + std::to_string(s.inFlight) + ";", "", "", "", issued));
  k.line("}");
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_all;\", \"\" : () -> ()");
  std::vector<std::string> result = KernelEmitter::results(loop, s.accumulators);
  if (s.inFlight)
    result = accumulatorAsm(k, s, "wgmma.wait_group.sync.aligned 0;", "", "", "", result);

  // The forward's staged epilogue: the tile through shared memory (the
  // stages are free once every warpgroup is past its last wgmma), then
  // 16-byte stores of whole row segments. Accumulator 4j + 2i + h of a
  // thread is row 16 * warp + lane / 4 + 8i of its warpgroup's 64, column
  // 8j + 2 (lane % 4) + h. C[s]'s rows are rows s * m + [0, m) of C.
  GemmConfig out;
  out.out = c.out;
  out.n = c.n;
  out.wgmma = true;
  out.wgmmaN = s.n;
  Tile rows;
  std::string segmentRow = k.mul(seg, k.index(c.m));
  rows.rowStart = k.add(segmentRow, m0);
  rows.rowEnd = k.add(segmentRow, k.index(c.m));
  rows.n0 = n0;
  std::string g = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  k.line("gpu.barrier");
  for (int i = 0; i < 2; ++i) {
    std::string rowL =
        k.add(k.add(k.mul(warpgroup, k.index(64)), k.mul(warpInGroup, k.index(16))), k.add(g, k.index(8 * i)));
    for (int64_t j = 0; j < s.n / 8; ++j)
      stagePair(k, out, smemPtr, rowL, k.add(k.index(8 * j), k.mul(tq, k.index(2))), result[4 * j + 2 * i],
                result[4 * j + 2 * i + 1]);
  }
  storeStagedTile(k, out, rows, tid, smemPtr);
  return k.finish(
      "@" + c.name() + "(%A: " + flatMemref(c.a) + ", %B: " + flatMemref(c.b) + ", %C: " + flatMemref(c.out) +
          ", %perm: memref<?xi32>, %offsets: memref<?xi32>, %ends: memref<?xi32>, %w: " + flatMemref(c.w) +
          ", %rows: index, %topK: index)",
      "",
      "attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = " + std::to_string(s.n == 256 ? 1 : 2) +
          " : i32}");
}
