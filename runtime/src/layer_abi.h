// layer_abi.h - how the runtime talks to a compiled layer's entry point
// (`moe_entry_<layer>(void **args)`): MLIR memref descriptors, result
// descriptors first, shared by the CPU and GPU paths of Layer.
#ifndef MOE_RUNTIME_LAYER_ABI_H
#define MOE_RUNTIME_LAYER_ABI_H

#include "moe/runtime/artifact.h"
#include "moe/runtime/cuda.h"
#include "moe/runtime/target.h"
#include "moe/runtime/tensor.h"

#include <map>
#include <memory>

namespace moe::runtime {

/// An MLIR memref descriptor of rank r: {allocated, aligned, offset, sizes[r], strides[r]}.
std::vector<int64_t> descriptor(const void *data, const std::vector<int64_t> &shape);

/// Room for the result descriptors an entry point writes (results of
/// `specs`: the forward's outputs, or the backward's gradients), in one vector.
std::vector<int64_t> resultSlots(const std::vector<TensorSpec> &specs);
inline std::vector<int64_t> resultSlots(const Signature &sig) { return resultSlots(sig.outputs); }

/// The results of the forward a backward follows: the outputs, then the
/// residuals when the artifact keeps any (BackwardSignature::residuals).
std::vector<TensorSpec> trainForwardResults(const Signature &sig);

/// The descriptors of results [first, specs.size()) of `results` (as
/// resultSlots laid them out), appended to `descriptors`: a train forward's
/// residuals, passed on to the backward as they lie.
void appendResultDescriptors(const std::vector<TensorSpec> &specs, const std::vector<int64_t> &results, size_t first,
                             std::vector<std::vector<int64_t>> &descriptors);

/// The results' names, dtypes and shapes read from `results` and checked
/// against `specs` (data left empty); `data` receives each one's address.
moe_status_t resultShapes(const std::vector<TensorSpec> &specs, const std::vector<int64_t> &results,
                          std::map<std::string, int64_t> &symbols, std::vector<Tensor> &outputs,
                          std::vector<uint64_t> &data);
inline moe_status_t outputShapes(const Signature &sig, const std::vector<int64_t> &results,
                                 std::map<std::string, int64_t> &symbols, std::vector<Tensor> &outputs,
                                 std::vector<uint64_t> &data) {
  return resultShapes(sig.outputs, results, symbols, outputs, data);
}

/// Checks a tensor's dtype and shape against `spec` (`what`: "input",
/// "cotangent", ...), binding its symbolic dimensions into `symbols`.
moe_status_t checkShape(const TensorSpec &spec, moe_dtype_t dtype, const std::vector<int64_t> &shape, const char *what,
                        std::map<std::string, int64_t> *symbols);

/// Opens GPU 0 for an artifact of `target` ("cuda-sm_90a", "cuda-sm_80", ...),
/// checking that the GPU can run its code.
moe_status_t openGpuFor(const Target &target, std::unique_ptr<CudaDevice> &out);

} // namespace moe::runtime

#endif // MOE_RUNTIME_LAYER_ABI_H
