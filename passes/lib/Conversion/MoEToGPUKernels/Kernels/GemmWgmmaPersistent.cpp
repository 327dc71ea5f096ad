//===- GemmWgmmaPersistent.cpp - the sm_90a GEMM, a block an SM -----------===//
//
// The wgmma GEMM with 256-column blocks runs one block an SM, so every tile
// pays its start (the schedule, the row gather, two stages of copies before
// the first wgmma) and its end (the last wgmma drained, the epilogue) with
// the tensor cores idle: a fixed cost of several k steps a tile, which
// short-k products feel most (docs/performance.md, "Measured choices").
//
// Here (--gpu-gemm-persistent) the host launches one block an SM and each
// block walks the tiles b, b + G, b + 2G, ... (G blocks) as one stream of k
// steps: the copies run `lookahead` steps ahead across tile boundaries, so the
// next tile's first stages load while this one's last are multiplied and its
// epilogue is stored. The epilogue goes through its own shared memory past the
// stages, 64 rows (one warpgroup's) at a time, so it never touches a stage in
// flight. (One loop over all the steps, with the tile's end in a branch of
// it, made ptxas serialise the wgmma: the accumulators were read in a
// divergent path. A loop over tiles around a loop over k steps does not.)
//
//===----------------------------------------------------------------------===//
#include "GemmWgmmaParts.h"

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;
using namespace moe::gpu_kernels::gemm::wgmma;

namespace {

/// `name:n = scf.if cond -> (types) {` ... the caller yields and closes.
std::string openIf(KernelEmitter &k, const std::string &cond, const std::string &types, size_t n) {
  std::string r = k.fresh();
  k.line(r + ":" + std::to_string(n) + " = scf.if " + cond + " -> (" + types + ") {");
  return r;
}

/// `names[0] = inits[0], names[1] = inits[1], ...`: loop-carried arguments.
std::string iterArgs(const std::vector<std::string> &names, const std::vector<std::string> &inits) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i ? ", " : "") + names[i] + " = " + inits[i];
  return s;
}

/// The copies of a load tile, carried through the loop: A's and B's global
/// addresses of the first stage and source sizes.
struct LoadState {
  std::vector<std::string> gA, sizeA, gB, sizeB;
  std::vector<std::string> values() const {
    std::vector<std::string> v = gA;
    v.insert(v.end(), sizeA.begin(), sizeA.end());
    v.insert(v.end(), gB.begin(), gB.end());
    v.insert(v.end(), sizeB.begin(), sizeB.end());
    return v;
  }
  std::string types() const {
    std::string t;
    for (size_t i = 0; i < gA.size(); ++i)
      t += "i64, ";
    for (size_t i = 0; i < sizeA.size(); ++i)
      t += "i32, ";
    for (size_t i = 0; i < gB.size(); ++i)
      t += "i64, ";
    for (size_t i = 0; i < sizeB.size(); ++i)
      t += "i32, ";
    return t.substr(0, t.size() - 2);
  }
  /// The same shape of state, value i named `prefix` + i (`%ld_` gives loop
  /// arguments %ld_0, ...; `%v5#` the results %v5#0, ...).
  LoadState named(const std::string &prefix) const {
    LoadState r = *this;
    size_t i = 0;
    for (auto *v : {&r.gA, &r.sizeA, &r.gB, &r.sizeB})
      for (std::string &name : *v)
        name = prefix + std::to_string(i++);
    return r;
  }
  size_t size() const { return gA.size() + sizeA.size() + gB.size() + sizeB.size(); }
};

} // namespace

