//===- GemmWgmma.cpp - the sm_90a grouped GEMM on warpgroup MMA -----------===//
//
// Hopper's wgmma multiplies operands that it reads from shared memory itself,
// through matrix descriptors, so no thread spends issue slots or registers on
// ldmatrix (the mma.sync kernel's limit: its shared-memory feed ran at 78%
// of peak with the tensor pipe at 68%, docs/performance.md).
//
// A block multiplies 128 rows of A by N = 128 or 256 columns of B (GLU:
// half gate, half up) with two warpgroups of 64 rows, each issuing
// m64nNk16 wgmma with f32 accumulators in registers. A stage holds 64 of k:
// - A, K-major: row m's 64 elements are one 128-byte line, its 16-byte chunk
//   c stored at c ^ (m % 8) (the hardware's 128-byte swizzle);
// - B, N-major (the weights' [k][n] layout, wgmma's transposed B): atoms of
//   8 k rows x 64 columns, 1 KiB each, chunk c of row r at c ^ r; the
//   64-column slices are 8 KiB apart.
// All 256 threads fill stages with 16-byte cp.async: A's rows are gathered
// through the dispatch permutation, which sm_90's TMA cannot do. (With
// tmaB, experimental, B comes by TMA instead: see loadB.)
// - N = 128: three stages (96 KiB) let two blocks share an SM, so one
//   block's wgmma runs while the other waits on its copies or stores its
//   epilogue; each stage's wgmma is waited for before the next barrier.
// - N = 256: a third less shared-memory and L2 traffic per multiply-add;
//   four stages of 48 KiB fill the SM alone, so a stage's wgmma stays in
//   flight while the next stage's copies are issued and its wgmma queued.
//
//===----------------------------------------------------------------------===//
#include "GemmWgmmaParts.h"
#include "moe/Support/MLIR.h"

#include <vector>

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;
using namespace moe::gpu_kernels::gemm::wgmma;

