//===- Gemm.cpp - grouped GEMM kernels with fused gather/epilogues --------===//
//
// One kernel shape serves the router and shared-expert products (dense
// tiles) and the experts (tiles from the device-built schedule):
//
// - tensor cores: 128 x 128 x 32 block tiles, 8 warps of 64 x 32, mma.sync
//   m16n8k16 with f32 accumulators; A and B stream through a 4-stage ring of
//   shared memory with cp.async (16-byte copies, zero-filled past the last
//   row/column), XOR-swizzled so ldmatrix reads are free of bank conflicts.
//   A GLU block computes gate and up for the same 64 columns side by side,
//   so the activation product happens in registers.
// - FMA: 64 x 64 x 16 tiles, 4 x 4 outputs per thread, for f32 layers and
//   sizes the tensor-core kernel does not take.
//
//===----------------------------------------------------------------------===//
#include "GemmCommon.h"

#include <array>
#include <vector>

using namespace moe::gpu_kernels;
using namespace moe::gpu_kernels::gemm;

namespace {

// --- tensor cores ----------------------------------------------------------

std::string tensorCoreKernel(const GemmConfig &c) {
  KernelEmitter k;
  const int64_t eb = eltBytes(c.elt), kBK = c.kTile, kStages = c.stages(), kStageBytes = c.stageBytes();
  const int64_t kTiles = c.k / kBK, copies = kBK / 16, chunksA = kBK / 8;
  Tile t = openTile(k, c);
  std::string tid = k.op("gpu.thread_id x");
  std::string lane = k.rem(tid, k.index(32)), warp = k.div(tid, k.index(32));
  std::string wm = k.div(warp, k.index(4)), wn = k.rem(warp, k.index(4));
  std::string smemPtr = k.op("llvm.mlir.addressof @moe_smem : !llvm.ptr<3>");
  std::string smem = k.op("llvm.ptrtoint " + smemPtr + " : !llvm.ptr<3> to i32");
  std::string aAddr = address(k, "%A", c.elt), b0Addr = address(k, "%B0", c.elt), b1Addr = address(k, "%B1", c.elt);

  // This thread's two 16-byte A copies and two B copies per k tile.
  std::vector<std::string> gB, sB, sizeB;
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  // A rows are BK * 2 bytes: 4 (BK 32) or 8 (BK 64) chunks of 16 bytes, XOR-swizzled
  // so the 8 rows an ldmatrix reads hit 8 different bank groups.
  auto swizzleA = [&](const std::string &row, const std::string &chunk) {
    std::string key = chunksA == 4 ? k.rem(k.div(row, k.index(2)), k.index(4)) : k.rem(row, k.index(8));
    std::string swz = k.op("arith.xori " + chunk + ", " + key + " : index");
    return k.toI32(k.add(k.mul(row, k.index(chunksA * 16)), k.mul(swz, k.index(16))));
  };
  StageCopies aCopies = aTileCopies(k, c, t, tid, aAddr, chunksA, swizzleA);
  std::vector<std::string> &gA = aCopies.global, &sA = aCopies.shared, &sizeA = aCopies.size;
  for (int j = 0; j < copies; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string kr = k.div(q, k.index(16)), chunk = k.rem(q, k.index(16));
    std::string col, base;
    if (c.glu) {
      std::string second = k.op("arith.cmpi uge, " + chunk + ", " + k.index(8) + " : index");
      col = k.add(t.n0, k.mul(k.rem(chunk, k.index(8)), k.index(8)));
      base = k.select(second, b1Addr, b0Addr, "i64");
    } else {
      col = k.add(t.n0, k.mul(chunk, k.index(8)));
      base = b0Addr;
    }
    std::string valid = k.lt(col, k.index(c.n));
    std::string safeCol = k.select(valid, col, k.index(0), "index");
    std::string elem = k.add(k.mul(k.add(k.mul(t.e, k.index(c.k)), kr), k.index(c.n)), safeCol);
    gB.push_back(k.op("arith.addi " + base + ", " + i64(k, k.mul(elem, k.index(eb))) + " : i64"));
    std::string swz = k.op("arith.xori " + chunk + ", " + k.rem(kr, k.index(8)) + " : index");
    sB.push_back(k.toI32(k.add(k.index(128 * kBK * 2), k.add(k.mul(kr, k.index(256)), k.mul(swz, k.index(16))))));
    sizeB.push_back(k.select(valid, sixteen, zero32, "i32"));
  }

  // Fragment offsets in a stage: A per (m tile, k16 step), B per (column pair, k16 step).
  std::vector<std::array<std::string, 4>> offA(copies), offB(copies);
  for (int mi = 0; mi < 4; ++mi)
    for (int kk = 0; kk < copies; ++kk) {
      std::string row = k.add(k.add(k.mul(wm, k.index(64)), k.index(mi * 16)), k.rem(lane, k.index(16)));
      std::string chunk = k.add(k.index(kk * 2), k.div(lane, k.index(16)));
      offA[kk][mi] = swizzleA(row, chunk);
    }
  for (int q = 0; q < 2; ++q)
    for (int kk = 0; kk < copies; ++kk) {
      std::string nb =
          c.glu ? k.add(k.index(q * 64), k.mul(wn, k.index(16))) : k.add(k.mul(wn, k.index(32)), k.index(q * 16));
      std::string l8 = k.rem(lane, k.index(8)), half = k.rem(k.div(lane, k.index(8)), k.index(2));
      std::string krow = k.add(k.add(k.index(kk * 16), l8), k.mul(half, k.index(8)));
      std::string ncol = k.add(nb, k.mul(k.div(lane, k.index(16)), k.index(8)));
      std::string chunk = k.div(ncol, k.index(8));
      std::string swz = k.op("arith.xori " + chunk + ", " + k.rem(krow, k.index(8)) + " : index");
      offB[kk][q] = k.toI32(k.add(k.index(128 * kBK * 2), k.add(k.mul(krow, k.index(256)), k.mul(swz, k.index(16)))));
    }

  // Copies of k tile `kt` (index value) into its stage.
  auto loadTile = [&](const std::string &kt) {
    std::string stage = k.toI32(k.rem(kt, k.index(kStages)));
    std::string stageBase = k.add32(smem, k.mul32(stage, k.i32(kStageBytes)));
    std::string kt64 = i64(k, kt);
    std::string stepA =
        k.op("arith.muli " + kt64 + ", " + k.op("arith.constant " + std::to_string(kBK * eb) + " : i64") + " : i64");
    std::string stepB = k.op("arith.muli " + kt64 + ", " +
                             k.op("arith.constant " + std::to_string(kBK * c.n * eb) + " : i64") + " : i64");
    for (int j = 0; j < copies; ++j)
      cpAsync(k, k.add32(stageBase, sA[j]), k.op("arith.addi " + gA[j] + ", " + stepA + " : i64"), sizeA[j]);
    for (int j = 0; j < copies; ++j)
      cpAsync(k, k.add32(stageBase, sB[j]), k.op("arith.addi " + gB[j] + ", " + stepB + " : i64"), sizeB[j]);
  };
  auto commit = [&] { cpAsyncCommit(k); };

  for (int64_t s = 0; s < kStages - 1; ++s) {
    if (s < kTiles)
      loadTile(k.index(s));
    commit();
  }

  // The main loop carries 4 x 4 accumulator tiles of 4 floats.
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("kt", k.index(0), k.index(kTiles), k.index(1), "acc",
                                   std::vector<std::string>(64, k.f32(0.0)), acc);
  cpAsyncWait(k, kStages - 2);
  k.line("gpu.barrier");
  std::string next = k.add("%kt", k.index(kStages - 1));
  k.line("scf.if " + k.lt(next, k.index(kTiles)) + " {");
  loadTile(next);
  k.line("}");
  commit();
  std::string stage = k.toI32(k.rem("%kt", k.index(kStages)));
  std::string stageBase = k.add32(smem, k.mul32(stage, k.i32(kStageBytes)));
  for (int kk = 0; kk < copies; ++kk)
    warpTileStep(k, c.elt, stageBase, {offA[kk].begin(), offA[kk].end()}, {offB[kk][0], offB[kk][1]}, false, acc);
  k.yieldF32(acc);
  k.line("}");
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_all;\", \"\" : () -> ()");

