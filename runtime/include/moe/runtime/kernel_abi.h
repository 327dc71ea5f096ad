/* kernel_abi.h - the codes generated code passes to the runtime's kernels
 * (CPU: cpu_kernels.h) and bakes into its GPU kernels. Declared once here;
 * the compiler maps the moe dialect's enums onto them in one place
 * (dialect/include/moe/Dialect/MoE/IR/KernelAbi.h). Element types are
 * moe_dtype_t (dtype.h). */
#ifndef MOE_RUNTIME_KERNEL_ABI_H
#define MOE_RUNTIME_KERNEL_ABI_H

/* The score function of moe.topk, applied to the router's logits. */
typedef enum {
  MOE_SCORE_NONE = 0,
  MOE_SCORE_SOFTMAX = 1,
  MOE_SCORE_SIGMOID = 2,
} moe_score_t;

/* The FFN each expert of a fused dispatch -> experts -> combine applies. */
typedef enum {
  MOE_FFN_SWIGLU = 0,
  MOE_FFN_GEGLU = 1,
  MOE_FFN_MLP_RELU = 2,
  MOE_FFN_MLP_GELU = 3,
  MOE_FFN_MLP_SILU = 4,
  MOE_FFN_IDENTITY = 5, /* dispatch straight into combine: no FFN */
} moe_ffn_t;

/* The gradient block (spec, "Sharding"): the backward's sums over tokens
 * are formed per block of this many consecutive global tokens, and the block
 * partials added in block order, so that a mesh whose ranks hold whole
 * blocks computes gradients with the bits of one device. */
#define MOE_GRADIENT_BLOCK_TOKENS 128

/* The version of the contract between compiled code and the runtime's
 * kernels and collectives (their arguments and what they compute). An
 * artifact records the version it was compiled for, and a runtime refuses
 * any other: a kernel whose meaning changed under the same name would
 * otherwise compute something else without a word. Raise it with any such
 * change. 2: dense_grad's `results`, expert owners across replicas and FSDP
 * ranks in moe_cpu_moe_ffn_ep_grad, moe_comm_rows_before. 3: the cotangent's
 * dtype in moe_cpu_rmsnorm_grad (a bf16 input with an f32 gain has f32
 * outputs). 4: a train artifact's backward entry may take the train
 * forward's residuals after the cotangents (the signature's
 * backward.train_entry and backward.residuals). */
#define MOE_KERNEL_ABI_VERSION 4

/* Which cotangents a backward kernel forms (a bit mask): a mesh's backward
 * sums a parameter's cotangent over the gathered rows of every rank and the
 * inputs' over its own rows, with a call each. */
typedef enum {
  MOE_GRAD_INPUT = 1,  /* the per-token cotangent of the input */
  MOE_GRAD_WEIGHT = 2, /* the parameter's, summed over the tokens */
} moe_grad_results_t;

/* The reduction of a collective (collective_entry_points.h). */
typedef enum {
  MOE_REDUCE_SUM = 0,
  MOE_REDUCE_MAX = 1,
  MOE_REDUCE_MIN = 2,
} moe_reduction_t;

#endif /* MOE_RUNTIME_KERNEL_ABI_H */
