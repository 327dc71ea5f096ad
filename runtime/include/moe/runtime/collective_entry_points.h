/* collective_entry_points.h - the collectives compiled CPU code calls.
 *
 * convert-moe-to-cpu-kernels lowers moe.all_gather, moe.all_reduce,
 * moe.reduce_scatter, moe.all_to_all and the expert-parallel routed chain to
 * these. They run on the communicator of the current call (Layer::run), over
 * the group `axes` (a moe::runtime::MeshAxes mask) of this rank. Buffers are
 * addresses, as in cpu_kernels.h. A failed collective (time limit, dead peer)
 * is recorded in the call, which returns the error; the call's later
 * collectives then do nothing. */
#ifndef MOE_RUNTIME_COLLECTIVE_ENTRY_POINTS_H
#define MOE_RUNTIME_COLLECTIVE_ENTRY_POINTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out = every group rank's `bytes` at `in`, concatenated in group order. */
void moe_comm_all_gather(int64_t in, int64_t out, int64_t bytes, int32_t axes);

/* The rows of a [rows, ...] tensor summed over the group (the gathered size
 * of moe_comm_all_gather_rows). */
int64_t moe_comm_gathered_rows(int64_t rows, int32_t axes);

/* The rows of the group's ranks before this one (where this rank's `rows`
 * start in moe_comm_all_gather_rows' result). */
int64_t moe_comm_rows_before(int64_t rows, int32_t axes);

/* out = every group rank's `rows` rows of `row_bytes` bytes, in group order
 * (rows may differ between ranks). */
void moe_comm_all_gather_rows(int64_t in, int64_t out, int64_t rows, int64_t row_bytes, int32_t axes);

/* out = the elementwise reduction (a moe_reduction_t) of every group rank's
 * `elements` of `dtype`, formed in f64 in group order, rounded once. */
void moe_comm_all_reduce(int64_t in, int64_t out, int64_t elements, int32_t dtype, int32_t reduction, int32_t axes);

/* out = this rank's chunk (group index i: elements [i * chunk, (i+1) * chunk))
 * of the reduction of every rank's `chunk * group size` elements. */
void moe_comm_reduce_scatter(int64_t in, int64_t out, int64_t chunk, int32_t dtype, int32_t reduction, int32_t axes);

/* Chunk i (bytes [i * chunk, (i+1) * chunk)) of `in` to group rank i; out
 * holds the chunks received, in group order. */
void moe_comm_all_to_all(int64_t in, int64_t out, int64_t chunk, int32_t axes);

/* The expert-parallel dispatch -> expert FFN -> combine (moe_cpu_moe_ffn's
 * arguments; w0..w2 hold this rank's experts / ep_size experts): the
 * per-(rank, expert) counts are all-gathered over the world, each kept row
 * goes to its expert's rank in the `axes` group (an all-to-all), the expert
 * outputs come back (an all-to-all) and each token sums its slots in order.
 * Bitwise equal to moe_cpu_moe_ffn on the global batch. */
void moe_cpu_moe_ffn_ep(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2, int64_t out,
                        int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind, double capacity,
                        int32_t x_dtype, int32_t weights_dtype, int32_t w_dtype, int32_t out_dtype, int32_t axes);

/* The backward of moe_cpu_moe_ffn_ep (moe_cpu_moe_ffn_grad's arguments; w0..w2
 * and dw0..dw2 hold this rank's experts): the counts all-gathered as the
 * forward's, each kept row goes with its cotangent and combine weight to its
 * expert's rank (an all-to-all), the experts' weight cotangents sum the rows
 * they received in global token order (blocks of MOE_GRADIENT_BLOCK_TOKENS
 * global tokens), the rows' cotangents and the combine weights' come back (an
 * all-to-all) and each token sums its slots in order. Bitwise equal to
 * moe_cpu_moe_ffn_grad on the global batch. */
void moe_cpu_moe_ffn_ep_grad(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                             int64_t dout, int64_t dx, int64_t dweights, int64_t dw0, int64_t dw1, int64_t dw2,
                             int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind,
                             double capacity, int32_t x_dtype, int32_t weights_dtype, int32_t w_dtype,
                             int32_t dout_dtype, int32_t axes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_COLLECTIVE_ENTRY_POINTS_H */
