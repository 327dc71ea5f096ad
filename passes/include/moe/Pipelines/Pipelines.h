//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//
//
// Pipelines are built here, in C++, and registered by name, so that
// `moe-opt --moe-default-pipeline` replays exactly what `moec` runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

#include <string>

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

/// The GPU GEMMs' choices (convert-moe-to-gpu-kernels' gemm* options,
/// moec's --gpu-gemm* flags); the defaults let the compiler choose.
struct GemmOptions {
  /// The mma.sync GEMM's stage depth (32, 64; 0: the default).
  int64_t kTile = 0;
  /// The tensor-core instructions (mma, wgmma; "": wgmma on sm_90a, the only
  /// target that has it, else mma).
  std::string engine;
  /// wgmma: B columns a block multiplies (128, 256; 0: from the shapes).
  int64_t n = 0;
  /// wgmma: staged (through shared memory) or direct output stores.
  std::string epilogue = "staged";
  /// wgmma: B by TMA.
  bool tma = false;
  /// wgmma: a block an SM walking its tiles.
  bool persistent = false;
};

/// What moe-lower-to-nvvm generates code for.
struct NVVMCodegenOptions {
  /// The CUDA architecture: sm_90a, sm_90, sm_80, ...
  std::string chip = "sm_90a";
  GemmOptions gemm;
  /// libdevice.10.bc, linked into the kernels for their math (expf, logf, tanhf).
  std::string libdevice;
};

/// The textual pipeline of `moe-lower-to-nvvm{chip=...}`: the default
/// pipeline, generated kernels for routing/dispatch/experts/products, linalg
/// glue as one-thread-per-element launches, device allocations, outlining,
/// async launches on one stream, NVVM, PTX for the chip embedded in host code
/// that calls MLIR's `mgpu*` runtime ABI.
std::string getMoELowerToNVVMPipeline(const NVVMCodegenOptions &options);
LogicalResult buildMoELowerToNVVMPipeline(OpPassManager &pm, const NVVMCodegenOptions &options);


/// The CUDA toolkit's libdevice.10.bc ($CUDA_HOME, CUDA_PATH, CUDA_ROOT, then
/// /usr/local/cuda and other usual prefixes), or "" if there is none.
std::string findLibdevice();

/// Registers every moe pipeline with the global pipeline registry.
void registerMoEPipelines();

} // namespace mlir::moe

#endif // MOE_PIPELINES_PIPELINES_H