std::string moe::gpu_kernels::persistentWgmmaGemmKernel(const GemmConfig &c) {
  KernelEmitter k;
  const Shape s(c);
  const int64_t eb = eltBytes(c.elt), kTiles = c.k / kBK, nBlocks = c.columnBlocks();
  const Prelude pre = prelude(k, c);
  const std::string &tid = pre.tid, &lane = pre.lane, &warpgroup = pre.warpgroup, &warpInGroup = pre.warpInGroup;
  const std::string &smemPtr = pre.smemPtr, &smem = pre.smem, &aAddr = pre.aAddr, &b0Addr = pre.b0Addr,
                    &b1Addr = pre.b1Addr;

  // This block's tiles: numbers b, b + G, ... below tiles x column blocks.
  std::string tiles = c.grouped ? k.toIndex(k.load("%numTiles", k.index(0), "i32"))
                                : k.div(k.add("%rows", k.index(c.blockM() - 1)), k.index(c.blockM()));
  std::string block = k.op("gpu.block_id x"), blocks = k.op("gpu.grid_dim x");
  std::string total = k.mul(tiles, k.index(nBlocks));
  k.line("scf.if " + k.lt(block, total) + " {");
  std::string mine = k.div(k.add(k.op("arith.subi " + total + ", " + block + " : index"),
                                 k.op("arith.subi " + blocks + ", " + k.index(1) + " : index")),
                           blocks);
  std::string steps = k.mul(mine, k.index(kTiles));
  auto tileOf = [&](const std::string &i) {
    auto [bx, by] = groupedTile(k, nBlocks, k.add(block, k.mul(i, blocks)), tiles);
    return tileAt(k, c, bx, by);
  };
  auto loadStateOf = [&](const Tile &t) {
    StageCopies a = aSwizzledCopies(k, c, t, tid, aAddr), b = bTileCopies(k, c, s, t, tid, b0Addr, b1Addr);
    return LoadState{a.global, a.size, b.global, b.size};
  };
  // Shared offsets of the copies are the same for every tile.
  Tile first = tileOf(k.index(0));
  StageCopies aPlaces = aSwizzledCopies(k, c, first, tid, aAddr);
  StageCopies bPlaces = bTileCopies(k, c, s, first, tid, b0Addr, b1Addr);
  LoadState firstState{aPlaces.global, aPlaces.size, bPlaces.global, bPlaces.size};

  auto stageBaseOf = [&](const std::string &g) {
    return k.add32(smem, k.mul32(k.toI32(k.rem(g, k.index(s.stages))), k.i32(s.stageBytes)));
  };
  // Step g's copies (k step kt of the state's tile) into stage g % stages.
  auto loadStep = [&](const LoadState &st, const std::string &kt, const std::string &g) {
    std::string stageBase = stageBaseOf(g);
    std::string kt64 = i64(k, kt);
    std::string stepA = k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * eb) + " : i64");
    std::string stepB = k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * c.n * eb) + " : i64");
    for (size_t j = 0; j < st.gA.size(); ++j)
      cpAsync(k, k.add32(stageBase, aPlaces.shared[j]), k.op("arith.addi " + st.gA[j] + ", " + stepA + " : i64"),
              st.sizeA[j]);
    for (size_t j = 0; j < st.gB.size(); ++j)
      cpAsync(k, k.add32(stageBase, bPlaces.shared[j]), k.op("arith.addi " + st.gB[j] + ", " + stepB + " : i64"),
              st.sizeB[j]);
  };
  // Every block has at least one tile of kTiles > lookahead steps (checked by the caller).
  for (int64_t i = 0; i < s.lookahead; ++i) {
    loadStep(firstState, k.index(i), k.index(i));
    cpAsyncCommit(k);
  }

  // Two loops: over this block's tiles, and over a tile's k steps (step g =
  // tile * kTiles + kt overall). The inner one carries the accumulators and
  // the copies of the tile the loads have reached, which runs `lookahead`
  // steps ahead of the one being multiplied.
  LoadState state = firstState.named("%ld_");
  std::string stateInits = iterArgs(state.values(), firstState.values()), stateTypes = firstState.types();
  // The accumulators are carried from tile to tile too: a tile's first
  // stage ignores them (wgmma's scale-d), so nothing clears or copies them.
  // (Still behind the one-tile kernel, with dispatch stalls whose cause is
  // not found: docs/performance.md, "Measured choices".)
  std::string outerCarried, outerTypes;
  for (int64_t i = 0; i < s.accumulators; ++i) {
    outerCarried += "%tacc" + std::to_string(i) + " = " + k.f32(0.0) + ", ";
    outerTypes += "f32, ";
  }
  std::string tilesLoop = k.fresh();
  k.line(tilesLoop + ":" + std::to_string(s.accumulators + state.size()) + " = scf.for %i = " + k.index(0) + " to " +
         mine + " step " + k.index(1) + " iter_args(" + outerCarried + stateInits + ") -> (" + outerTypes + stateTypes +
         ") {");
  Tile t = tileOf("%i");
  std::string hasRows = k.lt(k.add(t.rowStart, k.mul(warpgroup, k.index(64))), t.rowEnd);
  std::vector<std::string> acc;
  std::string carried, types;
  for (int64_t i = 0; i < s.accumulators; ++i) {
    acc.push_back("%acc" + std::to_string(i));
    carried += (i ? ", " : "") + acc.back() + " = %tacc" + std::to_string(i);
    types += i ? ", f32" : "f32";
  }
  LoadState inner = state.named("%st_");
  carried += ", " + iterArgs(inner.values(), state.values());
  types += ", " + stateTypes;
  std::string stepsLoop = k.fresh();
  k.line(stepsLoop + ":" + std::to_string(s.accumulators + inner.size()) + " = scf.for %kt = " + k.index(0) + " to " +
         k.index(kTiles) + " step " + k.index(1) + " iter_args(" + carried + ") -> (" + types + ") {");
  std::string g = k.add(k.mul("%i", k.index(kTiles)), "%kt");
  cpAsyncWait(k, s.lookahead - 1);
  // As in the one-tile kernel: each thread's copies, then everyone's, are
  // visible to wgmma; every warpgroup has waited for all but its last stage.
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"fence.proxy.async.shared::cta;\", \"\" : () -> ()");
  k.line("gpu.barrier");
  std::string next = k.add(g, k.index(s.lookahead));
  std::string nextKt = k.rem(next, k.index(kTiles));
  std::string nextInRange = k.lt(next, steps);
  std::string newTile = k.op("arith.andi " + nextInRange + ", " +
                             k.op("arith.cmpi eq, " + nextKt + ", " + k.index(0) + " : index") + " : i1");
  // The loads enter a new tile: its copies' addresses.
  std::string ns = openIf(k, newTile, stateTypes, inner.size());
  k.line("scf.yield " + joined(loadStateOf(tileOf(k.div(next, k.index(kTiles)))).values()) + " : " + stateTypes);
  k.line("} else {");
  k.line("scf.yield " + joined(inner.values()) + " : " + stateTypes);
  k.line("}");
  LoadState nextState = inner.named(ns + "#");
  k.line("scf.if " + nextInRange + " {");
  loadStep(nextState, nextKt, next);
  k.line("}");
  cpAsyncCommit(k);
  std::string stageBase = stageBaseOf(g);
  std::string aBase = k.add32(stageBase, k.mul32(k.toI32(warpgroup), k.i32(64 * 128)));
  std::string descA = descriptor(k, aBase, 16, kAtomBytes);
  std::string descB = descriptor(k, k.add32(stageBase, k.i32(kABytes)), kSliceBytes, kAtomBytes);
  // A warpgroup whose rows all lie past the tile's end leaves the tensor cores to the other.
  std::string stage = openIf(k, hasRows, f32Types(s.accumulators), s.accumulators);
  std::string accumulate = k.select(k.op("arith.cmpi eq, %kt, " + k.index(0) + " : index"), k.i32(0), k.i32(1), "i32");
  k.yieldF32(wgmmaStage(k, c, s, descA, descB, acc, accumulate));
  k.line("} else {");
  k.yieldF32(acc);
  k.line("}");
  std::vector<std::string> yielded = KernelEmitter::results(stage, s.accumulators);
  std::vector<std::string> nextValues = nextState.values();
  yielded.insert(yielded.end(), nextValues.begin(), nextValues.end());
  k.line("scf.yield " + joined(yielded) + " : " + types);
  k.line("}");
  std::vector<std::string> result = accumulatorAsm(k, s, "wgmma.wait_group.sync.aligned 0;", "", "", "",
                                                   KernelEmitter::results(stepsLoop, s.accumulators));

  // The epilogue, 64 rows (one warpgroup's) at a time through its own shared
  // memory past the stages, while the next tile's first stages load.
  std::string epiloguePtr = k.op("llvm.getelementptr " + smemPtr + "[" + k.i32(s.stages * s.stageBytes) +
                                 "] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8");
  std::string g8 = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  const int64_t columnTiles = c.glu ? s.n / 16 : s.n / 8;
  for (int64_t half = 0; half < 2; ++half) {
    k.line("scf.if " + k.op("arith.cmpi eq, " + warpgroup + ", " + k.index(half) + " : index") + " {");
    for (int i = 0; i < 2; ++i) {
      std::string rowL = k.add(k.mul(warpInGroup, k.index(16)), k.add(g8, k.index(8 * i)));
      std::string p = k.add(t.rowStart, k.add(rowL, k.index(64 * half)));
      k.line("scf.if " + k.lt(p, t.rowEnd) + " {");
      std::string scale = rowScale(k, c, p);
      for (int64_t j = 0; j < columnTiles; ++j) {
        auto res = [&](int64_t tile, int h) { return result[4 * tile + 2 * i + h]; };
        std::string u0 = c.glu ? res(j + columnTiles, 0) : "", u1 = c.glu ? res(j + columnTiles, 1) : "";
        keepUpPair(k, c, p, k.add(t.n0, k.add(k.index(8 * j), k.mul(tq, k.index(2)))), res(j, 0), res(j, 1), u0, u1);
        auto [v0, v1] = epiloguePair(k, c, scale, res(j, 0), res(j, 1), u0, u1);
        stagePair(k, c, epiloguePtr, rowL, k.add(k.index(8 * j), k.mul(tq, k.index(2))), v0, v1);
      }
      k.line("}");
    }
    k.line("}");
    k.line("gpu.barrier");
    storeStagedRows(k, c, t, tid, epiloguePtr, 64 * half, 64);
    k.line("gpu.barrier");
  }
  std::vector<std::string> carriedOut = result;
  for (size_t i = 0; i < inner.size(); ++i)
    carriedOut.push_back(stepsLoop + "#" + std::to_string(s.accumulators + i));
  k.line("scf.yield " + joined(carriedOut) + " : " + outerTypes + stateTypes);
  k.line("}");
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_all;\", \"\" : () -> ()");
  k.line("}");
  return k.finish(signature(c), "", "attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = 1 : i32}");
}
