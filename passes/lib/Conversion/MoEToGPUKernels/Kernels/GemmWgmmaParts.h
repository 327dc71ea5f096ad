//===- GemmWgmmaParts.h - what the wgmma GEMM kernels share -----*- C++ -*-===//
//
// The layout, descriptors, MMA and epilogue pieces of the sm_90a GEMMs
// (GemmWgmma.cpp: a block a tile; GemmWgmmaPersistent.cpp: a block an SM,
// walking its tiles with the copies running ahead across them).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_GEMMWGMMAPARTS_H
#define MOE_CONVERSION_GPUKERNELS_GEMMWGMMAPARTS_H

#include "GemmCommon.h"
#include "moe/Support/MLIR.h"

namespace moe::gpu_kernels::gemm::wgmma {

constexpr int64_t kBK = 64;                             // k per stage: one 128-byte swizzle line of A
constexpr int64_t kABytes = 128 * kBK * 2;              // 16 KiB
constexpr int64_t kAtomBytes = 1024;                    // 8 lines of 128 bytes: one swizzle pattern
constexpr int64_t kSliceBytes = (kBK / 8) * kAtomBytes; // between B's 64-column slices

/// The shape of one variant.
struct Shape {
  explicit Shape(const GemmConfig &c)
      : n(c.wgmmaN), accumulators(c.wgmmaN / 2), stages(c.stages()), stageBytes(c.stageBytes()),
        inFlight(c.wgmmaN == 256 ? 1 : 0), lookahead(stages - 1 - inFlight), bChunks(c.wgmmaN / 8),
        bCopies(kBK * c.wgmmaN / 8 / 256) {}
  int64_t n;            ///< B columns per stage (the instruction's N)
  int64_t accumulators; ///< f32 per thread: 64 x n / 128
  int64_t stages, stageBytes;
  int64_t inFlight;  ///< wgmma groups left running at the end of a stage
  int64_t lookahead; ///< stages being copied while one is multiplied
  int64_t bChunks;   ///< 16-byte chunks in a row of B
  int64_t bCopies;   ///< B copies per thread per stage
};

/// What a wgmma kernel names first: its thread's place (thread, lane,
/// warpgroup, warp within it), the dynamic shared memory (as a pointer and an
/// i32 address) and the operands' global byte addresses.
struct Prelude {
  std::string tid, lane, warpgroup, warpInGroup, smemPtr, smem, aAddr, b0Addr, b1Addr;
};
Prelude prelude(KernelEmitter &k, const GemmConfig &c);

std::string constant64(KernelEmitter &k, int64_t v);
/// `v0, v1, ...`: SSA values (or types) as an operand list.
std::string joined(const std::vector<std::string> &values);
/// a + v (i64), or a itself for v = 0.
std::string plus64(KernelEmitter &k, const std::string &a, int64_t v);
/// wgmma's shared-memory matrix descriptor (128-byte swizzle) for the matrix
/// at shared address `shared` (i32, 1 KiB aligned), with leading and stride
/// byte offsets `lbo` and `sbo`.
std::string descriptor(KernelEmitter &k, const std::string &shared, int64_t lbo, int64_t sbo);
std::string f32Types(int64_t n);

/// An asm statement over the accumulators (tied in and out, $0..$n-1, so
/// nothing reads or moves them across it) and `extra` operands after them.
std::vector<std::string> accumulatorAsm(KernelEmitter &k, const Shape &s, const std::string &text,
                                        const std::string &extraConstraints, const std::string &extraOperands,
                                        const std::string &extraTypes, const std::vector<std::string> &acc);

/// One stage's four k16 steps on this warpgroup's accumulators: fence, four
/// wgmma, commit, then wait until at most `inFlight` groups run, in one asm
/// statement. With `firstAccumulates` (i32), the first step adds to the
/// accumulators only where it is non-zero (wgmma's scale-d: a tile's first
/// stage starts from zero without clearing them); otherwise every step adds.
std::vector<std::string> wgmmaStage(KernelEmitter &k, const GemmConfig &c, const Shape &s, const std::string &descA,
                                    const std::string &descB, const std::vector<std::string> &acc,
                                    const std::string &firstAccumulates = "");
/// How a stage's operands lie in shared memory: A k-major (GEMM rows of 64 k,
/// the forward's) or m-major (atoms of 8 k rows x 64 m, a weight cotangent's
/// X^T); B n-major (atoms of 8 k rows x 64 n, the weights' [k][n]) or k-major.
struct StageOperands {
  std::string elt;
  bool mMajorA = false, kMajorB = false;
  /// Commit the stage's wgmma without waiting: the caller issues other work
  /// (the next copies) and then waits (wgmma.wait_group over the accumulators).
  bool issueOnly = false;
};
std::vector<std::string> wgmmaStage(KernelEmitter &k, const StageOperands &o, const Shape &s, const std::string &descA,
                                    const std::string &descB, const std::vector<std::string> &acc,
                                    const std::string &firstAccumulates = "");
/// The 16-byte copy's shared offset of row `r` (of a stage's 64 k rows),
/// chunk `chunk` (8 elements) of an m- or n-major operand: 64-column slices
/// kSliceBytes apart, 1 KiB atoms of 8 rows, chunks XOR-swizzled by the row.
std::string majorAtomOffset(KernelEmitter &k, const std::string &r, const std::string &chunk);
/// The byte offset of 16-byte chunk `chunk` of 128-byte line `row` in the
/// hardware's 128-byte swizzle (a k-major operand's layout: A's).
std::string lineOffset(KernelEmitter &k, const std::string &row, const std::string &chunk);
/// Waits until the mbarrier at shared address `bar` (i32) has completed the
/// phase of parity `parity` (i32, 0 or 1).
void waitParity(KernelEmitter &k, const std::string &bar, const std::string &parity);

/// Output pair (v0, v1) of tile row `rowL`, tile column `colL` into shared
/// memory at `smemPtr`, rows `rowBytes` apart (0: GemmConfig::stagedRowBytes).
void stagePair(KernelEmitter &k, const GemmConfig &c, const std::string &smemPtr, const std::string &rowL,
               const std::string &colL, const std::string &v0, const std::string &v1, int64_t rowBytes = 0);
/// Rows [firstRow, firstRow + rows) of the staged tile at `smemPtr` to C, 16
/// bytes a thread at a time (the caller has synchronised the writes).
void storeStagedRows(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                     const std::string &smemPtr, int64_t firstRow, int64_t rows);
/// A barrier, then the whole 128-row staged tile to C.
void storeStagedTile(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                     const std::string &smemPtr);

/// This thread's cp.async copies of tile `t`'s A (swizzled, K-major) and B
/// (N-major atoms; none with TMA) for the first stage.
StageCopies aSwizzledCopies(KernelEmitter &k, const GemmConfig &c, const Tile &t, const std::string &tid,
                            const std::string &aAddr);
StageCopies bTileCopies(KernelEmitter &k, const GemmConfig &c, const Shape &s, const Tile &t, const std::string &tid,
                        const std::string &b0Addr, const std::string &b1Addr);

} // namespace moe::gpu_kernels::gemm::wgmma

#endif
