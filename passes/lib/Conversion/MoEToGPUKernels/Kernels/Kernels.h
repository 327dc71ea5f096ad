//===- Kernels.h - the GPU kernel generators --------------------*- C++ -*-===//
//
// Each function returns one `gpu.func` as MLIR text, specialised on what its
// config names; `name` fields must be unique per specialisation (the pass
// uses them to share one kernel between identical uses).
//
// Buffers are flat `memref<?xT>`; element types are spelled as in MLIR
// ("bf16", "f16", "f32", "i32").
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_KERNELS_H
#define MOE_CONVERSION_GPUKERNELS_KERNELS_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/kernel_abi.h"

#include <cstdint>
#include <string>

namespace moe::gpu_kernels {

/// The block of the kernels whose threads stride over their work by the block
/// size (expert counts, losses): launcher and kernel must agree on it.
constexpr int64_t kStridedBlock = 256;

/// C[rows, n] = act(A[rows(, gathered), k] . B[e]) (.* A . B1[e] for GLUs) (.* w[row]),
/// over a tile schedule. The signature is the same for every variant:
///   (A, B0, B1: memref<?xT>, C: memref<?xOut>, perm, tileExpert, tileRow,
///    offsets, numTiles: memref<?xi32>, w: memref<?xW>, rows: index, topK: index)
/// and, with tmaB, two i64 tensor-map addresses after them; warp-specialised,
/// `%tileCounter: memref<?xi32>` last (one i32, zero at the launch: the tile
/// scheduler's counter).
/// Grid: (tiles * ceil(n / blockN()), 1, 1), block: threads(); the kernel
/// orders the blocks in groups of row tiles for L2 reuse.
struct GemmConfig {
  std::string elt = "bf16", out = "bf16", weight = "f32";
  int64_t k = 0, n = 0;
  /// Two B matrices (gate, up) combined as act(A.B0) .* (A.B1) in the epilogue.
  bool glu = false;
  /// relu, gelu, silu or identity, applied to A.B0.
  std::string act = "identity";
  /// A's row for output row p is perm[p] / topK (the dispatch gather); else p.
  bool gatherRows = false;
  /// Output row p is multiplied by w[perm[p]] (the routing weight).
  bool scaleRows = false;
  /// Tiles from the device-built schedule (tileExpert, tileRow, offsets,
  /// numTiles); otherwise tile i covers rows [i*BM, min(rows, (i+1)*BM)) of expert 0.
  bool grouped = false;
  /// Tensor cores (mma.sync m16n8k16), or an FMA kernel (f32, odd shapes).
  bool tensorCores = true;
  /// Tensor cores on sm_90a: wgmma (warpgroup MMA reading both operands
  /// from shared memory) instead of mma.sync; needs kTile 64.
  bool wgmma = false;
  /// wgmma: the columns of B a block multiplies (the instruction's N), 128
  /// (3 stages of 32 KiB, two blocks an SM, each stage waited for) or 256
  /// (4 stages of 48 KiB, one block an SM, one stage's wgmma left in flight).
  int64_t wgmmaN = 128;
  /// wgmma: the epilogue writes the tile to shared memory and stores it to C
  /// in 16-byte row chunks, instead of each thread storing its element pairs.
  bool stagedEpilogue = false;
  /// wgmma: B (the weights) arrives by TMA, issued by one thread and
  /// counted by an mbarrier per stage; the kernel takes two more arguments,
  /// `%tmB0, %tmB1: i64`, the device addresses of B0's and B1's tensor maps
  /// (3-D: [experts][k][n], boxes of 64 x 64, 128-byte swizzle).
  bool tmaB = false;
  /// wgmma, 256 columns: one block an SM walks its tiles as one stream of k
  /// steps (copies running ahead across tiles), its epilogue through shared
  /// memory past the stages, 64 rows at a time; the grid is the SM count.
  bool persistent = false;
  /// wgmma, 256 columns, 16-bit outputs, B n-major without TMA: the
  /// warp-specialised persistent kernel (GemmWgmmaWarpSpecialized.cpp). One
  /// block an SM of three warpgroups: a producer issuing the stages' cp.async
  /// (its arrival on a stage's mbarrier counts them), two consumers issuing
  /// wgmma on 64 rows each and releasing each stage by another mbarrier; the
  /// producer runs ahead across tiles, so the next tile's stages load while
  /// the consumers store this one's epilogue. The grid is the SM count; the
  /// producers take tile numbers from a counter (the last argument).
  bool warpSpecialized = false;
  /// wgmma, one block a tile, no TMA or GLU: B lies k-major, [experts][n][k]
  /// (a weight read through its transpose, the backward's dY . W^T), its
  /// rows 128-byte lines swizzled as A's, wgmma's untransposed B; so the
  /// backward multiplies by W^T without writing W^T. With bSplitK > 0, B0
  /// holds k in [0, bSplitK) ([experts][n][bSplitK]) and B1 the rest
  /// ([experts][n][k - bSplitK]): [dG | dU] . [W_gate; W_up]^T. bSplitK is a
  /// multiple of 64.
  bool kMajorB = false;
  int64_t bSplitK = 0;
  /// Grouped with gatherRows (the forward's up GEMM of a train forward): the
  /// epilogue also stores A.B0 (and a GLU's A.B1) before the activation, as
  /// the out type, into `%R` (one more argument after `%topK`): the kept up
  /// products, row perm[p] (the assignment), [A.B0 | A.B1] (2n wide; n
  /// without a GLU).
  bool keepUp = false;
  /// wgmma, one block a tile, a dense product (not grouped, no GLU,
  /// activation, row scale, TMA or k-major B; splitKFits): k's steps in
  /// `kChunks` chunks, chunk z = steps [z * steps / kChunks, (z + 1) * steps
  /// / kChunks), each summed from zero and the chunk sums added in z order.
  /// So a block that does the whole product and the split form (`splitK`)
  /// give the same bits: the sum's order is fixed by the shape, never by the
  /// token count or the SMs (layout and batch invariance). 0: one sum.
  int64_t kChunks = 0;
  /// With kChunks: block (x, z) of a grid (tiles, kChunks) multiplies chunk
  /// z of tile x and stores it (f32) at rows z * rows + p of `%C`
  /// ([kChunks][rows][n]); splitKSumKernel adds them in z order. For
  /// products whose tiles leave most SMs idle (a router at decode).
  bool splitK = false;
  /// Tensor cores: the k depth of a pipeline stage, 32 (4 stages, 64 KiB of
  /// shared memory) or 64 (3 stages, 96 KiB); two blocks fit an SM either way.
  int64_t kTile = 32;
  int64_t stages() const { return wgmma && wgmmaN == 256 ? 4 : kTile == 64 ? 3 : 4; }
  /// Bytes of one stage (tensor cores): a 128 x kTile tile of A and a kTile x
  /// (128, or wgmmaN) tile of B.
  int64_t stageBytes() const { return 128 * kTile * 2 + kTile * (wgmma ? wgmmaN : 128) * 2; }
  /// Bytes of a row of the staged epilogue's tile in shared memory: the
  /// block's outputs, padded by 16 bytes (so the 8 rows a warp writes at once
  /// fall in different banks).
  int64_t stagedRowBytes() const;
  /// Bytes past the stages and the epilogue rows: one 8-byte mbarrier a stage
  /// with TMA; warp-specialised, a full and an empty one a stage, each
  /// stage's tile (4 x i32) and two fetched tile numbers.
  int64_t barrierBytes() const {
    return warpSpecialized ? 2 * stages() * 8 + stages() * 16 + 8 : tmaB ? stages() * 8 : 0;
  }
  /// The persistent kernel's 64 epilogue rows; the warp-specialised one's
  /// 64 rows of up to 128 columns for each consumer warpgroup.
  int64_t epilogueBytes() const {
    return warpSpecialized ? 2 * 64 * epilogueRowBytes() : persistent ? 64 * stagedRowBytes() : 0;
  }
  /// Warp-specialised: the columns a consumer stages at once, and the bytes of such a row (padded by 16).
  int64_t epilogueColumns() const { return blockN() < 128 ? blockN() : 128; }
  int64_t epilogueRowBytes() const;

