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

void moe::registerMoEPipelines() {
  PassPipelineRegistration<>(
      "moe-default-pipeline",
      "verify a moe module, then fold routing into moe.topk and clean up",
      buildMoEDefaultPipeline);
}
