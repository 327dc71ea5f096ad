/* cpu_kernels.h - the CPU kernel library compiled layers call.
 *
 * convert-moe-to-cpu-kernels lowers routing, expert and matrix ops to calls
 * of these functions (IREE-style microkernels). Every tensor is passed as the
 * address of its first element (row-major, contiguous) with its sizes and a
 * moe_dtype_t code, so one symbol serves every element type. Products and
 * scores are computed in f32 and rounded once to the output's type. The
 * kernels are multi-threaded (moe_cpu_set_num_threads, or MOE_NUM_THREADS)
 * and deterministic: same inputs, same bits, whatever the thread count.
 */
#ifndef MOE_RUNTIME_CPU_KERNELS_H
#define MOE_RUNTIME_CPU_KERNELS_H

#include "moe/runtime/kernel_abi.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[m, n] = x[m, k] * w[k, n]. */
void moe_cpu_dense(int64_t x, int64_t w, int64_t out, int64_t m, int64_t k, int64_t n, int32_t x_dtype, int32_t w_dtype,
                   int32_t out_dtype);

/* Per row of logits[rows, cols]: score (a moe_score_t), the k
 * largest (descending, ties to the lower index) into values[rows, k] (f32)
 * and indices[rows, k] (i32, 0-based), optionally renormalised, times scale. */
void moe_cpu_topk(int64_t logits, int64_t values, int64_t indices, int64_t rows, int64_t cols, int64_t k, int32_t score,
                  int32_t renormalize, double scale, int32_t dtype);

/* DeepSeek-V3 group-limited top-k: indices[rows, k] (i32, 0-based). */
void moe_cpu_group_topk(int64_t scores, int64_t indices, int64_t rows, int64_t cols, int64_t k, int64_t groups,
                        int64_t top_groups, int32_t dtype);

/* out[r, j] = x[r, idx[r, j]]; out has x's dtype. */
void moe_cpu_gather(int64_t x, int64_t idx, int64_t out, int64_t rows, int64_t cols, int64_t k, int32_t dtype);

/* The fused dispatch -> expert FFN -> combine: each token's k assignments go
 * to their experts (at most ceil(capacity * tokens * k / experts) per expert
 * when capacity > 0, in (token, slot) order), each expert applies its FFN
 * (kind: a moe_ffn_t) with
 * stacked weights w0/w1/w2 ([E, d, f], [E, d, f], [E, f, d]; mlp: w0, w1), and
 * out[t] = sum over slots j in order of weights[t, j] * y(t, j). */
void moe_cpu_moe_ffn(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2, int64_t out,
                     int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind, double capacity,
                     int32_t x_dtype, int32_t weights_dtype, int32_t w_dtype, int32_t out_dtype);

/* experts * sum_e f_e * P_e into a 0-d f32 tensor. */
void moe_cpu_load_balance_loss(int64_t probs, int64_t indices, int64_t out, int64_t tokens, int64_t experts, int64_t k,
                               int32_t dtype);

/* mean over rows of logsumexp(row)^2 into a 0-d f32 tensor. */
void moe_cpu_z_loss(int64_t logits, int64_t out, int64_t rows, int64_t cols, int32_t dtype);

/* The backward kernels (moe-differentiate's ops). Each takes the forward's
 * operands and the cotangents of its results and writes the cotangents of
 * its operands, computed in f32. Sums over tokens (the weights' cotangents)
 * are formed per MOE_GRADIENT_BLOCK_TOKENS block and added in block order. */

/* dx[m, k] = dy[m, n] * w^T; dw[k, n] = x^T * dy; `results` (moe_grad_results_t
 * bits) says which of the two to form (the other buffer is left as it is). */
void moe_cpu_dense_grad(int64_t x, int64_t w, int64_t dy, int64_t dx, int64_t dw, int64_t m, int64_t k, int64_t n,
                        int32_t x_dtype, int32_t w_dtype, int32_t dy_dtype, int32_t results);

/* The cotangents of rmsnorm(x[rows, cols], w[cols]; eps); dy has x's dtype. */
void moe_cpu_rmsnorm_grad(int64_t x, int64_t w, int64_t dy, int64_t dx, int64_t dw, int64_t rows, int64_t cols,
                          double eps, int32_t x_dtype, int32_t w_dtype, int32_t dy_dtype);

/* The cotangent of moe_cpu_topk's values (dvalues[rows, k], f32) back into
 * its logits, at the experts it chose (indices); dlogits has logits' dtype. */
void moe_cpu_topk_grad(int64_t logits, int64_t indices, int64_t dvalues, int64_t dlogits, int64_t rows, int64_t cols,
                       int64_t k, int32_t score, int32_t renormalize, double scale, int32_t dtype);

/* dx[rows, cols] = dy[rows, k] added back at idx (dtype: both's). */
void moe_cpu_gather_grad(int64_t idx, int64_t dy, int64_t dx, int64_t rows, int64_t cols, int64_t k, int32_t dtype);

/* The backward of moe_cpu_moe_ffn, from dout[tokens, d] (dout_dtype): dx
 * (x_dtype), dweights[tokens, k] (weights_dtype) and the stacked weights'
 * cotangents dw0, dw1, dw2 (w_dtype; as many as the FFN has). The forward's
 * plan: a dropped assignment gets zero and passes nothing on. */
void moe_cpu_moe_ffn_grad(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2, int64_t dout,
                          int64_t dx, int64_t dweights, int64_t dw0, int64_t dw1, int64_t dw2, int64_t tokens,
                          int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind, double capacity,
                          int32_t x_dtype, int32_t weights_dtype, int32_t w_dtype, int32_t dout_dtype);

/* d load_balance_loss / d probs times dloss (a 0-d f32), through probs only. */
void moe_cpu_load_balance_loss_grad(int64_t probs, int64_t indices, int64_t dloss, int64_t dprobs, int64_t tokens,
                                    int64_t experts, int64_t k, int32_t dtype);

/* d z_loss / d logits times dloss (a 0-d f32). */
void moe_cpu_z_loss_grad(int64_t logits, int64_t dloss, int64_t dlogits, int64_t rows, int64_t cols, int32_t dtype);

/* Threads the kernels use (default: MOE_NUM_THREADS, else all hardware threads). */
void moe_cpu_set_num_threads(int threads);
int moe_cpu_get_num_threads(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_CPU_KERNELS_H */
