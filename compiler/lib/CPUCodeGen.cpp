//===- CPUCodeGen.cpp - a moe layer to a CPU artifact -----------*- C++ -*-===//
#include "moe/Compiler/CPUCodeGen.h"

#include "moe/Compiler/HostLibrary.h"
#include "moe/Compiler/Pipelines.h"
#include "moe/Compiler/Signature.h"

#include "RunPipeline.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

using namespace mlir;
namespace rt = ::moe::runtime;

LogicalResult moe::compileLayerForCPU(ModuleOp module, func::FuncOp layer, const rt::Mesh &mesh, bool train,
                                      rt::Artifact &out, std::string *commandLog, std::string *llvmIR) {
  Location loc = layer.getLoc();
  std::string layerName = layer.getName().str();
  // Keep only the layer being compiled.
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (fn != layer)
      fn.erase();
  // The backward is built from the single-device layer, then both are placed.
  // On one process the train forward keeps what the backward reads of the
  // forward's moe ops (the routing, the router's logits); the experts' up
  // products the CPU backward recomputes per block, in cache, inside its
  // kernel. A mesh keeps nothing (its backward is placed apart).
  MoEDifferentiateOptions differentiate;
  differentiate.keepTensors = !mesh.isPlaced();
  if (train && failed(runPipeline(module, [&](OpPassManager &pm) {
        pm.addPass(createMoEVerifyInput());
        pm.addPass(createMoEDifferentiate(differentiate));
      })))
    return failure();
  // On a mesh, the signature is the placed program's (shards, mesh).
  if (mesh.isPlaced() && failed(runPipeline(module, [&](OpPassManager &pm) { buildMoEPlaceOnMeshPipeline(pm, mesh); })))
    return failure();
  if (failed(extractSignature(layer, out.signature)))
    return failure();
  if (train) {
    auto backward = module.lookupSymbol<func::FuncOp>(layerName + "_backward");
    out.signature.backward.emplace();
    if (!backward || failed(extractBackward(backward, out.signature, *out.signature.backward)))
      return failure();
  }

  if (failed(runPipeline(module, [](OpPassManager &pm) { buildMoELowerToCPUPipeline(pm); })))
    return failure();

  std::vector<uint8_t> library;
  if (failed(moe::buildHostLibrary(
          module, layerName, loc, out.signature.entry, library, commandLog, llvmIR,
          train ? &out.signature.backward->entry : nullptr,
          train && !out.signature.backward->residuals.empty() ? &out.signature.backward->trainEntry : nullptr)))
    return failure();
  out.sections.emplace_back("code.cpu.so", std::move(library));
  return success();
}
