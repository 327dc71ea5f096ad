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

/// The backward's signature: a gradient per result of @<layer>_backward,
/// named and shaped after the input or parameter its moe.gradient names.
static LogicalResult extractBackward(func::FuncOp backward, const rt::Signature &forward, rt::BackwardSignature &out) {
  out.entry.clear();
  out.gradients.clear();
  for (unsigned i = 0; i < backward.getNumResults(); ++i) {
    // A balance-updated parameter's expert load (moe-differentiate).
    if (auto load = backward.getResultAttrOfType<StringAttr>(i, moe::MoEDialect::getLoadAttrName())) {
      rt::TensorSpec spec;
      spec.name = "load." + load.getValue().str();
      spec.dtype = MOE_F32;
      spec.shape.push_back({cast<RankedTensorType>(backward.getResultTypes()[i]).getDimSize(0), ""});
      out.gradients.push_back(spec);
      continue;
    }
    auto name = backward.getResultAttrOfType<StringAttr>(i, moe::MoEDialect::getGradientAttrName());
    const rt::TensorSpec *primal = nullptr;
    for (const auto *list : {&forward.inputs, &forward.params})
      for (const rt::TensorSpec &spec : *list)
        if (name && spec.name == name.getValue())
          primal = &spec;
    if (!primal)
      return backward.emitError() << "result #" << i << " of the backward names no input or parameter ("
                                  << (name ? name.getValue() : StringRef("no moe.gradient")) << ")";
    rt::TensorSpec grad = *primal;
    grad.name = "grad." + primal->name;
    out.gradients.push_back(grad);
  }
  return success();
}

LogicalResult moe::compileLayerForCPU(ModuleOp module, func::FuncOp layer, const rt::Mesh &mesh, bool train,
                                      rt::Artifact &out, std::string *commandLog, std::string *llvmIR) {
  Location loc = layer.getLoc();
  std::string layerName = layer.getName().str();
  // Keep only the layer being compiled.
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (fn != layer)
      fn.erase();
  // The backward is built from the single-device layer, then both are placed.
  if (train && failed(runPipeline(module, [](OpPassManager &pm) {
        pm.addPass(createMoEVerifyInput());
        pm.addPass(createMoEDifferentiate());
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
  if (failed(moe::buildHostLibrary(module, layerName, loc, out.signature.entry, library, commandLog, llvmIR,
                                   train ? &out.signature.backward->entry : nullptr)))
    return failure();
  out.sections.emplace_back("code.cpu.so", std::move(library));
  return success();
}