  // Epilogue: each thread holds rows g and g + 8 of every 16 x 8 tile, two columns each.
  std::string g = k.div(lane, k.index(4)), tq = k.rem(lane, k.index(4));
  for (int mi = 0; mi < 4; ++mi)
    for (int h = 0; h < 2; ++h) {
      std::string rowL = k.add(k.add(k.mul(wm, k.index(64)), k.index(mi * 16 + 8 * h)), g);
      std::string p = k.add(t.rowStart, rowL);
      k.line("scf.if " + k.lt(p, t.rowEnd) + " {");
      std::string scale = rowScale(k, c, p);
      int tiles = c.glu ? 2 : 4;
      for (int nj = 0; nj < tiles; ++nj) {
        std::string colL =
            c.glu ? k.add(k.mul(wn, k.index(16)), k.index(nj * 8)) : k.add(k.mul(wn, k.index(32)), k.index(nj * 8));
        std::string col = k.add(k.add(t.n0, colL), k.mul(tq, k.index(2)));
        k.line("scf.if " + k.lt(col, k.index(c.n)) + " {");
        auto res = [&](int tile, int i) { return loop + "#" + std::to_string((mi * 4 + tile) * 4 + 2 * h + i); };
        storePair(k, c, p, col, scale, res(nj, 0), res(nj, 1), c.glu ? res(nj + 2, 0) : "",
                  c.glu ? res(nj + 2, 1) : "");
        k.line("}");
      }
      k.line("}");
    }
  k.line("}");
  // Two blocks per SM: at most 128 registers a thread (launch bounds).
  return k.finish(signature(c), "", "attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = 2 : i32}");
}

