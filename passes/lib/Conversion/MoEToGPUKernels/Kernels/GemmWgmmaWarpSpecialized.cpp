//===- GemmWgmmaWarpSpecialized.cpp - the sm_90a GEMM, warp-specialised ---===//
//
// The one-block-a-tile wgmma GEMM pays each tile's start and end with the
// tensor cores idle, and the persistent one (GemmWgmmaPersistent.cpp), whose
// threads issue both the copies and the wgmma, stalled on dispatch instead
// (docs/performance.md). Here (GemmConfig::warpSpecialized) the roles are
// split between warpgroups of one block an SM, which walks the tiles b,
// b + G, ... of the device-built schedule (G blocks):
// - warpgroup 0, the producer, gives up registers (setmaxnreg.dec) and fills
//   a ring of stages with 16-byte cp.async (A's rows gathered through the
//   dispatch permutation, B's n-major atoms), stage after stage across tiles.
//   Each thread's `cp.async.mbarrier.arrive.noinc` on the stage's `full`
//   barrier fires when its copies have landed (128 arrivals complete it).
//   Before refilling a stage it waits on the stage's `empty` barrier.
// - warpgroups 1 and 2, the consumers, take the registers (setmaxnreg.inc)
//   and multiply 64 rows each: wait for `full`, fence the proxies, issue the
//   stage's wgmma, keep one stage in flight, and release the stage before it
//   (lane 0 of each warp arrives on its `empty` barrier: 8 arrivals).
// - the epilogue: each consumer warpgroup stages its 64 rows through its own
//   shared memory past the ring (up to 128 columns at a time, synchronised by
//   a named barrier of its 128 threads) while the producer already loads the
//   next tile's stages; so the consumers never meet the producer at a
//   block-wide barrier.
// A use u of a stage completes its `full` barrier's phase u: the consumers
// wait for parity u % 2, the producer (refilling for use u) for the `empty`
// phase u - 1, parity (u + 1) % 2, which a fresh barrier passes at once.
//
//===----------------------------------------------------------------------===//
#include "GemmWgmmaParts.h"

#include <algorithm>

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;
using namespace moe::gpu_kernels::gemm::wgmma;

namespace {

constexpr int64_t kGroupThreads = 128;
/// Registers a thread after setmaxnreg: 128 x 104 + 256 x 200 = the 384 x 168
/// the block is launched with (65536 / 384, rounded down to a multiple of 8).
constexpr int64_t kProducerRegisters = 104, kConsumerRegisters = 200;

void asmLine(KernelEmitter &k, const std::string &text, const std::string &constraints = "",
             const std::string &operands = "", const std::string &types = "") {
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"" + text + "\", \"" + constraints + "\" " + operands +
         " : (" + types + ") -> ()");
}

/// The producer's 16-byte copies of one tile, per k step. A thread copies
/// chunk tid % 8 of A's rows tid / 8 + 16 j (each row gathered on its own)
/// and chunk tid % 32 of B's k rows tid / 32 + 4 j, so its B copies share one
/// column (and one source size) and differ by constant offsets. What depends
/// on the tile is carried through the tile loop, one tile ahead: its loads
/// (the schedule, the permutation) are issued a tile before they are needed.
struct TileCopies {
  std::vector<std::string> aGlobal, aSize; ///< per A copy: address of k step 0, source size
  std::string bGlobal, bSize;              ///< the first B copy's address of k step 0, every B copy's size
  std::vector<std::string> values() const {
    std::vector<std::string> v = aGlobal;
    v.insert(v.end(), aSize.begin(), aSize.end());
    v.push_back(bGlobal);
    v.push_back(bSize);
    return v;
  }
  /// The type of each of values().
  std::vector<std::string> types() const {
    std::vector<std::string> t(aGlobal.size(), "i64");
    t.insert(t.end(), aSize.size(), "i32");
    t.push_back("i64");
    t.push_back("i32");
    return t;
  }
  /// The same shape, value i named `prefix` + i.
  TileCopies named(const std::string &prefix) const {
    TileCopies r = *this;
    size_t i = 0;
    for (std::string &name : r.aGlobal)
      name = prefix + std::to_string(i++);
    for (std::string &name : r.aSize)
      name = prefix + std::to_string(i++);
    r.bGlobal = prefix + std::to_string(i++);
    r.bSize = prefix + std::to_string(i++);
    return r;
  }
};

