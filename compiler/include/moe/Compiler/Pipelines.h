//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//
//
// Pipelines are built here, with OpPassManager, and registered by name, so
// that `moe-opt --moe-lower-to-nvvm{...}` replays exactly what `moec` runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_PIPELINES_H
#define MOE_COMPILER_PIPELINES_H

#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"
#include "moe/runtime/mesh.h"

#include "mlir/Pass/PassManager.h"

#include <string>

namespace moe {

/// Verifies the input, then canonicalises (folding routing into `moe.topk`)
/// and removes common subexpressions.
void buildMoEDefaultPipeline(OpPassManager &pm);

/// Verifies the input and places it on `mesh` (moe-place-on-mesh): the
/// per-rank program, before its signature is read and it is lowered.
void buildMoEPlaceOnMeshPipeline(OpPassManager &pm, const ::moe::runtime::Mesh &mesh);

/// Lowers a verified moe module to the LLVM dialect for the CPU (the default
/// pipeline first): each layer function gets a `_mlir_ciface_` entry point,
/// kernels are `moe_cpu_*` calls, the rest linalg, bufferized, then LLVM.
void buildMoELowerToCPUPipeline(OpPassManager &pm);

/// Lowers a moe module for NVIDIA GPUs (the default pipeline first):
/// generated kernels for routing/dispatch/experts/products (with `kernels`'
/// choices, for `kernels.chip`), linalg glue as one-thread-per-element
/// launches, device allocations, outlining, async launches on one stream,
/// NVVM, PTX for the chip embedded in host code that calls MLIR's `mgpu*`
/// runtime ABI. `libdevice` (libdevice.10.bc) is linked into the kernels.
void buildMoELowerToNVVMPipeline(OpPassManager &pm, const GPUKernelOptions &kernels, StringRef libdevice);

/// Registers every moe pipeline with the global pipeline registry.
/// moe-lower-to-nvvm takes convert-moe-to-gpu-kernels' options.
void registerMoEPipelines();

} // namespace moe

#endif // MOE_COMPILER_PIPELINES_H
