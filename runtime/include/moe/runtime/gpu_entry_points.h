/* gpu_entry_points.h - the runtime functions that generated GPU host code
 * calls besides MLIR's mgpu* ABI: declared once here, defined by the runtime
 * (src/cuda/mgpu_abi.cc, which includes this header, so a definition that
 * drifts from it does not compile), and typed for the compiler from these
 * declarations (passes/lib/Conversion/RuntimeAbi.h), so neither
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

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_GPU_ENTRY_POINTS_H */