/// The copies' places in a stage, the same for every tile.
struct StagePlaces {
  std::string aShared;              ///< the first A copy's offset (the rest 16 rows apart)
  std::vector<std::string> bShared; ///< per B copy
};

constexpr int64_t kBRowsPerPass = kGroupThreads / 32; // 256 columns: 32 chunks a row of B

StagePlaces stagePlaces(KernelEmitter &k, const std::string &ptid) {
  StagePlaces out;
  out.aShared = k.toI32(lineOffset(k, k.div(ptid, k.index(8)), k.rem(ptid, k.index(8))));
  // Copy j's row kr0 + 4j (kr0 < 4) lies in atom j / 2 at the line of copy
  // j % 2: two offsets and constants.
  std::string kr0 = k.div(ptid, k.index(32)), chunk = k.rem(ptid, k.index(32));
  std::string even = k.toI32(k.add(k.index(kABytes), majorAtomOffset(k, kr0, chunk)));
  std::string odd = k.toI32(k.add(k.index(kABytes), majorAtomOffset(k, k.add(kr0, k.index(4)), chunk)));
  for (int64_t j = 0; j < kBK / kBRowsPerPass; ++j)
    out.bShared.push_back(k.add32(j % 2 ? odd : even, k.i32((j / 2) * kAtomBytes)));
  return out;
}

