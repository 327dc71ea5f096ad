//===- GPUKernelOptions.h - the GPU kernels' option types -------*- C++ -*-===//
//
// The enum types of convert-moe-to-gpu-kernels' options. The options
// themselves are declared once, in Passes.td; the generated
// ConvertMoEToGPUKernelsOptions is the typed struct every tool fills (moec's
// --gpu-<option> flags, the moe-lower-to-nvvm pipeline, the compile API).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELOPTIONS_H
#define MOE_CONVERSION_GPUKERNELOPTIONS_H

#include "mlir/Support/LLVM.h"
#include "moe/Support/MLIR.h"

#include <functional>
#include <string>

namespace moe {

/// The tensor-core instructions of the GEMMs.
enum class GemmEngine {
  Auto,  ///< wgmma on sm_90a (the only target that has it), else mma
  Mma,   ///< mma.sync m16n8k16, sm_80 and later
  Wgmma, ///< warpgroup MMA, sm_90a
};

/// How a wgmma block's outputs reach memory.
enum class GemmEpilogue {
  Staged, ///< through shared memory, 16-byte row chunks
  Direct, ///< each thread stores its element pairs
};

/// Whether a 256-column wgmma GEMM runs warp-specialised (a producer
/// warpgroup and two consumers, one block an SM, a device tile scheduler).
enum class GemmWarpSpecialization {
  Auto,   ///< where the product's k is at most kWarpSpecializedMaxK (the measured rule, docs/gpu.md)
  Always, ///< every product that has the form
  Never,  ///< one block a tile
};
/// Auto's bound: short products pay each tile's start and end most, which
/// the warp-specialised kernel overlaps; deeper ones ran as fast or faster
/// one block a tile (H200, docs/performance.md).
constexpr int64_t kWarpSpecializedMaxK = 2048;

struct ConvertMoEToGPUKernelsOptions;
using GPUKernelOptions = ConvertMoEToGPUKernelsOptions;

/// Parses convert-moe-to-gpu-kernels' textual options ("gemm=mma gemm-n=256")
/// with the pass's own option parser; false after an error (reported).
LogicalResult parseGPUKernelOptions(StringRef text, GPUKernelOptions &out,
                                    function_ref<LogicalResult(const Twine &)> errorHandler);

} // namespace moe

#endif // MOE_CONVERSION_GPUKERNELOPTIONS_H