  std::string name() const;
  int64_t blockM() const { return tensorCores ? 128 : 64; }
  /// Output columns per block.
  int64_t blockN() const {
    int64_t b = wgmma ? wgmmaN : 128;
    return tensorCores ? (glu ? b / 2 : b) : 64;
  }
  int64_t threads() const { return warpSpecialized ? 384 : 256; }
  /// The grid is min(blocks, the SM count): each block walks its tiles.
  bool oneBlockAnSM() const { return persistent || warpSpecialized; }
  /// Column blocks of the grid (the kernel derives the same number).
  int64_t columnBlocks() const { return (n + blockN() - 1) / blockN(); }
  /// Dynamic shared memory bytes per block.
  int64_t sharedBytes() const;
};

/// y[rows, n] = x[rows, k] . w[k, n] for products with few output columns (a
/// router's experts): a block of kThreads owns tokensPerBlock() tokens and
/// splits k among its threads in 16-byte pieces; the partial sums are reduced
/// across each warp, then across the warps in order (NarrowDense.cpp).
///   (%x: memref<?xT>, %w: memref<?xT>, %y: memref<?xOut>, %rows: index)
/// Grid: (ceil(rows / tokensPerBlock()), 1, 1), block: kThreads.
struct NarrowDenseConfig {
  static constexpr int64_t kMaxColumns = 32, kThreads = 256;
  /// Partial sums a thread carries (tokens x n): its registers' budget.
  static constexpr int64_t kMaxSums = 64;
  std::string elt = "bf16", out = "bf16";
  int64_t k = 0, n = 0;
  std::string name() const;
  int64_t tokensPerBlock() const;
  /// n <= kMaxColumns and k a whole number of the block's 16-byte pieces.
  static bool fits(const std::string &elt, int64_t k, int64_t n);
};
std::string narrowDenseKernel(const NarrowDenseConfig &config);

/// out[i] = sum over z in order of partials[z * cells + i] (a split-k GEMM's
/// f32 partial sums, GemmConfig::splitK), rounded once to `out`; a thread an
/// element.  (%partials: memref<?xf32>, %out: memref<?xOut>, %cells: index,
/// %splits: index). Grid: ceil(cells / 256), block: 256.
std::string splitKSumKernel(const std::string &out);
std::string splitKSumName(const std::string &out);
/// Whether a GEMM of `c`'s form may be summed in k chunks and split along
/// them (GemmConfig::kChunks): wgmma, dense, no epilogue beyond the store,
/// at most 256 columns (a router: the whole chunk sums stay in registers
/// beside the accumulators), at least 2 * kSplitKMinSteps k steps.
bool splitKFits(const GemmConfig &c);
/// The fewest k steps (of 64) a chunk takes: fewer leave the pipeline no
/// stages to overlap.
constexpr int64_t kSplitKMinSteps = 2;
/// The SMs the chunks are cut for: an H100 SXM's or an H200's 132. A
/// constant, not the device's count: the chunks fix the sum's order, which
/// must not depend on the GPU.
constexpr int64_t kSplitKSMs = 132;
/// The chunks of `c`'s k (splitKFits): min(steps / kSplitKMinSteps,
/// kSplitKSMs / column blocks), so one row tile's split fills the SMs.
int64_t splitKChunks(const GemmConfig &c);
/// The most rows (tokens) for which the split form of `c` (kChunks set) is
/// expected to beat the whole one, by the cost model of docs/gpu.md
/// ("Split-k"); 0 where it never does. Both give the same bits.
int64_t splitKMaxRows(const GemmConfig &c);

/// Whether the tensor-core GEMM can take these sizes and types.
bool tensorCoresFit(const std::string &elt, const std::string &weightElt, int64_t k, int64_t n, int64_t kTile);

std::string gemmKernel(const GemmConfig &config);
/// The wgmma variant (GemmWgmma.cpp); gemmKernel calls it for `wgmma` configs.
std::string wgmmaGemmKernel(const GemmConfig &config);
/// Its persistent form (GemmWgmmaPersistent.cpp), for `persistent` configs.
std::string persistentWgmmaGemmKernel(const GemmConfig &config);
/// Its warp-specialised form (GemmWgmmaWarpSpecialized.cpp), for `warpSpecialized` configs.
std::string warpSpecializedWgmmaGemmKernel(const GemmConfig &config);

// --- routing (Routing.cpp): one warp per token --------------------------------

/// The routing kernels' blocks: 256 threads, a warp per token.
constexpr int64_t kRoutingThreads = 256;
constexpr int64_t kTokensPerRoutingBlock = kRoutingThreads / 32;

/// Scores (none / softmax / sigmoid), top-k (ties to the lower expert),
/// renormalisation and scaling in one pass over each token's logits.
/// A warp owns a token (k <= 32); larger k falls back to a thread a token.
///   (%logits: memref<?xL>, %values: memref<?xV>, %indices: memref<?xi32>, %rows: index)
struct TopKConfig {
  std::string logits = "f32", values = "f32";
  int64_t experts = 0, k = 0;
  moe_score_t score = MOE_SCORE_NONE;
  bool renormalize = false;
  double scale = 1.0;
  std::string name() const;
  /// Tokens a block of kRoutingThreads threads routes.
  int64_t tokensPerBlock() const { return k <= 32 ? kTokensPerRoutingBlock : kRoutingThreads; }
};
std::string topKKernel(const TopKConfig &config);

/// DeepSeek's group-limited top-k: groups ranked by the sum of their best
/// two scores, the best `topGroups` kept, top-k among their experts. A warp
/// owns a token (k <= 32); larger k falls back to a thread a token.
///   (%scores: memref<?xS>, %indices: memref<?xi32>, %rows: index)
struct GroupTopKConfig {
  std::string scores = "f32";
  int64_t experts = 0, k = 0, groups = 0, topGroups = 0;
  std::string name() const;
  int64_t tokensPerBlock() const { return k <= 32 ? kTokensPerRoutingBlock : kRoutingThreads; }
};
std::string groupTopKKernel(const GroupTopKConfig &config);

/// out[t, j] = in[t, idx[t, j]]; one thread per element.
///   (%in: memref<?xT>, %indices: memref<?xi32>, %out: memref<?xT>, %rows: index)
struct GatherConfig {
  std::string elt = "f32";
  int64_t cols = 0, k = 0;
  std::string name() const;
};
std::string gatherKernel(const GatherConfig &config);

/// Mean over tokens of logsumexp(logits)^2; one block of 256 threads.
///   (%logits: memref<?xL>, %out: memref<?xf32>, %rows: index)
std::string zLossKernel(const std::string &logitsElt, int64_t experts);
std::string zLossName(const std::string &logitsElt, int64_t experts);
/// Switch's load-balancing loss E * sum_e f_e P_e; one block of 256 threads.
///   (%probs: memref<?xP>, %indices: memref<?xi32>, %out: memref<?xf32>, %rows: index)
std::string loadBalanceKernel(const std::string &probsElt, int64_t experts, int64_t k);
std::string loadBalanceName(const std::string &probsElt, int64_t experts, int64_t k);

// --- dispatch and combine (Dispatch.cpp) --------------------------------------

/// The device-side dispatch plan of one routed chain.
struct DispatchConfig {
  int64_t experts = 0, k = 0;
  double capacity = 0;  ///< 0: dropless
  int64_t blockM = 128; ///< the GEMMs' rows per tile
  /// On a mesh: the counts the schedule ran on are already the kept ones
  /// (moe_gpu_ep_plan applied the capacity in global order), so the permute
  /// keeps offsets[e + 1] - offsets[e] rows of expert e.
  bool keptCounts = false;
  /// The backward's layout: each expert's rows start at a multiple of blockM
  /// (offsets[e], the sum of the earlier counts rounded up) and end at
  /// ends[e + 1] = offsets[e] + counts[e]; the schedule kernel takes `%ends`
  /// after its other arguments, and the GEMMs take it for their offsets.
  bool padded = false;
  std::string suffix() const;
  /// The schedule kernel's block: one thread per expert.
  static constexpr int64_t scheduleThreads = 1024;
  /// The permute kernel's block, whose threads split an expert's assignments.
  static constexpr int64_t permuteThreads = 1024;
};
/// counts[e] = min(#assignments to e, capacity limit); grid (experts), 256 threads.
///   (%indices: memref<?xi32>, %counts: memref<?xi32>, %rows: index)
std::string countKernel(const DispatchConfig &config);
/// offsets (exclusive sums of counts, experts + 1 entries) and the GEMM tile
/// list; one block of scheduleThreads threads (experts <= scheduleThreads).
///   (%counts, %offsets, %tileExpert, %tileRow, %numTiles: memref<?xi32>)
std::string scheduleKernel(const DispatchConfig &config);
/// perm[offsets[e] + r] = the r-th kept assignment of expert e (in token
/// order), slotPos[a] = its sorted row or -1 if dropped; grid (experts), 1024 threads.
///   (%indices, %offsets, %perm, %slotPos: memref<?xi32>, %rows: index)
std::string permuteKernel(const DispatchConfig &config);

/// The send buffers of an expert-parallel dispatch: row r of `out` is x's
/// row perm[r] / k and outW[r] = w[perm[r]], for the `rows` kept assignments
/// in expert order; a thread 16 bytes of a row.
///   (%x: memref<?xX>, %w: memref<?xW>, %perm: memref<?xi32>, %out: memref<?xX>, %outW: memref<?xW>, %rows: index)
struct PackConfig {
  std::string x = "bf16", w = "f32";
  int64_t hidden = 0, k = 0;
  std::string name() const;
  int64_t width() const; ///< elements a thread
};
std::string packKernel(const PackConfig &config);

/// out[t, c] = sum over slots s in order of y[slotPos[t, s], c] (already
/// weighted), or of w[t, s] * x[t, c] when the chain has no expert FFN.
///   (%y: memref<?xY>, %slotPos: memref<?xi32>, %w: memref<?xW>, %x: memref<?xX>, %out: memref<?xO>, %rows: index)
struct CombineConfig {
  std::string y = "bf16", w = "f32", x = "bf16", out = "bf16";
  int64_t hidden = 0, k = 0;
  bool identity = false;
  std::string name() const;
  /// Consecutive columns a thread sums: 16 bytes of the widest type, or 1
  /// where `hidden` is not a multiple of that. The grid covers rows * hidden / width.
  int64_t width() const;
};
std::string combineKernel(const CombineConfig &config);

// --- the backward (Backward.cpp) ---------------------------------------------

/// Weight cotangents: C[s][m][n] = sum over the rows r of segment s, in
/// order, of A(r, m) * B(r, n), accumulated in f32, where
///   A(r, m) = A[ra * lda + m], ra = perm[r] / topK with gatherA, else r;
///   B(r, n) = B[rb * ldb + bColumn + n] (times w[perm[r]] with scaleB),
///             rb = perm[r] / topK with gatherB, else r;
/// segment s is rows [offsets[s], ends[s + 1]) of the padded layout
/// (`segments` of them), or [0, rows) with one segment. No atomics: a block
/// owns a tile of C and walks its rows in order: 64 x 64, 16 rows at a
/// time, with FMA, or 128 x 128, 32 rows at a time, on tensor cores
/// (WeightGradMma.cpp).
///   (%A: memref<?xA>, %B: memref<?xB>, %C: memref<?xOut>, %perm, %offsets,
///    %ends: memref<?xi32>, %w: memref<?xW>, %rows: index, %topK: index)
/// Grid: (blocks()), 256 threads, sharedBytes() of dynamic shared memory.
struct WeightGradConfig {
  std::string a = "bf16", b = "bf16", out = "bf16", w = "f32";
  int64_t m = 0, n = 0, lda = 0, ldb = 0, bColumn = 0, segments = 1;
  bool gatherA = false, gatherB = false, scaleB = false;
  /// mma.sync on 16-bit operands (see tensorCoresFit); else FMA in f32.
  bool tensorCores = false;
  /// Tensor cores on sm_90a: wgmma reading both operands from shared memory
  /// (WeightGradWgmma.cpp), a block 128 x wgmmaN of C[s]: 128 (3 stages of
  /// 32 KiB, two blocks an SM) or 256 (4 stages of 48 KiB, one).
  bool wgmma = false;
  int64_t wgmmaN = 128;
  /// The gather's slots per token when known here (0: the %topK argument),
  /// so the wgmma kernel divides by a constant.
  int64_t topK = 0;
  /// Whether the tensor-core kernel takes these types and sizes: A and B of
  /// one 16-bit type, no scaleB, whole 16-byte chunks in every row.
  bool tensorCoresFit() const;
  std::string name() const;
  int64_t tileM() const { return tensorCores ? 128 : 64; }
  int64_t tileN() const { return wgmma ? wgmmaN : tileM(); }
  int64_t blocks() const { return segments * ((m + tileM() - 1) / tileM()) * ((n + tileN() - 1) / tileN()); }
  int64_t sharedBytes() const;
};
std::string weightGradKernel(const WeightGradConfig &config);
class KernelEmitter;
/// What both weight-cotangent kernels read first: their block's segment `s`,
/// the first row `m0` and column `n0` of its tile of C[s], and the segment's
/// rows [lo, hi).
struct WeightGradTile {
  std::string s, m0, n0, lo, hi;
};
WeightGradTile openWeightGradTile(KernelEmitter &k, const WeightGradConfig &config);
/// The tensor-core forms (weightGradKernel calls them for `tensorCores`
/// configs): mma.sync, or wgmma with `wgmma`.
std::string weightGradMmaKernel(const WeightGradConfig &config);
std::string weightGradWgmmaKernel(const WeightGradConfig &config);

/// out[e][rowOffset + c][r] = in[e][r][c], for `in` [experts][rows][cols]
/// and `out` [experts][outRows][rows]: 32 x 32 tiles through shared memory,
/// so both the loads and the stores are coalesced.
///   (%in: memref<?xT>, %out: memref<?xT>)
/// Grid: (blocks()), 256 threads.
struct TransposeConfig {
  std::string elt = "bf16";
  int64_t experts = 1, rows = 0, cols = 0, outRows = 0, rowOffset = 0;
  std::string name() const;
  int64_t blocks() const { return experts * ((rows + 31) / 32) * ((cols + 31) / 32); }
};
std::string transposeKernel(const TransposeConfig &config);

/// The expert FFN's activation backward, a block per assignment a (`%rows`
/// of them): its row p = slotPos[a] of the padded layout (none if dropped),
/// g = G[p] and u = U[p] (the up products, f32), dHu[p] (the cotangent of
/// the down product's input before the routing weight), w = w[a]:
///   h = act(g) (.* u) rounded to `elt`, H[p] = h,
///   (H[p] = w h rounded to `elt` with scaleHidden: the down weights'
///   cotangent's rows with the routing weight applied),
///   dw[a] = sum_j h_j dHu_j (0 for a dropped assignment),
///   dGU[p] = [w dHu .* u .* act'(g) | w dHu .* act(g)] (GLU), or w dHu .* act'(g).
///   (%G, %U, %dHu: memref<?xf32>, %w: memref<?xW>, %slotPos: memref<?xi32>,
///    %dGU: memref<?xT>, %H: memref<?xT>, %dw: memref<?xW>, %rows: index)
/// Grid: (rows), 256 threads.
struct FfnActivationGradConfig {
  std::string elt = "bf16", w = "f32";
  int64_t inner = 0;
  bool glu = true;
  bool scaleHidden = false;
  std::string act = "silu";
  /// %G and %U are the forward's kept up products (elt, one row of
  /// [G | U] an assignment, read at the block's assignment) rather than the
  /// recomputed f32 products in the padded plan's rows.
  bool keptUp = false;
  std::string name() const;
};
std::string ffnActivationGradKernel(const FfnActivationGradConfig &config);

/// moe.topk_grad, a thread per token: the values' cotangent through the
/// scale, the renormalisation and the score function, into the logits.
///   (%logits: memref<?xL>, %indices: memref<?xi32>, %dvalues: memref<?xf32>, %out: memref<?xL>, %rows: index)
std::string topKGradKernel(const TopKConfig &config);
std::string topKGradName(const TopKConfig &config);

/// moe.gather_grad, a thread per element of the result [rows, cols]:
/// out[t, c] = sum over j with indices[t, j] = c of dy[t, j].
///   (%indices: memref<?xi32>, %dy: memref<?xT>, %out: memref<?xOut>, %rows: index)
std::string gatherGradKernel(const std::string &dy, const std::string &out, int64_t cols, int64_t k);
std::string gatherGradName(const std::string &dy, const std::string &out, int64_t cols, int64_t k);

/// moe.z_loss_grad, a thread per token: 2 lse(x) softmax(x) dloss / rows.
///   (%logits: memref<?xL>, %dloss: memref<?xf32>, %out: memref<?xL>, %rows: index)
std::string zLossGradKernel(const std::string &elt, int64_t experts);
std::string zLossGradName(const std::string &elt, int64_t experts);

/// moe.load_balance_loss_grad from the experts' assignment counts, a
/// thread per element: dloss * E * counts[e] / (rows * k) / rows.
///   (%counts: memref<?xi32>, %dloss: memref<?xf32>, %out: memref<?xP>, %rows: index)
std::string loadBalanceGradKernel(const std::string &elt, int64_t experts, int64_t k);
std::string loadBalanceGradName(const std::string &elt, int64_t experts, int64_t k);

/// dx = dy . w^T for a product whose operands differ in type (a router's
/// f32 logits and bf16 weights), a thread per element of dx [rows, k]:
///   (%dy: memref<?xDY>, %w: memref<?xW>, %dx: memref<?xX>, %rows: index)
/// Each f32 row of %x [rows][n] as two rows' worth of `elt`: out[r] =
/// [high | low], high = x rounded to elt, low = (x - high) rounded: high + low
/// keeps ~16 of f32's 24 bits, so a tensor-core GEMM over [high | low] .
/// [W; W] (k = 2n, f32 sums) multiplies the f32 x nearly exactly (moe.dense_grad's
/// f32 cotangent of a 16-bit layer's router).
///   (%x: memref<?xf32>, %out: memref<?xT>, %rows: index); a thread an element.
/// out[r][j] = in[r][j] + in[r][n + j] rounded to `elt`: the two halves
/// of a product with [high | low] (splitHighLowKernel) added in f32.
///   (%in: memref<?xf32>, %out: memref<?xT>, %rows: index); a thread an element.
std::string sumHalvesKernel(const std::string &elt, int64_t n);
std::string sumHalvesName(const std::string &elt, int64_t n);
std::string splitHighLowKernel(const std::string &elt, int64_t n);
std::string splitHighLowName(const std::string &elt, int64_t n);
std::string denseInputGradKernel(const std::string &dy, const std::string &w, const std::string &dx, int64_t k,
                                 int64_t n);
std::string denseInputGradName(const std::string &dy, const std::string &w, const std::string &dx, int64_t k,
                               int64_t n);

/// moe.rmsnorm_grad in two kernels. Rows, a warp a row of [rows, cols]:
/// s = 1 / sqrt(mean(x^2) + eps), dx = dy w s - x s^3 <dy w, x> / cols, and
/// the gain's per-row terms dy x s (f32) for the second:
///   (%x: memref<?xX>, %w: memref<?xW>, %dy: memref<?xDY>, %dx: memref<?xX>, %terms: memref<?xf32>, %rows: index)
/// Gain, a thread a column: dw = the terms summed per gradient block of rows,
/// the partials in block order (the CPU kernel's order):
///   (%terms: memref<?xf32>, %dw: memref<?xW>, %rows: index)
struct RMSNormGradConfig {
  std::string x = "f32", w = "f32", dy = "f32";
  int64_t cols = 0;
  double eps = 1e-6;
  std::string name() const;
};
std::string rmsNormGradRowsKernel(const RMSNormGradConfig &config);
std::string rmsNormGradGainKernel(const RMSNormGradConfig &config);
std::string rmsNormGradGainName(const RMSNormGradConfig &config);

/// The training step's kernels, launched by the runtime (their names,
/// arguments and blocks: moe/runtime/train_kernels.h). AdamW, a thread an
/// element, for a parameter of `param` and a gradient of `grad`; and the
/// squared error's cotangent and row sums, a warp a row of `elt`.
std::string adamwKernel(const std::string &param, const std::string &grad);
std::string squaredErrorKernel(const std::string &elt);

} // namespace moe::gpu_kernels

#endif