TileCopies tileCopies(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &ptid,
                      const Prelude &pre) {
  TileCopies out;
  const int64_t eb = eltBytes(c.elt);
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  std::string aRow = k.div(ptid, k.index(8)), aChunk = k.rem(ptid, k.index(8));
  for (int64_t j = 0; j < 128 * 8 / kGroupThreads; ++j) {
    std::string p = k.add(t.rowStart, k.add(aRow, k.index(16 * j))), valid = k.lt(p, t.rowEnd);
    std::string src = sourceRow(k, c, t, p, valid);
    std::string elem = k.add(k.mul(src, k.index(c.k)), k.mul(aChunk, k.index(8)));
    out.aGlobal.push_back(k.op("arith.addi " + pre.aAddr + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64"));
    out.aSize.push_back(k.select(valid, sixteen, zero32, "i32"));
  }
  std::string kr0 = k.div(ptid, k.index(32)), chunk = k.rem(ptid, k.index(32));
  std::string col, base = pre.b0Addr;
  if (c.glu) {
    // The first half of B's columns are the gate's, the second the up projection's.
    std::string half = k.index(16);
    col = k.add(t.n0, k.mul(k.rem(chunk, half), k.index(8)));
    base = k.select(k.op("arith.cmpi uge, " + chunk + ", " + half + " : index"), pre.b1Addr, pre.b0Addr, "i64");
  } else {
    col = k.add(t.n0, k.mul(chunk, k.index(8)));
  }
  std::string valid = k.lt(col, k.index(c.n));
  std::string safeCol = k.select(valid, col, k.index(0), "index");
  std::string elem = k.add(k.mul(k.add(k.mul(t.e, k.index(c.k)), kr0), k.index(c.n)), safeCol);
  out.bGlobal = k.op("arith.addi " + base + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64");
  out.bSize = k.select(valid, sixteen, zero32, "i32");
  return out;
}

/// The consumer warpgroup's 64 staged rows (`cols` columns from tile column
/// `col0`, rows `rowBytes` apart at `ptr`) to C, 16 bytes a thread at a time.
void storeGroupRows(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &gtid,
                    const std::string &ptr, const std::string &firstRow, int64_t col0, int64_t cols, int64_t rowBytes) {
  const int64_t outBytes = eltBytes(c.out), chunksPerRow = cols * outBytes / 16, perChunk = 16 / outBytes;
  std::string cBase = k.op("llvm.inttoptr " + address(k, "%C", c.out) + " : i64 to !llvm.ptr");
  for (int64_t j = 0; j < 64 * chunksPerRow / kGroupThreads; ++j) {
    std::string q = k.add(gtid, k.index(kGroupThreads * j));
    std::string row = k.div(q, k.index(chunksPerRow)), chunk = k.rem(q, k.index(chunksPerRow));
    std::string p = k.add(t.rowStart, k.add(firstRow, row));
    std::string col = k.add(t.n0, k.add(k.index(col0), k.mul(chunk, k.index(perChunk))));
    // n is a multiple of 8 (tensorCoresFit): a chunk lies wholly inside C or wholly outside.
    std::string inside = k.op("arith.andi " + k.lt(p, t.rowEnd) + ", " + k.lt(col, k.index(c.n)) + " : i1");
    k.line("scf.if " + inside + " {");
    std::string from = k.toI32(k.add(k.mul(row, k.index(rowBytes)), k.mul(chunk, k.index(16))));
    std::string src = k.op("llvm.getelementptr " + ptr + "[" + from + "] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8");
    std::string v = k.op("llvm.load " + src + " {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xi32>");
    std::string to = i64(k, k.mul(k.add(k.mul(p, k.index(c.n)), col), k.index(outBytes)));
    std::string dst = k.op("llvm.getelementptr " + cBase + "[" + to + "] : (!llvm.ptr, i64) -> !llvm.ptr, i8");
    k.line("llvm.store " + v + ", " + dst + " {alignment = 16 : i64} : vector<4xi32>, !llvm.ptr");
    k.line("}");
  }
}

} // namespace

std::string moe::gpu_kernels::warpSpecializedWgmmaGemmKernel(const GemmConfig &c) {
  KernelEmitter k;
  const Shape s(c);
  const int64_t eb = eltBytes(c.elt), kTiles = c.k / kBK, nBlocks = c.columnBlocks();
  const Prelude pre = prelude(k, c);
  const std::string &tid = pre.tid, &lane = pre.lane, &warpgroup = pre.warpgroup, &warpInGroup = pre.warpInGroup;

  // Shared memory: the ring of stages, the consumers' epilogue rows, the
  // `full` and `empty` barriers of each stage, each stage's tile (its number,
  // first row, end row and first column, i32), and the producer's two slots
  // for a fetched tile number.
  const int64_t epilogueAt = s.stages * s.stageBytes, barriersAt = epilogueAt + c.epilogueBytes();
  const int64_t stageTilesAt = barriersAt + 2 * s.stages * 8, fetchedAt = stageTilesAt + s.stages * 16;
  auto stageOf = [&](const std::string &g) { return k.toI32(k.rem(g, k.index(s.stages))); };
  auto fullBarrier = [&](const std::string &stage) {
    return k.add32(pre.smem, k.add32(k.i32(barriersAt), k.mul32(stage, k.i32(8))));
  };
  auto emptyBarrier = [&](const std::string &stage) {
    return k.add32(pre.smem, k.add32(k.i32(barriersAt + s.stages * 8), k.mul32(stage, k.i32(8))));
  };
  auto parityOf = [&](const std::string &g, bool previous) {
    std::string use = k.div(g, k.index(s.stages));
    if (previous)
      use = k.add(use, k.index(1));
    return k.toI32(k.rem(use, k.index(2)));
  };
  auto sharedI32 = [&](const std::string &offset) {
    return k.op("llvm.getelementptr " + pre.smemPtr + "[" + offset + "] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8");
  };
  auto storeShared = [&](const std::string &offset, const std::string &index) {
    k.line("llvm.store " + k.toI32(index) + ", " + sharedI32(offset) + " : i32, !llvm.ptr<3>");
  };
  auto loadShared = [&](const std::string &offset) {
    return k.toIndex(k.op("llvm.load " + sharedI32(offset) + " : !llvm.ptr<3> -> i32"));
  };
  auto stageTile = [&](const std::string &stage, int64_t field) {
    return k.add32(k.i32(stageTilesAt + 4 * field), k.mul32(stage, k.i32(16)));
  };
  auto arrive = [&](const std::string &bar) {
    asmLine(k, "{ .reg .b64 state; mbarrier.arrive.shared::cta.b64 state, [$0]; }", "r", bar, "i32");
  };
  std::string isThread0 = k.op("arith.cmpi eq, " + tid + ", " + k.index(0) + " : index");
  k.line("scf.if " + isThread0 + " {");
  for (int64_t i = 0; i < s.stages; ++i) {
    // The producer's 128 copy arrivals and its thread 0's, which publishes the stage's tile.
    asmLine(k, "mbarrier.init.shared::cta.b64 [$0], " + std::to_string(kGroupThreads + 1) + ";", "r",
            fullBarrier(k.i32(i)), "i32");
    asmLine(k, "mbarrier.init.shared::cta.b64 [$0], 8;", "r", emptyBarrier(k.i32(i)), "i32");
  }
  asmLine(k, "fence.mbarrier_init.release.cluster;");
  k.line("}");
  k.line("gpu.barrier");

  // The tiles: numbers below tiles x column blocks in the grouped order,
  // handed out by a counter (zeroed before the launch) in the order the
  // producers ask, so tiles that share operands run together as they would
  // in a grid of one block a tile.
  std::string tiles = c.grouped ? k.toIndex(k.load("%numTiles", k.index(0), "i32"))
                                : k.div(k.add("%rows", k.index(c.blockM() - 1)), k.index(c.blockM()));
  std::string total = k.mul(tiles, k.index(nBlocks));
  std::string lastTile = k.op("arith.subi " + total + ", " + k.index(1) + " : index");
  auto tileOf = [&](const std::string &linear) {
    // Past the end (the fetch that finds no more) reads the last tile: nothing reads past the schedule.
    auto [bx, by] = groupedTile(k, nBlocks, k.minIndex(linear, lastTile), tiles);
    return tileAt(k, c, bx, by);
  };
  auto stepOf = [&](const std::string &g, const std::string &kt) { return k.add(g, kt); };
  k.line("scf.if " + k.lt(k.index(0), total) + " {");

  // The producer.
  k.line("scf.if " + k.op("arith.cmpi eq, " + warpgroup + ", " + k.index(0) + " : index") + " {");
  asmLine(k, "setmaxnreg.dec.sync.aligned.u32 " + std::to_string(kProducerRegisters) + ";");
  {
    // Thread 0 takes the next tile number into slot `slot`; the warpgroup's
    // named barrier 3 then shows it to all 128 (two slots: a slot is written
    // again only after every thread has passed the barrier behind its read).
    auto fetch = [&](const std::string &slot) {
      std::string at = k.add32(k.i32(fetchedAt), k.mul32(k.toI32(slot), k.i32(4)));
      k.line("scf.if " + isThread0 + " {");
      std::string t = k.op("memref.atomic_rmw addi " + k.i32(1) + ", %tileCounter[" + k.index(0) +
                           "] : (i32, memref<?xi32>) -> i32");
      k.line("llvm.store " + t + ", " + sharedI32(at) + " : i32, !llvm.ptr<3>");
      k.line("}");
      asmLine(k, "bar.sync 3, 128;");
      return loadShared(at);
    };
    StagePlaces places = stagePlaces(k, tid);
    std::string first = fetch(k.index(0));
    Tile firstTile = tileOf(first);
    TileCopies firstCopies = tileCopies(k, c, firstTile, tid, pre);
    // Carried: the tile number, its first stage, the loop count, its rows and columns, its copies.
    std::vector<std::string> inits = {first,       k.index(0), k.index(0), firstTile.rowStart, firstTile.rowEnd,
                                      firstTile.n0};
    std::vector<std::string> copyInits = firstCopies.values();
    inits.insert(inits.end(), copyInits.begin(), copyInits.end());
    std::vector<std::string> typeList(6, "index"), copyTypes = firstCopies.types();
    typeList.insert(typeList.end(), copyTypes.begin(), copyTypes.end());
    const std::string types = joined(typeList);
    // The before region's names, and the do region's: the same with `_a`
    // (the copies %pa_0, ... as TileCopies::named gives them).
    std::vector<std::string> names = {"%pt", "%pg", "%pj", "%prs", "%pre", "%pn0"};
    std::vector<std::string> copyNames = firstCopies.named("%pc_").values();
    names.insert(names.end(), copyNames.begin(), copyNames.end());
    TileCopies cur = firstCopies.named("%pa_");
    std::vector<std::string> a = {"%pt_a", "%pg_a", "%pj_a", "%prs_a", "%pre_a", "%pn0_a"};
    std::vector<std::string> curNames = cur.values();
    a.insert(a.end(), curNames.begin(), curNames.end());
    std::string carried, after;
    for (size_t i = 0; i < inits.size(); ++i) {
      carried += (i ? ", " : "") + names[i] + " = " + inits[i];
      after += (i ? ", " : "") + a[i] + ": " + typeList[i];
    }
    std::string loop = k.fresh();
    k.line(loop + ":" + std::to_string(inits.size()) + " = scf.while (" + carried + ") : (" + types + ") -> (" + types +
           ") {");
    k.line("scf.condition(" + k.lt("%pt", total) + ") " + joined(names) + " : " + types);
    k.line("} do {");
    k.line("^bb0(" + after + "):");
    // The next tile's number, rows and copies, a tile ahead.
    std::string next = fetch(k.rem(k.add(a[2], k.index(1)), k.index(2)));
    Tile nextTile = tileOf(next);
    TileCopies nextCopies = tileCopies(k, c, nextTile, tid, pre);
    k.line("scf.for %kt = " + k.index(0) + " to " + k.index(kTiles) + " step " + k.index(1) + " {");
    std::string g = stepOf(a[1], "%kt"), stage = stageOf(g);
    waitParity(k, emptyBarrier(stage), parityOf(g, /*previous=*/true));
    std::string stageBase = k.add32(pre.smem, k.mul32(stage, k.i32(s.stageBytes)));
    std::string kt64 = i64(k, "%kt");
    std::string stepA = k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * eb) + " : i64");
    std::string stepB = k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * c.n * eb) + " : i64");
    std::string aShared = k.add32(stageBase, places.aShared);
    for (size_t j = 0; j < cur.aGlobal.size(); ++j)
      cpAsync(k, k.add32(aShared, k.i32(int64_t(j) * 16 * 128)),
              k.op("arith.addi " + cur.aGlobal[j] + ", " + stepA + " : i64"), cur.aSize[j]);
    std::string bFrom = k.op("arith.addi " + cur.bGlobal + ", " + stepB + " : i64");
    for (size_t j = 0; j < places.bShared.size(); ++j)
      cpAsync(k, k.add32(stageBase, places.bShared[j]), plus64(k, bFrom, int64_t(j) * kBRowsPerPass * c.n * eb),
              cur.bSize);
    asmLine(k, "cp.async.mbarrier.arrive.noinc.shared::cta.b64 [$0];", "r", fullBarrier(stage), "i32");
    k.line("scf.if " + isThread0 + " {");
    storeShared(stageTile(stage, 0), a[0]);
    storeShared(stageTile(stage, 1), a[3]);
    storeShared(stageTile(stage, 2), a[4]);
    storeShared(stageTile(stage, 3), a[5]);
    arrive(fullBarrier(stage));
    k.line("}");
    k.line("}");
    std::vector<std::string> yielded = {
        next, k.add(a[1], k.index(kTiles)), k.add(a[2], k.index(1)), nextTile.rowStart, nextTile.rowEnd, nextTile.n0};
    std::vector<std::string> nextValues = nextCopies.values();
    yielded.insert(yielded.end(), nextValues.begin(), nextValues.end());
    k.line("scf.yield " + joined(yielded) + " : " + types);
    k.line("}");
    // No more tiles: a last stage names a tile past the end, which ends the consumers.
    std::string endStep = loop + "#1", endStage = stageOf(endStep);
    waitParity(k, emptyBarrier(endStage), parityOf(endStep, /*previous=*/true));
    asmLine(k, "cp.async.mbarrier.arrive.noinc.shared::cta.b64 [$0];", "r", fullBarrier(endStage), "i32");
    k.line("scf.if " + isThread0 + " {");
    storeShared(stageTile(endStage, 0), total);
    arrive(fullBarrier(endStage));
    k.line("}");
  }
  asmLine(k, "cp.async.wait_all;");
  k.line("} else {");

  // The consumers: warpgroup 1 multiplies the tile's rows 0-63, 2 rows 64-127.
  asmLine(k, "setmaxnreg.inc.sync.aligned.u32 " + std::to_string(kConsumerRegisters) + ";");
  std::string half = k.op("arith.subi " + warpgroup + ", " + k.index(1) + " : index");
  std::string gtid = k.rem(tid, k.index(kGroupThreads));
  std::string isLane0 = k.op("arith.cmpi eq, " + lane + ", " + k.index(0) + " : index");
  // Carried: the accumulators (a tile's first stage ignores them, wgmma's
  // scale-d, so nothing clears or copies them) and the next tile's first stage.
  std::string accTypes = f32Types(s.accumulators);
  std::string carried, condArgs, after;
  for (int64_t i = 0; i < s.accumulators; ++i) {
    carried += "%tacc" + std::to_string(i) + " = " + k.f32(0.0) + ", ";
    condArgs += "%tacc" + std::to_string(i) + ", ";
    after += "%acc_in" + std::to_string(i) + ": f32, ";
  }
  carried += "%cg = " + k.index(0);
  std::string tilesLoop = k.fresh();
  k.line(tilesLoop + ":" + std::to_string(s.accumulators + 4) + " = scf.while (" + carried + ") : (" + accTypes +
         ", index) -> (" + accTypes + ", index, index, index, index) {");
  {
    // The tile's first stage names it: a number past the end ends the loop.
    std::string stage = stageOf("%cg");
    waitParity(k, fullBarrier(stage), parityOf("%cg", /*previous=*/false));
    std::string number = loadShared(stageTile(stage, 0));
    std::string rs = loadShared(stageTile(stage, 1)), re = loadShared(stageTile(stage, 2)),
                n0 = loadShared(stageTile(stage, 3));
    k.line("scf.condition(" + k.lt(number, total) + ") " + condArgs + "%cg, " + rs + ", " + re + ", " + n0 + " : " +
           accTypes + ", index, index, index, index");
  }
  k.line("} do {");
  k.line("^bb0(" + after + "%g0: index, %trs: index, %tre: index, %tn0: index):");
  std::vector<std::string> tacc;
  for (int64_t i = 0; i < s.accumulators; ++i)
    tacc.push_back("%acc_in" + std::to_string(i));
  Tile t{"", "%trs", "%tre", "%tn0"};
  std::string firstRow = k.mul(half, k.index(64));
  std::string hasRows = k.lt(k.add(t.rowStart, firstRow), t.rowEnd);
  // The epilogue's routing weights, loaded before the tile's k steps.
  std::string g8 = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  std::string rowL[2], scale[2];
  for (int i = 0; i < 2; ++i) {
    rowL[i] = k.add(k.mul(warpInGroup, k.index(16)), k.add(g8, k.index(8 * i)));
    std::string p = k.add(t.rowStart, k.add(firstRow, rowL[i]));
    scale[i] = rowScale(k, c, k.select(k.lt(p, t.rowEnd), p, t.rowStart, "index"));
  }
  std::vector<std::string> acc;
  std::string stepsLoop = k.openF32Loop("kt", k.index(0), k.index(kTiles), k.index(1), "acc", tacc, acc);
  std::string g = stepOf("%g0", "%kt"), stage = stageOf(g);
  waitParity(k, fullBarrier(stage), parityOf(g, /*previous=*/false));
  // cp.async wrote the stage through the generic proxy; wgmma reads it through the async proxy.
  asmLine(k, "fence.proxy.async.shared::cta;");
  std::string stageBase = k.add32(pre.smem, k.mul32(stage, k.i32(s.stageBytes)));
  std::string descA = descriptor(k, k.add32(stageBase, k.mul32(k.toI32(half), k.i32(64 * 128))), 16, kAtomBytes);
  std::string descB = descriptor(k, k.add32(stageBase, k.i32(kABytes)), kSliceBytes, kAtomBytes);
  std::string accumulate = k.select(k.op("arith.cmpi eq, %kt, " + k.index(0) + " : index"), k.i32(0), k.i32(1), "i32");
  // A warpgroup whose rows all lie past the tile's end leaves the tensor cores to the other.
  std::string stageResult = k.fresh();
  k.line(stageResult + ":" + std::to_string(s.accumulators) + " = scf.if " + hasRows + " -> (" + accTypes + ") {");
  k.yieldF32(wgmmaStage(k, c, s, descA, descB, acc, accumulate)); // leaves this stage's wgmma in flight
  k.line("} else {");
  k.yieldF32(acc);
  k.line("}");
  // The previous stage's wgmma are done: give it back to the producer.
  // Every lane's reads of the stage (its tile's numbers) come before lane 0's release.
  asmLine(k, "bar.warp.sync -1;");
  std::string release =
      k.op("arith.andi " + isLane0 + ", " + k.op("arith.cmpi ugt, %kt, " + k.index(0) + " : index") + " : i1");
  k.line("scf.if " + release + " {");
  arrive(emptyBarrier(stageOf(k.op("arith.subi " + g + ", " + k.index(1) + " : index"))));
  k.line("}");
  k.yieldF32(KernelEmitter::results(stageResult, s.accumulators));
  k.line("}");
  std::vector<std::string> result = accumulatorAsm(k, s, "wgmma.wait_group.sync.aligned 0;", "", "", "",
                                                   KernelEmitter::results(stepsLoop, s.accumulators));
  asmLine(k, "bar.warp.sync -1;");
  k.line("scf.if " + isLane0 + " {");
  arrive(emptyBarrier(stageOf(stepOf("%g0", k.index(kTiles - 1)))));
  k.line("}");

  // The epilogue, through this warpgroup's rows past the ring, `cols` columns at a time.
  const int64_t cols = c.epilogueColumns(), rowBytes = c.epilogueRowBytes();
  std::string ptr = sharedI32(k.add32(k.i32(epilogueAt), k.mul32(k.toI32(half), k.i32(64 * rowBytes))));
  std::string groupBarrier = k.toI32(warpgroup); // named barriers 1 and 2 (0 is the block's, 3 the producer's)
  auto syncGroup = [&] { asmLine(k, "bar.sync $0, 128;", "r", groupBarrier, "i32"); };
  const int64_t columnTiles = c.glu ? s.n / 16 : s.n / 8, tilesPerPass = cols / 8;
  for (int64_t pass = 0; pass < c.blockN() / cols; ++pass) {
    syncGroup(); // the rows' last reader (the previous pass or tile) is done
    for (int i = 0; i < 2; ++i) {
      std::string p = k.add(t.rowStart, k.add(firstRow, rowL[i]));
      k.line("scf.if " + k.lt(p, t.rowEnd) + " {");
      for (int64_t j = pass * tilesPerPass; j < std::min(columnTiles, (pass + 1) * tilesPerPass); ++j) {
        auto res = [&](int64_t tile, int h) { return result[4 * tile + 2 * i + h]; };
        std::string u0 = c.glu ? res(j + columnTiles, 0) : "", u1 = c.glu ? res(j + columnTiles, 1) : "";
        std::string colL = k.add(k.index(8 * j), k.mul(tq, k.index(2)));
        keepUpPair(k, c, p, k.add(t.n0, colL), res(j, 0), res(j, 1), u0, u1);
        auto [v0, v1] = epiloguePair(k, c, scale[i], res(j, 0), res(j, 1), u0, u1);
        stagePair(k, c, ptr, rowL[i], k.add(k.index(8 * (j - pass * tilesPerPass)), k.mul(tq, k.index(2))), v0, v1,
                  rowBytes);
      }
      k.line("}");
    }
    syncGroup();
    storeGroupRows(k, c, t, gtid, ptr, firstRow, pass * cols, cols, rowBytes);
  }
  k.line("scf.yield " + joined(result) + ", " + k.add("%g0", k.index(kTiles)) + " : " + accTypes + ", index");
  k.line("}");
  k.line("}");
  k.line("}");
  return k.finish(signature(c), "", "attributes {nvvm.maxntid = array<i32: 384, 1, 1>, nvvm.minctasm = 1 : i32}");
}