// --- FMA ------------------------------------------------------------------

std::string fmaKernel(const GemmConfig &c) {
  KernelEmitter k;
  constexpr int64_t BM = 64, BN = 64, BK = 16;
  const int nb = c.glu ? 2 : 1;
  Tile t = openTile(k, c);
  std::string tid = k.op("gpu.thread_id x");
  std::string tx = k.rem(tid, k.index(16)), ty = k.div(tid, k.index(16));
  // As[k][m] and Bs[b][k][n] in workgroup memory (attributions %As, %Bs).
  std::string aType =
      "memref<" + std::to_string(BK) + "x" + std::to_string(BM) + "xf32, #gpu.address_space<workgroup>>";
  std::string bType =
      "memref<" + std::to_string(nb * BK) + "x" + std::to_string(BN) + "xf32, #gpu.address_space<workgroup>>";

  // Each thread loads 4 A elements and 4 B elements per matrix per k tile.
  std::vector<std::string> aRow, aKk, aValid, aSrc;
  for (int j = 0; j < 4; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string row = k.div(q, k.index(BK)), kk = k.rem(q, k.index(BK));
    std::string p = k.add(t.rowStart, row), valid = k.lt(p, t.rowEnd);
    aRow.push_back(row);
    aKk.push_back(kk);
    aValid.push_back(valid);
    aSrc.push_back(sourceRow(k, c, t, p, valid));
  }
  const size_t accCount = 16 * nb;
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("k0", k.index(0), k.index(c.k), k.index(BK), "acc",
                                   std::vector<std::string>(accCount, k.f32(0.0)), acc);
  k.line("gpu.barrier");
  for (int j = 0; j < 4; ++j) {
    std::string kIdx = k.add("%k0", aKk[j]);
    std::string ok = k.op("arith.andi " + aValid[j] + ", " + k.lt(kIdx, k.index(c.k)) + " : i1");
    std::string v = k.loadF32If(ok, "%A", k.add(k.mul(aSrc[j], k.index(c.k)), kIdx), c.elt);
    k.line("memref.store " + v + ", %As[" + aKk[j] + ", " + aRow[j] + "] : " + aType);
  }
  for (int b = 0; b < nb; ++b)
    for (int j = 0; j < 4; ++j) {
      std::string q = k.add(tid, k.index(256 * j));
      std::string kr = k.div(q, k.index(BN)), col = k.rem(q, k.index(BN));
      std::string kIdx = k.add("%k0", kr), gcol = k.add(t.n0, col);
      std::string ok = k.op("arith.andi " + k.lt(kIdx, k.index(c.k)) + ", " + k.lt(gcol, k.index(c.n)) + " : i1");
      std::string at = k.add(k.mul(k.add(k.mul(t.e, k.index(c.k)), kIdx), k.index(c.n)), gcol);
      std::string v = k.loadF32If(ok, b ? "%B1" : "%B0", at, c.elt);
      k.line("memref.store " + v + ", %Bs[" + k.add(kr, k.index(b * BK)) + ", " + col + "] : " + bType);
    }
  k.line("gpu.barrier");
  std::vector<std::string> in;
  std::string inner = k.openF32Loop("kk", k.index(0), k.index(BK), k.index(1), "in", acc, in);
  std::vector<std::string> a(4), res;
  for (int i = 0; i < 4; ++i)
    a[i] = k.op("memref.load %As[%kk, " + k.add(k.mul(ty, k.index(4)), k.index(i)) + "] : " + aType);
  for (int b = 0; b < nb; ++b) {
    std::vector<std::string> bv(4);
    for (int j = 0; j < 4; ++j)
      bv[j] = k.op("memref.load %Bs[" + k.add("%kk", k.index(b * BK)) + ", " +
                   k.add(k.mul(tx, k.index(4)), k.index(j)) + "] : " + bType);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        res.push_back(k.op("math.fma " + a[i] + ", " + bv[j] + ", " + in[b * 16 + i * 4 + j] + " : f32"));
  }
  k.yieldF32(res);
  k.line("}");
  k.yieldF32(KernelEmitter::results(inner, accCount));
  k.line("}");

  for (int i = 0; i < 4; ++i) {
    std::string p = k.add(t.rowStart, k.add(k.mul(ty, k.index(4)), k.index(i)));
    k.line("scf.if " + k.lt(p, t.rowEnd) + " {");
    std::string scale = rowScale(k, c, p);
    for (int j = 0; j < 4; ++j) {
      std::string col = k.add(t.n0, k.add(k.mul(tx, k.index(4)), k.index(j)));
      k.line("scf.if " + k.lt(col, k.index(c.n)) + " {");
      std::string g = loop + "#" + std::to_string(i * 4 + j), u = loop + "#" + std::to_string(16 + i * 4 + j);
      if (c.keepUp) {
        std::string a = k.toIndex(k.load("%perm", p, "i32"));
        std::string at = k.add(k.mul(a, k.index(c.glu ? 2 * c.n : c.n)), col);
        k.storeF32(g, "%R", at, c.out);
        if (c.glu)
          k.storeF32(u, "%R", k.add(at, k.index(c.n)), c.out);
      }
      std::string v = activation(k, c.act, g);
      if (c.glu)
        v = k.op("arith.mulf " + v + ", " + u + " : f32");
      if (c.scaleRows)
        v = k.op("arith.mulf " + v + ", " + scale + " : f32");
      k.storeF32(v, "%C", k.add(k.mul(p, k.index(c.n)), col), c.out);
      k.line("}");
    }
    k.line("}");
  }
  k.line("}");
  return k.finish(signature(c), "workgroup(%As : " + aType + ", %Bs : " + bType + ")");
}

} // namespace

