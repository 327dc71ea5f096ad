// train_kernels.h - the GPU kernels of a training step that a CUDA train
// artifact carries besides its layer (moec build --train --target=sm_*): the
// loss's cotangent and AdamW, which the runtime launches itself between the
// layer's forward and backward calls so that a step's gradients and optimizer
// state never leave the device. One declaration of the contract for the
// compiler, which generates and compiles the kernels, and the runtime, which
// loads and launches them.
//
// Arguments: a `memref<?xT>` is its descriptor, five words (allocated and
// aligned pointer, offset 0, size, stride 1: memrefArgument); `index` is an
// int64; f32 is a float.
#ifndef MOE_RUNTIME_TRAIN_KERNELS_H
#define MOE_RUNTIME_TRAIN_KERNELS_H

#include "moe/runtime/dtype.h"

#include <array>
#include <cstdint>
#include <string>

namespace moe::runtime {

/// The artifact's sections holding the kernels: PTX (any GPU of the
/// target's family) and, when the toolkit's ptxas was found, a cubin for the
/// target's chip.
inline constexpr const char *kTrainKernelsPtxSection = "code.train.ptx";
inline constexpr const char *kTrainKernelsCubinSection = "code.train.cubin";

/// `moe_adamw_<param>_<grad>(param: memref<?xP>, grad: memref<?xG>, master,
/// m, v: memref<?xf32>, n: index, decay, oneMinusBeta1, beta2, oneMinusBeta2,
/// correction2Sqrt, eps, stepSize: f32)`: one thread an element, AdamW's
/// update of the master, the moments and the parameter (the master rounded
/// to P), as AdamW::step forms it (optimizer.h: the same operations in the
/// same order, no contraction into FMAs).
inline std::string adamwKernelName(moe_dtype_t param, moe_dtype_t grad) {
  return std::string("moe_adamw_") + languageName(param) + "_" + languageName(grad);
}
inline constexpr unsigned kAdamWThreads = 256;

/// `moe_squared_error_<T>(y, target, dy: memref<?xT>, rowSums: memref<?xf32>,
/// rows, cols: index, scale: f32)`: a warp a row of a [rows, cols] output;
/// dy = (y - target) * scale (scale = 2 / elements: the mean's cotangent),
/// and rowSums[r] = the row's sum of (y - target)^2 in f32 (each lane its
/// columns in order, then the warp's tree: the same bits every call).
inline std::string squaredErrorKernelName(moe_dtype_t elt) {
  return std::string("moe_squared_error_") + languageName(elt);
}
inline constexpr unsigned kSquaredErrorThreads = 256; // 8 rows a block

/// A flat buffer of `elements` at device address `address` as a kernel
/// argument (the descriptor's five words).
inline std::array<int64_t, 5> memrefArgument(uint64_t address, int64_t elements) {
  return {static_cast<int64_t>(address), static_cast<int64_t>(address), 0, elements, 1};
}

} // namespace moe::runtime

#endif // MOE_RUNTIME_TRAIN_KERNELS_H
