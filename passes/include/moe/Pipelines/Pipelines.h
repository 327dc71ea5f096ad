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

/// Registers every moe pipeline with the global pipeline registry.
void registerMoEPipelines();

} // namespace mlir::moe

#endif // MOE_PIPELINES_PIPELINES_H
