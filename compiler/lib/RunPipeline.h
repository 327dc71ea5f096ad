//===- RunPipeline.h - how the code generators run a pipeline ---*- C++ -*-===//
#ifndef MOE_COMPILER_RUNPIPELINE_H
#define MOE_COMPILER_RUNPIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace moe {

/// Runs the pipeline `build` adds on `module`, with the tool's -mlir-print-ir-*
/// and -mlir-timing options when it registered them (moec does). The module
/// is verified once, after the pipeline, not after each of its ~50 passes
/// (moe-opt, which the pass tests run, verifies after each).
inline mlir::LogicalResult runPipeline(mlir::ModuleOp module, llvm::function_ref<void(mlir::OpPassManager &)> build) {
  mlir::PassManager pm(module.getContext());
  (void)mlir::applyPassManagerCLOptions(pm);
  mlir::DefaultTimingManager timing; // reports when it ends
  mlir::applyDefaultTimingManagerCLOptions(timing);
  mlir::TimingScope timingRoot = timing.getRootScope();
  pm.enableTiming(timingRoot);
  pm.enableVerifier(false);
  build(pm);
  return mlir::success(mlir::succeeded(pm.run(module)) && mlir::succeeded(mlir::verify(module)));
}

} // namespace moe

#endif // MOE_COMPILER_RUNPIPELINE_H
