//===- TrainKernels.h - the training step's GPU kernels ---------*- C++ -*-===//
//
// The kernels a CUDA train artifact carries besides its layer, which the
// runtime launches between the layer's calls (moe/runtime/train_kernels.h):
// AdamW and the squared error's cotangent, generated as one gpu.module.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_TRAINKERNELS_H
#define MOE_CONVERSION_TRAINKERNELS_H

#include <set>
#include <string>
#include <utility>

namespace moe {

/// `module attributes {gpu.container_module} { gpu.module @moe_train_kernels
/// {...} }` as MLIR text: AdamW for each (parameter, gradient) element type
/// pair of `adamw` and the squared error for each element type of
/// `squaredError` (spelled "f32", "bf16", "f16").
std::string trainKernelsModule(const std::set<std::pair<std::string, std::string>> &adamw,
                               const std::set<std::string> &squaredError);

} // namespace moe

#endif // MOE_CONVERSION_TRAINKERNELS_H
