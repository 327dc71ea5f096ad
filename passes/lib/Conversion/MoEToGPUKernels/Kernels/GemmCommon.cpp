//===- GemmCommon.cpp - what every GEMM kernel variant shares -------------===//
#include "GemmCommon.h"
#include "moe/Support/MLIR.h"

using namespace moe::gpu_kernels;

namespace moe::gpu_kernels::gemm {

std::string signature(const GemmConfig &c) {
  return "@" + c.name() + "(%A: " + flatMemref(c.elt) + ", %B0: " + flatMemref(c.elt) + ", %B1: " + flatMemref(c.elt) +
         ", %C: " + flatMemref(c.out) +
         ", %perm: memref<?xi32>, %tileExpert: memref<?xi32>, %tileRow: memref<?xi32>, "
         "%offsets: memref<?xi32>, %numTiles: memref<?xi32>, %w: " +
         flatMemref(c.weight) + ", %rows: index, %topK: index" + (c.keepUp ? ", %R: " + flatMemref(c.out) : "") +
         (c.tmaB ? ", %tmB0: i64, %tmB1: i64" : "") + (c.warpSpecialized ? ", %tileCounter: memref<?xi32>" : "") + ")";
}

/// Row tiles per group of the block order (see openTile).
constexpr int64_t kGroupM = 8;

std::pair<std::string, std::string> groupedTile(KernelEmitter &k, int64_t nBlocks, const std::string &linear,
                                                const std::string &tiles) {
  std::string groupSize = k.index(kGroupM * nBlocks);
  std::string firstTile = k.mul(k.div(linear, groupSize), k.index(kGroupM));
  std::string groupTiles = k.minIndex(k.index(kGroupM), k.op("arith.subi " + tiles + ", " + firstTile + " : index"));
  std::string inGroup = k.rem(linear, groupSize);
  return {k.add(firstTile, k.rem(inGroup, groupTiles)), k.div(inGroup, groupTiles)};
}

Tile tileAt(KernelEmitter &k, const GemmConfig &c, const std::string &bx, const std::string &by) {
  Tile t;
  if (c.grouped) {
    t.e = k.toIndex(k.load("%tileExpert", bx, "i32"));
    t.rowStart = k.toIndex(k.load("%tileRow", bx, "i32"));
    t.rowEnd = k.toIndex(k.load("%offsets", k.add(t.e, k.index(1)), "i32"));
  } else {
    t.e = k.index(0);
    t.rowStart = k.mul(bx, k.index(c.blockM()));
    t.rowEnd = "%rows";
  }
  t.n0 = k.mul(by, k.index(c.blockN()));
  return t;
}

Tile openTile(KernelEmitter &k, const GemmConfig &c) {
  // Blocks are numbered group by group: kGroupM row tiles times every column
  // block, so a wave of blocks shares its A rows and B columns in L2.
  const int64_t nBlocks = c.columnBlocks();
  std::string linear = k.op("gpu.block_id x");
  std::string tilesInGrid = k.div(k.op("gpu.grid_dim x"), k.index(nBlocks));
  auto [bx, by] = groupedTile(k, nBlocks, linear, tilesInGrid);
  std::string active;
  if (c.grouped) {
    std::string nt = k.toIndex(k.load("%numTiles", k.index(0), "i32"));
    active = k.lt(bx, nt);
  } else {
    active = k.lt(k.mul(bx, k.index(c.blockM())), "%rows");
  }
  k.line("scf.if " + active + " {");
  return tileAt(k, c, bx, by);
}

std::string sourceRow(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &p,
                      const std::string &valid) {
  std::string clamped = k.select(valid, p, t.rowStart, "index");
  if (!c.gatherRows)
    return clamped;
  std::string a = k.toIndex(k.load("%perm", clamped, "i32"));
  return k.div(a, "%topK");
}

/// The epilogue for one output element pair: activation (and GLU product),
/// routing weight, store.
std::pair<std::string, std::string> epiloguePair(KernelEmitter &k, const GemmConfig &c, const std::string &scale,
                                                 std::string v0, std::string v1, const std::string &u0,
                                                 const std::string &u1) {
  v0 = activation(k, c.act, v0);
  v1 = activation(k, c.act, v1);
  if (c.glu) {
    v0 = k.op("arith.mulf " + v0 + ", " + u0 + " : f32");
    v1 = k.op("arith.mulf " + v1 + ", " + u1 + " : f32");
  }
  if (c.scaleRows) {
    v0 = k.op("arith.mulf " + v0 + ", " + scale + " : f32");
    v1 = k.op("arith.mulf " + v1 + ", " + scale + " : f32");
  }
  return {v0, v1};
}

void keepUpPair(KernelEmitter &k, const GemmConfig &c, const std::string &p, const std::string &col,
                const std::string &g0, const std::string &g1, const std::string &u0, const std::string &u1) {
  if (!c.keepUp)
    return;
  k.line("scf.if " + k.lt(col, k.index(c.n)) + " {");
  std::string a = k.toIndex(k.load("%perm", p, "i32"));
  std::string at = k.add(k.mul(a, k.index(c.glu ? 2 * c.n : c.n)), col);
  // Each pair as one store: 4 bytes of a 16-bit type (col is even, and so is
  // every row's width), two stores of f32.
  auto store = [&](const std::string &first, const std::string &v0, const std::string &v1) {
    if (c.out == "f32") {
      k.storeF32(v0, "%R", first, c.out);
      k.storeF32(v1, "%R", k.add(first, k.index(1)), c.out);
      return;
    }
    const std::string vec = "vector<2x" + c.out + ">";
    std::string pair = k.op("llvm.mlir.undef : " + vec);
    for (int i = 0; i < 2; ++i) {
      std::string v = k.op("arith.truncf " + std::string(i ? v1 : v0) + " : f32 to " + c.out);
      pair = k.op("llvm.insertelement " + v + ", " + pair + "[" + k.i32(i) + " : i32] : " + vec);
    }
    std::string base = k.op("llvm.inttoptr " + address(k, "%R", c.out) + " : i64 to !llvm.ptr");
    std::string bytes = i64(k, k.mul(first, k.index(eltBytes(c.out))));
    std::string ptr = k.op("llvm.getelementptr " + base + "[" + bytes + "] : (!llvm.ptr, i64) -> !llvm.ptr, i8");
    k.line("llvm.store " + pair + ", " + ptr + " {alignment = 4 : i64} : " + vec + ", !llvm.ptr");
  };
  store(at, g0, g1);
  if (c.glu)
    store(k.add(at, k.index(c.n)), u0, u1);
  k.line("}");
}

void storePair(KernelEmitter &k, const GemmConfig &c, const std::string &p, const std::string &col,
               const std::string &scale, const std::string &g0, const std::string &g1, const std::string &u0,
               const std::string &u1) {
  keepUpPair(k, c, p, col, g0, g1, u0, u1);
  auto [v0, v1] = epiloguePair(k, c, scale, g0, g1, u0, u1);
  std::string at = k.add(k.mul(p, k.index(c.n)), col);
  k.storeF32(v0, "%C", at, c.out);
  k.storeF32(v1, "%C", k.add(at, k.index(1)), c.out);
}

std::string rowScale(KernelEmitter &k, const GemmConfig &c, const std::string &p) {
  if (!c.scaleRows)
    return "";
  std::string a = k.toIndex(k.load("%perm", p, "i32"));
  return k.loadF32("%w", a, c.weight);
}

void cpAsync(KernelEmitter &k, const std::string &shared, const std::string &global, const std::string &size) {
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"{ .reg .u64 g; cvta.to.global.u64 g, $1; "
         "cp.async.cg.shared.global [$0], [g], 16, $2; }\", \"r,l,r\" " +
         shared + ", " + global + ", " + size + " : (i32, i64, i32) -> ()");
}

