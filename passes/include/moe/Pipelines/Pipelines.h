//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//
//
// Pipelines are built here, in C++, and registered by name, so that
// `moe-opt --moe-default-pipeline` replays exactly what `moec` runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace mlir::moe {

/// Verifies the input, then canonicalises (folding routing into `moe.topk`)
/// and removes common subexpressions.
void buildMoEDefaultPipeline(OpPassManager &pm);

/// The textual pipeline of `moe-lower-to-cpu`: the default pipeline, the moe
/// conversions (kernel calls, linalg), bufferization and the upstream lowering
/// to the LLVM dialect.
llvm::StringRef getMoELowerToCPUPipeline();

/// Lowers a verified moe module to the LLVM dialect for the CPU; each layer
/// function gets a `_mlir_ciface_` entry point, kernels are `moe_cpu_*` calls.
LogicalResult buildMoELowerToCPUPipeline(OpPassManager &pm);

/// The textual pipeline of `moe-lower-to-nvvm{chip=...}`: the default
/// pipeline, generated kernels for routing/dispatch/experts/products, linalg
/// glue as one-thread-per-element launches, device allocations, outlining,
/// async launches on one stream, NVVM, PTX for `chip` (sm_90a, sm_90, sm_80)
/// embedded in host code that calls MLIR's `mgpu*` runtime ABI.
/// `gemmKTile` 0 lets the compiler choose the GEMM stage depth; `libdevice`
/// is linked into the kernels for their math functions (expf, logf, tanhf);
/// `gemm` picks the tensor-core instructions (mma, wgmma; "": defaultGemmFor).
std::string getMoELowerToNVVMPipeline(llvm::StringRef chip, int64_t gemmKTile = 0,
                                      llvm::StringRef libdevice = "", llvm::StringRef gemm = "");
LogicalResult buildMoELowerToNVVMPipeline(OpPassManager &pm, llvm::StringRef chip, int64_t gemmKTile = 0,
                                          llvm::StringRef libdevice = "", llvm::StringRef gemm = "");

/// The GEMMs' tensor-core instructions for `chip`: wgmma on sm_90a (the only
/// target that has them), mma.sync elsewhere.
std::string defaultGemmFor(llvm::StringRef chip);

/// The CUDA toolkit's libdevice.10.bc ($CUDA_HOME, CUDA_PATH, CUDA_ROOT, then
/// /usr/local/cuda and other usual prefixes), or "" if there is none.
std::string findLibdevice();

/// Registers every moe pipeline with the global pipeline registry.
void registerMoEPipelines();

} // namespace mlir::moe

#endif // MOE_PIPELINES_PIPELINES_H
