/* gpu_entry_points.h - the runtime functions that generated GPU host code
 * calls besides MLIR's mgpu* ABI: declared once here, defined by the runtime
 * (src/cuda/mgpu_abi.cc and src/cuda/expert_exchange.cc, which include
 * this header, so a definition that drifts from it does not compile), and
 * typed for the compiler from these declarations
 * (passes/lib/Conversion/RuntimeAbi.h), so neither
 * side spells a signature by hand. Valid only inside a layer's GPU call. */
#ifndef MOE_RUNTIME_GPU_ENTRY_POINTS_H
#define MOE_RUNTIME_GPU_ENTRY_POINTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The device address of a CUtensorMap for the [d2][d1][d0] tensor of 2-byte
 * elements (bf16 != 0: bfloat16, else float16) at device address `base`,
 * boxes of [box1][box0] elements; made once per tensor and cached. 0 with the
 * failure recorded in the call (which then launches nothing more). The
 * wgmma GEMM built with --gpu-gemm-tma loads its weights through it. */
uint64_t moeCudaTensorMap(uint64_t base, int64_t bf16, int64_t d0, int64_t d1, int64_t d2, int64_t box0, int64_t box1);

/* The device's multiprocessors, which a persistent GEMM (--gpu-gemm-persistent)
 * launches one block on each of; 1 outside a call. */
int64_t moeCudaMultiprocessors(void);

/* The expert-parallel exchange of a routed chain on a mesh, on the call's
 * NCCL communicator (docs/sharding.md, "Sharded cuda layers"). In this first
 * version the host reads the counts once per call and waits for each
 * exchange, so a sharded call is not one CUDA graph.
 *
 * moe_gpu_ep_plan: `counts` (device, i32[experts]) holds this rank's
 * assignments per expert for its `rows` tokens; they are all-gathered over
 * the world, the capacity applied in global order, and `counts` overwritten
 * with the rows this rank keeps per expert. Returns the plan's handle (-1 once
 * the call has failed). The axes (a MeshAxes mask) are the expert-parallel
 * group's. */
int64_t moe_gpu_ep_plan(int64_t counts, int64_t experts, int64_t k, double capacity, int64_t rows, int32_t axes);
/* The rows this rank sends (its kept assignments) and receives (for its experts). */
int64_t moe_gpu_ep_sent_rows(int64_t plan);
int64_t moe_gpu_ep_received_rows(int64_t plan);
/* The dispatch: `send_rows` / `send_weights` hold the kept rows and their
 * routing weights in expert order; they arrive grouped by local expert, each
 * expert's rows in global token order, in `recv_rows` / `recv_weights`;
 * `recv_counts` (i32[experts / shards]) gets the rows of each local expert,
 * `recv_perm` (i32[received]) the identity, for the grouped GEMMs. */
void moe_gpu_ep_dispatch(int64_t plan, int64_t send_rows, int64_t send_weights, int64_t recv_rows, int64_t recv_weights,
                         int64_t recv_counts, int64_t recv_perm, int64_t row_bytes, int64_t weight_bytes);
/* The return trip: the expert outputs (`expert_rows`, in the received order)
 * back to their tokens' ranks, into `kept_rows` in the order they were sent. */
void moe_gpu_ep_return(int64_t plan, int64_t expert_rows, int64_t kept_rows, int64_t row_bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_GPU_ENTRY_POINTS_H */