StageCopies aTileCopies(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                        const std::string &aAddr, int64_t chunksPerRow,
                        const std::function<std::string(const std::string &, const std::string &)> &place) {
  StageCopies out;
  std::string zero32 = k.i32(0), sixteen = k.i32(16);
  for (int64_t j = 0; j < 128 * chunksPerRow / 256; ++j) {
    std::string q = k.add(tid, k.index(256 * j));
    std::string row = k.div(q, k.index(chunksPerRow)), chunk = k.rem(q, k.index(chunksPerRow));
    std::string p = k.add(t.rowStart, row), valid = k.lt(p, t.rowEnd);
    std::string src = sourceRow(k, c, t, p, valid);
    std::string elem = k.add(k.mul(src, k.index(c.k)), k.mul(chunk, k.index(8)));
    out.global.push_back(k.op("arith.addi " + aAddr + ", " + i64(k, k.mul(elem, k.index(eltBytes(c.elt)))) + " : i64"));
    out.shared.push_back(place(row, chunk));
    out.size.push_back(k.select(valid, sixteen, zero32, "i32"));
  }
  return out;
}

/// ldmatrix x4 (transposed for B) at a shared address: four i32 registers.
std::vector<std::string> ldmatrix(KernelEmitter &k, const std::string &shared, bool trans) {
  std::string r =
      k.op(std::string("llvm.inline_asm has_side_effects asm_dialect = att \"ldmatrix.sync.aligned.m8n8.x4") +
           (trans ? ".trans" : "") + ".shared.b16 {$0,$1,$2,$3}, [$4];\", \"=r,=r,=r,=r,r\" " + shared +
           " : (i32) -> !llvm.struct<(i32, i32, i32, i32)>");
  std::vector<std::string> out;
  for (int i = 0; i < 4; ++i)
    out.push_back(k.op("llvm.extractvalue " + r + "[" + std::to_string(i) + "] : !llvm.struct<(i32, i32, i32, i32)>"));
  return out;
}