std::string GemmConfig::name() const {
  std::string engine = !tensorCores ? "fma" : wgmma ? (wgmmaN == 256 ? "wgmmaw" : "wgmma") : "mma";
  std::string s = "moe_gemm_" + engine + (tensorCores ? std::to_string(kTile) : "") + "_" + elt + "_" + out + "_w" +
                  weight + "_k" + std::to_string(k) + "_n" + std::to_string(n) + "_" + act;
  if (stagedEpilogue)
    s += "_se";
  if (tmaB)
    s += "_tma";
  if (persistent)
    s += "_persistent";
  if (warpSpecialized)
    s += "_ws";
  if (kMajorB)
    s += "_kb" + (bSplitK ? std::to_string(bSplitK) : "");
  if (glu)
    s += "_glu";
  if (gatherRows)
    s += "_gather";
  if (scaleRows)
    s += "_scale";
  if (grouped)
    s += "_grouped";
  if (keepUp)
    s += "_keep";
  if (kChunks)
    s += (splitK ? "_splitk" : "_kc") + std::to_string(kChunks);
  return s;
}

int64_t GemmConfig::stagedRowBytes() const { return blockN() * eltBytes(out) + 16; }
int64_t GemmConfig::epilogueRowBytes() const { return epilogueColumns() * eltBytes(out) + 16; }

int64_t GemmConfig::sharedBytes() const {
  return tensorCores ? stages() * stageBytes() + barrierBytes() + epilogueBytes() : 0;
}

bool moe::gpu_kernels::tensorCoresFit(const std::string &elt, const std::string &weightElt, int64_t k, int64_t n,
                                      int64_t kTile) {
  return (elt == "bf16" || elt == "f16") && elt == weightElt && k % kTile == 0 && n % 8 == 0;
}

std::string moe::gpu_kernels::gemmKernel(const GemmConfig &config) {
  if (!config.tensorCores)
    return fmaKernel(config);
  if (config.warpSpecialized)
    return warpSpecializedWgmmaGemmKernel(config);
  if (config.persistent)
    return persistentWgmmaGemmKernel(config);
  return config.wgmma ? wgmmaGemmKernel(config) : tensorCoreKernel(config);
}