namespace moe::gpu_kernels::gemm::wgmma {

Prelude prelude(KernelEmitter &k, const GemmConfig &c) {
  Prelude p;
  p.tid = k.op("gpu.thread_id x");
  p.lane = k.rem(p.tid, k.index(32)), p.warpgroup = k.div(p.tid, k.index(128));
  p.warpInGroup = k.rem(k.div(p.tid, k.index(32)), k.index(4));
  p.smemPtr = k.op("llvm.mlir.addressof @moe_smem : !llvm.ptr<3>");
  p.smem = k.op("llvm.ptrtoint " + p.smemPtr + " : !llvm.ptr<3> to i32");
  p.aAddr = address(k, "%A", c.elt), p.b0Addr = address(k, "%B0", c.elt), p.b1Addr = address(k, "%B1", c.elt);
  return p;
}

std::string constant64(KernelEmitter &k, int64_t v) { return k.op("arith.constant " + std::to_string(v) + " : i64"); }

std::string joined(const std::vector<std::string> &values) {
  std::string s;
  for (const std::string &v : values)
    s += (s.empty() ? "" : ", ") + v;
  return s;
}

/// wgmma's shared-memory matrix descriptor (128-byte swizzle) for the matrix
/// at shared address `shared` (i32, 1 KiB aligned), with leading and stride
/// byte offsets `lbo` and `sbo`.
std::string descriptor(KernelEmitter &k, const std::string &shared, int64_t lbo, int64_t sbo) {
  const int64_t fixed = ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (int64_t(1) << 62);
  std::string start =
      k.op("arith.shrui " + k.op("arith.extui " + shared + " : i32 to i64") + ", " + constant64(k, 4) + " : i64");
  return k.op("arith.ori " + start + ", " + constant64(k, fixed) + " : i64");
}

std::string plus64(KernelEmitter &k, const std::string &a, int64_t v) {
  return v ? k.op("arith.addi " + a + ", " + constant64(k, v) + " : i64") : a;
}

std::string f32Types(int64_t n) {
  std::string types;
  for (int64_t i = 0; i < n; ++i)
    types += i ? ", f32" : "f32";
  return types;
}

/// An asm statement over the accumulators (tied in and out, $0..$n-1, so
/// nothing reads or moves them across it) and `extra` operands after them.
std::vector<std::string> accumulatorAsm(KernelEmitter &k, const Shape &s, const std::string &text,
                                        const std::string &extraConstraints, const std::string &extraOperands,
                                        const std::string &extraTypes, const std::vector<std::string> &acc) {
  std::string constraints, operands = extraOperands, types = extraTypes;
  for (int64_t i = 0; i < s.accumulators; ++i)
    constraints += "=f,";
  constraints += extraConstraints;
  for (int64_t i = 0; i < s.accumulators; ++i) {
    constraints += (constraints.back() == ',' ? "" : ",") + std::to_string(i);
    operands += (operands.empty() ? "" : ", ") + acc[i];
    types += (types.empty() ? "" : ", ") + std::string("f32");
  }
  std::string structType = "!llvm.struct<(" + f32Types(s.accumulators) + ")>";
  std::string r = k.op("llvm.inline_asm has_side_effects asm_dialect = att \"" + text + "\", \"" + constraints + "\" " +
                       operands + " : (" + types + ") -> " + structType);
  std::vector<std::string> out;
  for (int64_t i = 0; i < s.accumulators; ++i)
    out.push_back(k.op("llvm.extractvalue " + r + "[" + std::to_string(i) + "] : " + structType));
  return out;
}

/// One stage's four k16 steps on this warpgroup's accumulators: fence, four
/// wgmma, commit, then wait until at most `inFlight` groups run, in one asm
/// statement.
std::vector<std::string> wgmmaStage(KernelEmitter &k, const GemmConfig &c, const Shape &s, const std::string &descA,
                                    const std::string &descB, const std::vector<std::string> &acc,
                                    const std::string &firstAccumulates) {
  return wgmmaStage(k, StageOperands{c.elt, false, c.kMajorB}, s, descA, descB, acc, firstAccumulates);
}

std::vector<std::string> wgmmaStage(KernelEmitter &k, const StageOperands &o, const Shape &s, const std::string &descA,
                                    const std::string &descB, const std::vector<std::string> &acc,
                                    const std::string &firstAccumulates) {
  std::string d = "{";
  for (int64_t i = 0; i < s.accumulators; ++i)
    d += "$" + std::to_string(i) + (i + 1 < s.accumulators ? "," : "}");
  const int64_t steps = kBK / 16, descs = s.accumulators, pred = descs + 2 * steps;
  std::string text = "{ .reg .pred p; setp.ne.b32 p, $" + std::to_string(pred) + ", 0; wgmma.fence.sync.aligned; ";
  for (int64_t j = 0; j < steps; ++j)
    text += "wgmma.mma_async.sync.aligned.m64n" + std::to_string(s.n) + "k16.f32." + o.elt + "." + o.elt + " " + d +
            ", $" + std::to_string(descs + 2 * j) + ", $" + std::to_string(descs + 2 * j + 1) +
            (firstAccumulates.empty() || j == 0 ? ", p" : ", 1") + ", 1, 1, " + (o.mMajorA ? "1" : "0") + ", " +
            (o.kMajorB ? "0" : "1") + "; ";
  text += "wgmma.commit_group.sync.aligned; ";
  if (!o.issueOnly)
    text += "wgmma.wait_group.sync.aligned " + std::to_string(s.inFlight) + "; ";
  text += "}";
  std::string constraints, operands, types;
  for (int64_t j = 0; j < steps; ++j) {
    constraints += "l,l,";
    // Along k a k-major operand moves 32 bytes within its swizzled lines, an
    // m- or n-major one two 8-row atoms.
    const int64_t aStep = o.mMajorA ? 2 * kAtomBytes : 32, bStep = o.kMajorB ? 32 : 2 * kAtomBytes;
    operands += plus64(k, descA, j * aStep / 16) + ", " + plus64(k, descB, j * bStep / 16) + ", ";
    types += "i64, i64, ";
  }
  return accumulatorAsm(k, s, text, constraints + "r",
                        operands + (firstAccumulates.empty() ? k.i32(1) : firstAccumulates), types + "i32", acc);
}

// The staged epilogue (--gpu-gemm-epilogue=staged) writes the block's
// outputs to shared memory (rows of GemmConfig::stagedRowBytes) and stores
// them from there in 16-byte chunks of consecutive columns, so a warp's
// stores cover whole 512-byte row segments instead of 16-byte pieces of 8 rows.

/// Output pair (v0, v1) of tile row `rowL`, tile column `colL` into shared memory.
void stagePair(KernelEmitter &k, const GemmConfig &c, const std::string &smemPtr, const std::string &rowL,
               const std::string &colL, const std::string &v0, const std::string &v1, int64_t rowBytes) {
  const int64_t outBytes = eltBytes(c.out);
  std::string at =
      k.toI32(k.add(k.mul(rowL, k.index(rowBytes ? rowBytes : c.stagedRowBytes())), k.mul(colL, k.index(outBytes))));
  for (int h = 0; h < 2; ++h) {
    std::string v = h ? v1 : v0;
    if (c.out != "f32")
      v = k.op("arith.truncf " + v + " : f32 to " + c.out);
    std::string off = h ? k.add32(at, k.i32(outBytes)) : at;
    std::string ptr = k.op("llvm.getelementptr " + smemPtr + "[" + off + "] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8");
    k.line("llvm.store " + v + ", " + ptr + " : " + c.out + ", !llvm.ptr<3>");
  }
}

void storeStagedRows(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                     const std::string &smemPtr, int64_t firstRow, int64_t rows) {
  const int64_t outBytes = eltBytes(c.out), rowBytes = c.stagedRowBytes();
  const int64_t chunksPerRow = c.blockN() * outBytes / 16, perChunk = 16 / outBytes;
  std::string cBase = k.op("llvm.inttoptr " + address(k, "%C", c.out) + " : i64 to !llvm.ptr");
  for (int64_t j = 0; j < rows * chunksPerRow / 256; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string row = k.div(q, k.index(chunksPerRow)), chunk = k.rem(q, k.index(chunksPerRow));
    std::string tileRow = firstRow ? k.add(row, k.index(firstRow)) : row;
    std::string p = k.add(t.rowStart, tileRow), col = k.add(t.n0, k.mul(chunk, k.index(perChunk)));
    // n is a multiple of 8 (tensorCoresFit): a chunk lies wholly inside C or wholly outside.
    std::string inside = k.op("arith.andi " + k.lt(p, t.rowEnd) + ", " + k.lt(col, k.index(c.n)) + " : i1");
    k.line("scf.if " + inside + " {");
    std::string from = k.toI32(k.add(k.mul(row, k.index(rowBytes)), k.mul(chunk, k.index(16))));
    std::string src =
        k.op("llvm.getelementptr " + smemPtr + "[" + from + "] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8");
    std::string v = k.op("llvm.load " + src + " {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xi32>");
    std::string to = i64(k, k.mul(k.add(k.mul(p, k.index(c.n)), col), k.index(outBytes)));
    std::string dst = k.op("llvm.getelementptr " + cBase + "[" + to + "] : (!llvm.ptr, i64) -> !llvm.ptr, i8");
    k.line("llvm.store " + v + ", " + dst + " {alignment = 16 : i64} : vector<4xi32>, !llvm.ptr");
    k.line("}");
  }
}

void storeStagedTile(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                     const std::string &smemPtr) {
  k.line("gpu.barrier");
  storeStagedRows(k, c, t, tid, smemPtr, 0, 128);
}

// The chunk at chunk ^ (row % 8): A's layout and a k-major B's.
std::string lineOffset(KernelEmitter &k, const std::string &row, const std::string &chunk) {
  std::string swz = k.op("arith.xori " + chunk + ", " + k.rem(row, k.index(8)) + " : index");
  return k.add(k.mul(row, k.index(128)), k.mul(swz, k.index(16)));
}

std::string majorAtomOffset(KernelEmitter &k, const std::string &r, const std::string &chunk) {
  std::string slice = k.div(chunk, k.index(8)), inSlice = k.rem(chunk, k.index(8));
  std::string r8 = k.rem(r, k.index(8));
  std::string swz = k.op("arith.xori " + inSlice + ", " + r8 + " : index");
  return k.add(k.add(k.mul(slice, k.index(kSliceBytes)), k.mul(k.div(r, k.index(8)), k.index(kAtomBytes))),
               k.add(k.mul(r8, k.index(128)), k.mul(swz, k.index(16))));
}

/// A k-major B ([experts][n][k]): the block's s.n rows of B, each a 128-byte
/// line of the stage's 64 k, chunk c of row r at c ^ (r % 8) as in A.
StageCopies bKMajorCopies(KernelEmitter &k, const GemmConfig &c, const Shape &s, const Tile &t, const std::string &tid,
                          const std::string &b0Addr, const std::string &b1Addr) {
  StageCopies out;
  const int64_t eb = eltBytes(c.elt);
  const int64_t ld0 = c.bSplitK ? c.bSplitK : c.k, ld1 = c.k - c.bSplitK;
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  for (int64_t j = 0; j < s.n * 8 / 256; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string r = k.div(q, k.index(8)), chunk = k.rem(q, k.index(8));
    std::string col = k.add(t.n0, r), valid = k.lt(col, k.index(c.n));
    std::string row = k.add(k.mul(t.e, k.index(c.n)), k.select(valid, col, k.index(0), "index"));
    std::string inRow = k.mul(chunk, k.index(8));
    auto at = [&](const std::string &base, int64_t ld) {
      std::string elem = k.add(k.mul(row, k.index(ld)), inRow);
      return k.op("arith.addi " + base + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64");
    };
    out.global.push_back(at(b0Addr, ld0));
    if (c.bSplitK)
      out.globalSplit.push_back(at(b1Addr, ld1));
    out.shared.push_back(k.toI32(k.add(k.index(kABytes), lineOffset(k, r, chunk))));
    out.size.push_back(k.select(valid, sixteen, zero32, "i32"));
  }
  return out;
}

StageCopies bTileCopies(KernelEmitter &k, const GemmConfig &c, const Shape &s, const Tile &t, const std::string &tid,
                        const std::string &b0Addr, const std::string &b1Addr) {
  if (c.kMajorB)
    return bKMajorCopies(k, c, s, t, tid, b0Addr, b1Addr);
  StageCopies out;
  const int64_t eb = eltBytes(c.elt);
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  for (int64_t j = 0; j < (c.tmaB ? 0 : s.bCopies); ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string kr = k.div(q, k.index(s.bChunks)), chunk = k.rem(q, k.index(s.bChunks));
    // GLU: the first half of B's columns are the gate's, the second the up projection's.
    std::string col, base = b0Addr;
    if (c.glu) {
      std::string half = k.index(s.bChunks / 2);
      col = k.add(t.n0, k.mul(k.rem(chunk, half), k.index(8)));
      base = k.select(k.op("arith.cmpi uge, " + chunk + ", " + half + " : index"), b1Addr, b0Addr, "i64");
    } else {
      col = k.add(t.n0, k.mul(chunk, k.index(8)));
    }
    std::string valid = k.lt(col, k.index(c.n));
    std::string safeCol = k.select(valid, col, k.index(0), "index");
    std::string elem = k.add(k.mul(k.add(k.mul(t.e, k.index(c.k)), kr), k.index(c.n)), safeCol);
    out.global.push_back(k.op("arith.addi " + base + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64"));
    out.shared.push_back(k.toI32(k.add(k.index(kABytes), majorAtomOffset(k, kr, chunk))));
    out.size.push_back(k.select(valid, sixteen, zero32, "i32"));
  }
  return out;
}

void waitParity(KernelEmitter &k, const std::string &bar, const std::string &parity) {
  // The label's ${:uid} is a module-wide count; moe-gpu-module-to-binary
  // renumbers `waitB<N>` when it merges kernels compiled apart.
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"{ .reg .pred ready; waitB${:uid}: "
         "mbarrier.try_wait.parity.shared::cta.b64 ready, [$0], $1; @!ready bra waitB${:uid}; }\", \"r,r\" " +
         bar + ", " + parity + " : (i32, i32) -> ()");
}

StageCopies aSwizzledCopies(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                            const std::string &aAddr) {
  return aTileCopies(k, c, t, tid, aAddr, 8, [&](const std::string &row, const std::string &chunk) {
    return k.toI32(lineOffset(k, row, chunk));
  });
}

} // namespace moe::gpu_kernels::gemm::wgmma

std::string moe::gpu_kernels::wgmmaGemmKernel(const GemmConfig &c) {
  KernelEmitter k;
  const Shape s(c);
  const int64_t eb = eltBytes(c.elt), kTiles = c.k / kBK;
  Tile t = openTile(k, c);
  const Prelude pre = prelude(k, c);
  const std::string &tid = pre.tid, &lane = pre.lane, &warpgroup = pre.warpgroup, &warpInGroup = pre.warpInGroup;
  const std::string &smemPtr = pre.smemPtr, &smem = pre.smem, &aAddr = pre.aAddr, &b0Addr = pre.b0Addr,
                    &b1Addr = pre.b1Addr;
  std::string zero32 = k.i32(0), sixteen = k.i32(16);

  // This thread's 16-byte copies of A and B per stage; A's 64-element rows
  // are 128-byte lines in the hardware's swizzle.
  StageCopies aCopies = aSwizzledCopies(k, c, t, tid, aAddr);
  std::vector<std::string> &gA = aCopies.global, &sA = aCopies.shared, &sizeA = aCopies.size;
  StageCopies bCopies = bTileCopies(k, c, s, t, tid, b0Addr, b1Addr);
  std::vector<std::string> &gB = bCopies.global, &sB = bCopies.shared, &sizeB = bCopies.size,
                           &gB1 = bCopies.globalSplit;

  auto stageBaseOf = [&](const std::string &kt) {
    std::string stage = k.toI32(k.rem(kt, k.index(s.stages)));
    return k.add32(smem, k.mul32(stage, k.i32(s.stageBytes)));
  };
  // TMA (--gpu-gemm-tma): thread 0 loads B, a 64 x 64 slice per instruction,
  // each stage's arrival counted by its mbarrier (after the stages in shared
  // memory), which the threads wait on before their wgmma.
  std::string isLeader = c.tmaB ? k.op("arith.cmpi eq, " + tid + ", " + k.index(0) + " : index") : "";
  auto barrierOf = [&](const std::string &kt) {
    std::string stage = k.toI32(k.rem(kt, k.index(s.stages)));
    return k.add32(smem, k.add32(k.i32(s.stages * s.stageBytes), k.mul32(stage, k.i32(8))));
  };
  if (c.tmaB) {
    k.line("scf.if " + isLeader + " {");
    for (int64_t i = 0; i < s.stages; ++i)
      k.line("llvm.inline_asm has_side_effects asm_dialect = att \"mbarrier.init.shared::cta.b64 [$0], 1;\", \"r\" " +
             barrierOf(k.index(i)) + " : (i32) -> ()");
    k.line(
        "llvm.inline_asm has_side_effects asm_dialect = att \"fence.mbarrier_init.release.cluster;\", \"\" : () -> ()");
    // The tensor maps live in global memory (made once by the runtime): start
    // fetching them into the TMA unit's descriptor cache before the first load.
    for (const char *map : {"%tmB0", "%tmB1"})
      k.line(std::string("llvm.inline_asm has_side_effects asm_dialect = att \"prefetch.tensormap [$0];\", \"l\" ") +
             map + " : (i64) -> ()");
    k.line("}");
    k.line("gpu.barrier");
  }
  auto loadB = [&](const std::string &kt, const std::string &stageBase) {
    std::string expert32 = k.toI32(t.e);
    const int64_t slices = s.n / 64;
    k.line("scf.if " + isLeader + " {");
    std::string bar = barrierOf(kt);
    k.line("llvm.inline_asm has_side_effects asm_dialect = att \"{ .reg .b64 state; "
           "mbarrier.arrive.expect_tx.shared::cta.b64 state, [$0], $1; }\", \"r,r\" " +
           bar + ", " + k.i32(slices * kSliceBytes) + " : (i32, i32) -> ()");
    std::string row = k.toI32(k.mul(kt, k.index(kBK)));
    for (int64_t sl = 0; sl < slices; ++sl) {
      // GLU: the first half of the slices are the gate's, the second the up projection's.
      bool second = c.glu && sl >= slices / 2;
      int64_t colSlice = c.glu ? sl % (slices / 2) : sl;
      std::string col = k.toI32(k.add(t.n0, k.index(colSlice * 64)));
      std::string dst = k.add32(stageBase, k.i32(kABytes + sl * kSliceBytes));
      k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.bulk.tensor.3d.shared::cluster.global."
             "mbarrier::complete_tx::bytes [$0], [$1, {$2, $3, $4}], [$5];\", \"r,l,r,r,r,r\" " +
             dst + ", " + std::string(second ? "%tmB1" : "%tmB0") + ", " + col + ", " + row + ", " + expert32 + ", " +
             bar + " : (i32, i64, i32, i32, i32, i32) -> ()");
    }
    k.line("}");
  };
  auto loadTile = [&](const std::string &kt) {
    std::string stageBase = stageBaseOf(kt);
    std::string kt64 = i64(k, kt);
    std::string stepA = k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * eb) + " : i64");
    // B's rows advance by 64 k: along a k-major row (stepA's bytes), else 64 rows.
    std::string stepB = c.tmaB      ? ""
                        : c.kMajorB ? stepA
                                    : k.op("arith.muli " + kt64 + ", " + constant64(k, kBK * c.n * eb) + " : i64");
    // A split B: stages past bSplitK read B1's rows from their start.
    std::string inB0, stepB1;
    if (!gB1.empty()) {
      std::string splitTiles = k.index(c.bSplitK / kBK);
      inB0 = k.lt(kt, splitTiles);
      stepB1 = k.op("arith.muli " + i64(k, k.op("arith.subi " + kt + ", " + splitTiles + " : index")) + ", " +
                    constant64(k, kBK * eb) + " : i64");
    }
    for (size_t j = 0; j < gA.size(); ++j)
      cpAsync(k, k.add32(stageBase, sA[j]), k.op("arith.addi " + gA[j] + ", " + stepA + " : i64"), sizeA[j]);
    for (size_t j = 0; j < gB.size(); ++j) {
      std::string from = k.op("arith.addi " + gB[j] + ", " + stepB + " : i64");
      if (!gB1.empty())
        from = k.select(inB0, from, k.op("arith.addi " + gB1[j] + ", " + stepB1 + " : i64"), "i64");
      cpAsync(k, k.add32(stageBase, sB[j]), from, sizeB[j]);
    }
    if (c.tmaB)
      loadB(kt, stageBase);
  };

  // k chunks (kChunks): chunk z is steps [z * steps / chunks, (z + 1) *
  // steps / chunks); a split block (splitK) does chunk gpu.block_id y only.
  auto chunkStart = [&](const std::string &z) { return k.div(k.mul(z, k.index(kTiles)), k.index(c.kChunks)); };
  std::string kBegin = k.index(0), kEnd = k.index(kTiles), chunkOfBlock;
  if (c.splitK) {
    chunkOfBlock = k.op("gpu.block_id y");
    kBegin = chunkStart(chunkOfBlock);
    kEnd = chunkStart(k.add(chunkOfBlock, k.index(1)));
  }
  for (int64_t i = 0; i < s.lookahead; ++i) {
    if (c.splitK) {
      std::string kt = k.add(kBegin, k.index(i));
      k.line("scf.if " + k.lt(kt, kEnd) + " {");
      loadTile(kt);
      k.line("}");
    } else if (i < kTiles) {
      loadTile(k.index(i));
    }
    cpAsyncCommit(k);
  }

  std::string warpgroupHasRows = k.lt(k.add(t.rowStart, k.mul(warpgroup, k.index(64))), t.rowEnd);
  const std::vector<std::string> zeros(s.accumulators, k.f32(0.0));
  // Steps [lo, hi) summed from zero; the copies run `lookahead` steps ahead
  // up to kEnd, across chunk boundaries.
  auto sumSteps = [&](const std::string &lo, const std::string &hi) {
    std::vector<std::string> acc;
    std::string loop = k.openF32Loop("kt", lo, hi, k.index(1), "acc", zeros, acc);
    cpAsyncWait(k, s.lookahead - 1);
    // cp.async writes shared memory through the generic proxy, wgmma reads it
    // through the async proxy: each thread orders its own copies, the barrier
    // everyone's. Past the barrier every warpgroup has also waited for all but
    // its last `inFlight` stages' wgmma, so the stage `lookahead` ahead is free.
    k.line("llvm.inline_asm has_side_effects asm_dialect = att \"fence.proxy.async.shared::cta;\", \"\" : () -> ()");
    k.line("gpu.barrier");
    std::string next = k.add("%kt", k.index(s.lookahead));
    k.line("scf.if " + k.lt(next, kEnd) + " {");
    loadTile(next);
    k.line("}");
    cpAsyncCommit(k);
    std::string stageBase = stageBaseOf("%kt");
    std::string aBase = k.add32(stageBase, k.mul32(k.toI32(warpgroup), k.i32(64 * 128)));
    std::string descA = descriptor(k, aBase, 16, kAtomBytes);
    // B N-major: 64-column slices kSliceBytes apart; k-major: A's form over its s.n rows.
    std::string descB = descriptor(k, k.add32(stageBase, k.i32(kABytes)), c.kMajorB ? 16 : kSliceBytes, kAtomBytes);
    // A warpgroup whose 64 rows all lie past the tile's end (an expert's last,
    // partial tile) leaves the tensor cores to the SM's other warpgroups.
    if (c.tmaB) {
      // The stage's k-th use completes the barrier's phase k: wait for parity k % 2.
      waitParity(k, barrierOf("%kt"), k.toI32(k.rem(k.div("%kt", k.index(s.stages)), k.index(2))));
    }
    std::string stageResult = k.fresh();
    k.line(stageResult + ":" + std::to_string(s.accumulators) + " = scf.if " + warpgroupHasRows + " -> (" +
           f32Types(s.accumulators) + ") {");
    k.yieldF32(wgmmaStage(k, c, s, descA, descB, acc));
    k.line("} else {");
    k.yieldF32(acc);
    k.line("}");
    k.yieldF32(KernelEmitter::results(stageResult, s.accumulators));
    k.line("}");
    std::vector<std::string> sum = KernelEmitter::results(loop, s.accumulators);
    if (s.inFlight)
      sum = accumulatorAsm(k, s, "wgmma.wait_group.sync.aligned 0;", "", "", "", sum);
    return sum;
  };
  std::vector<std::string> result;
  if (c.kChunks && !c.splitK) {
    // The chunk sums added in chunk order, as splitKSumKernel adds them.
    std::vector<std::string> total;
    std::string chunks = k.openF32Loop("chunk", k.index(0), k.index(c.kChunks), k.index(1), "total", zeros, total);
    std::vector<std::string> chunk = sumSteps(chunkStart("%chunk"), chunkStart(k.add("%chunk", k.index(1))));
    std::vector<std::string> added;
    for (int64_t i = 0; i < s.accumulators; ++i)
      added.push_back(k.f32op("addf", total[i], chunk[i]));
    k.yieldF32(added);
    k.line("}");
    result = KernelEmitter::results(chunks, s.accumulators);
  } else {
    result = sumSteps(kBegin, kEnd);
  }
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_all;\", \"\" : () -> ()");

  // Epilogue: accumulator 4j + 2i + h of a thread is row 16 * warp + lane / 4
  // + 8i of its warpgroup's 64, column 8j + 2 (lane % 4) + h. A split's
  // partial sums go to its own rows of C, [split][rows][n].
  if (c.splitK) {
    std::string shift = k.mul(chunkOfBlock, "%rows");
    t.rowStart = k.add(t.rowStart, shift);
    t.rowEnd = k.add(t.rowEnd, shift);
  }
  std::string g = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  const int64_t columnTiles = c.glu ? s.n / 16 : s.n / 8;
  if (c.stagedEpilogue)
    k.line("gpu.barrier"); // every warpgroup's wgmma and every copy are done: the stages are free
  for (int i = 0; i < 2; ++i) {
    std::string rowL =
        k.add(k.add(k.mul(warpgroup, k.index(64)), k.mul(warpInGroup, k.index(16))), k.add(g, k.index(8 * i)));
    std::string p = k.add(t.rowStart, rowL);
    k.line("scf.if " + k.lt(p, t.rowEnd) + " {");
    std::string scale = rowScale(k, c, p);
    for (int64_t j = 0; j < columnTiles; ++j) {
      auto res = [&](int64_t tile, int h) { return result[4 * tile + 2 * i + h]; };
      std::string u0 = c.glu ? res(j + columnTiles, 0) : "", u1 = c.glu ? res(j + columnTiles, 1) : "";
      if (c.stagedEpilogue) {
        keepUpPair(k, c, p, k.add(t.n0, k.add(k.index(8 * j), k.mul(tq, k.index(2)))), res(j, 0), res(j, 1), u0, u1);
        auto [v0, v1] = epiloguePair(k, c, scale, res(j, 0), res(j, 1), u0, u1);
        stagePair(k, c, smemPtr, rowL, k.add(k.index(8 * j), k.mul(tq, k.index(2))), v0, v1);
        continue;
      }
      std::string col = k.add(t.n0, k.add(k.index(8 * j), k.mul(tq, k.index(2))));
      k.line("scf.if " + k.lt(col, k.index(c.n)) + " {");
      storePair(k, c, p, col, scale, res(j, 0), res(j, 1), u0, u1);
      k.line("}");
    }
    k.line("}");
  }
  if (c.stagedEpilogue)
    storeStagedTile(k, c, t, tid, smemPtr);
  k.line("}");
  // N = 128: two blocks an SM, so at most 128 registers a thread; N = 256
  // or k chunks (the chunk sums beside the accumulators): one.
  return k.finish(signature(c), "",
                  "attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = " +
                      std::to_string(s.n == 256 || c.kChunks ? 1 : 2) + " : i32}");
}