std::vector<std::string> mma(KernelEmitter &k, const std::string &elt, const std::vector<std::string> &a,
                             const std::string &b0, const std::string &b1, const std::vector<std::string> &acc) {
  std::string r = k.op("llvm.inline_asm asm_dialect = att \"mma.sync.aligned.m16n8k16.row.col.f32." + elt + "." + elt +
                       ".f32 {$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};\", "
                       "\"=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f\" " +
                       a[0] + ", " + a[1] + ", " + a[2] + ", " + a[3] + ", " + b0 + ", " + b1 + ", " + acc[0] + ", " +
                       acc[1] + ", " + acc[2] + ", " + acc[3] +
                       " : (i32, i32, i32, i32, i32, i32, f32, f32, f32, f32) -> !llvm.struct<(f32, f32, f32, f32)>");
  std::vector<std::string> out;
  for (int i = 0; i < 4; ++i)
    out.push_back(k.op("llvm.extractvalue " + r + "[" + std::to_string(i) + "] : !llvm.struct<(f32, f32, f32, f32)>"));
  return out;
}

void warpTileStep(KernelEmitter &k, const std::string &elt, const std::string &stageBase,
                  const std::vector<std::string> &offA, const std::vector<std::string> &offB, bool transA,
                  std::vector<std::string> &acc) {
  std::vector<std::string> a[4], b[4];
  for (int mi = 0; mi < 4; ++mi)
    a[mi] = ldmatrix(k, k.add32(stageBase, offA[mi]), transA);
  for (int q = 0; q < 2; ++q) {
    std::vector<std::string> r = ldmatrix(k, k.add32(stageBase, offB[q]), true);
    b[2 * q] = {r[0], r[1]};
    b[2 * q + 1] = {r[2], r[3]};
  }
  for (int mi = 0; mi < 4; ++mi)
    for (int nj = 0; nj < 4; ++nj) {
      int at = (mi * 4 + nj) * 4;
      std::vector<std::string> in(acc.begin() + at, acc.begin() + at + 4);
      std::vector<std::string> out = mma(k, elt, a[mi], b[nj][0], b[nj][1], in);
      std::copy(out.begin(), out.end(), acc.begin() + at);
    }
}

void cpAsyncCommit(KernelEmitter &k) {
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.commit_group;\", \"\"  : () -> ()");
}

void cpAsyncWait(KernelEmitter &k, int64_t pending) {
  k.line("llvm.inline_asm has_side_effects asm_dialect = att \"cp.async.wait_group " + std::to_string(pending) +
         ";\", \"\" : () -> ()");
}

} // namespace moe::gpu_kernels::gemm
