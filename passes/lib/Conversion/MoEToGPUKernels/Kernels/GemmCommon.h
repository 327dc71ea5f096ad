//===- GemmCommon.h - what every GEMM kernel variant shares -----*- C++ -*-===//
//
// The GEMM variants (mma.sync, wgmma, FMA; Gemm.cpp and GemmWgmma.cpp) share
// their signature, the tile a block works on (from the device-built
// schedule, in grouped block order), the row gather of A, the epilogue
// (activation, GLU product, routing weight, store) and 16-byte cp.async.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_GEMMCOMMON_H
#define MOE_CONVERSION_GPUKERNELS_GEMMCOMMON_H

#include "KernelEmitter.h"
#include "Kernels.h"
#include "moe/Support/MLIR.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace moe::gpu_kernels::gemm {

/// The kernel's arguments, the same for every variant.
std::string signature(const GemmConfig &c);

/// What every variant does first: which tile, rows and expert this block has.
struct Tile {
  std::string e, rowStart, rowEnd, n0;
};

/// Opens `scf.if` over active blocks and reads the tile (the caller closes it).
Tile openTile(KernelEmitter &k, const GemmConfig &c);
/// Block number `linear` in the grouped order (kGroupM row tiles times every
/// one of `nBlocks` column blocks, so a wave of blocks shares its A rows and
/// B columns in L2) over `tiles` row tiles: (row tile, column block).
std::pair<std::string, std::string> groupedTile(KernelEmitter &k, int64_t nBlocks, const std::string &linear,
                                                const std::string &tiles);
/// The expert, rows and first column of row tile `bx`, column block `by`.
Tile tileAt(KernelEmitter &k, const GemmConfig &c, const std::string &bx, const std::string &by);

/// A's row for output row `p` (valid or not: invalid rows read row rowStart).
std::string sourceRow(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &p,
                      const std::string &valid);

/// A thread's 16-byte cp.async copies of a stage: global byte addresses (i64,
/// of the first stage), shared byte offsets within the stage (i32) and source
/// sizes (i32: 16, or 0 to zero-fill).
struct StageCopies {
  std::vector<std::string> global, shared, size;
  /// A k-major B split along k (GemmConfig::bSplitK): the same copies' B1 addresses.
  std::vector<std::string> globalSplit;
};

/// The copies of A's 128-row tile, `chunksPerRow` 16-byte chunks a row, split
/// over 256 threads: row r comes from sourceRow (rows past the tile's end are
/// zero-filled) and chunk c of it goes to `place(r, c)`.
StageCopies aTileCopies(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                        const std::string &aAddr, int64_t chunksPerRow,
                        const std::function<std::string(const std::string &, const std::string &)> &place);

/// The epilogue's math for one output element pair: activation (and GLU
/// product with u0, u1), routing weight `scale`; f32 results.
std::pair<std::string, std::string> epiloguePair(KernelEmitter &k, const GemmConfig &c, const std::string &scale,
                                                 std::string v0, std::string v1, const std::string &u0,
                                                 const std::string &u1);

/// With GemmConfig::keepUp, the pair before the epilogue (A.B0 at columns
/// `col`, `col + 1`, and a GLU's A.B1) stored into the kept up products at
/// output row `p`'s assignment (columns past n skipped); nothing otherwise.
void keepUpPair(KernelEmitter &k, const GemmConfig &c, const std::string &p, const std::string &col,
                const std::string &g0, const std::string &g1, const std::string &u0, const std::string &u1);

/// keepUpPair, then epiloguePair stored at row `p`, columns `col` and `col + 1` of C.
void storePair(KernelEmitter &k, const GemmConfig &c, const std::string &p, const std::string &col,
               const std::string &scale, const std::string &g0, const std::string &g1, const std::string &u0,
               const std::string &u1);

/// The routing weight of output row `p` ("" unless the config scales rows).
std::string rowScale(KernelEmitter &k, const GemmConfig &c, const std::string &p);

/// 16 bytes from global `global` (i64) to shared `shared` (i32); `size` 0
/// zero-fills them instead.
void cpAsync(KernelEmitter &k, const std::string &shared, const std::string &global, const std::string &size);
void cpAsyncCommit(KernelEmitter &k);

/// ldmatrix x4 (transposed: for operands stored k-major) at a shared byte
/// address: four i32 registers, of the four 8 x 8 matrices whose row
/// addresses lanes 0-7, 8-15, 16-23 and 24-31 give.
std::vector<std::string> ldmatrix(KernelEmitter &k, const std::string &shared, bool trans);
/// mma.sync m16n8k16 (row.col, f32 accumulators) of `elt` operands: A's four
/// registers, B's two, the four accumulators in; the four sums out.
std::vector<std::string> mma(KernelEmitter &k, const std::string &elt, const std::vector<std::string> &a,
                             const std::string &b0, const std::string &b1, const std::vector<std::string> &acc);
/// One 16-deep step of a warp's 64 x 32 tile of a 128 x 128 block: A's four
/// 16-row tiles (offsets offA[0..3] from `stageBase`; `transA` where A lies
/// k-major in shared memory) and B's two 16-column pairs (offB[0..1], k-major)
/// by ldmatrix, into 4 x 4 mma.sync of `acc` (64 floats, tile (mi, nj) at
/// (mi * 4 + nj) * 4).
void warpTileStep(KernelEmitter &k, const std::string &elt, const std::string &stageBase,
                  const std::vector<std::string> &offA, const std::vector<std::string> &offB, bool transA,
                  std::vector<std::string> &acc);
void cpAsyncWait(KernelEmitter &k, int64_t pending);

} // namespace moe::gpu_kernels::gemm

#endif
