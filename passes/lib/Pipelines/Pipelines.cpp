//===- Pipelines.cpp - named moe pass pipelines -----------------*- C++ -*-===//
#include "moe/Pipelines/Pipelines.h"

#include "moe/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void moe::buildMoEDefaultPipeline(OpPassManager &pm) {
  pm.addPass(createMoEVerifyInput());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

llvm::StringRef moe::getMoELowerToCPUPipeline() {
  return "moe-verify-input,canonicalize,cse,"
         "convert-moe-to-cpu-kernels,convert-moe-to-linalg,"
         "func.func(convert-elementwise-to-linalg,linalg-fuse-elementwise-ops),canonicalize,cse,"
         "one-shot-bufferize{bufferize-function-boundaries "
         "function-boundary-type-conversion=identity-layout-map},"
         "buffer-deallocation-pipeline,"
         "func.func(convert-linalg-to-loops),expand-strided-metadata,lower-affine,"
         "convert-scf-to-cf,arith-expand{include-bf16=true},convert-math-to-llvm,convert-math-to-libm,"
         "finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
         "convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts";
}

LogicalResult moe::buildMoELowerToCPUPipeline(OpPassManager &pm) {
  return parsePassPipeline(getMoELowerToCPUPipeline(), pm);
}

void moe::registerMoEPipelines() {
  PassPipelineRegistration<>(
      "moe-lower-to-cpu",
      "lower a moe module to the LLVM dialect for the CPU: kernel calls for routing, "
      "experts and matrix products, linalg for the rest, bufferization, LLVM",
      [](OpPassManager &pm) {
        if (failed(buildMoELowerToCPUPipeline(pm)))
          llvm::report_fatal_error("moe-lower-to-cpu: bad pipeline text");
      });
  PassPipelineRegistration<>(
      "moe-default-pipeline",
      "verify a moe module, then fold routing into moe.topk and clean up",
      buildMoEDefaultPipeline);
}
