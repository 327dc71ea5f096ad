//===- CPUCodeGen.cpp - a moe layer to a CPU artifact -----------*- C++ -*-===//
#include "moe/Compiler/CPUCodeGen.h"

#include "moe/Compiler/HostLibrary.h"
#include "moe/Compiler/Pipelines.h"
#include "moe/Compiler/Signature.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

using namespace mlir;
namespace rt = ::moe::runtime;

LogicalResult moe::compileLayerForCPU(ModuleOp module, func::FuncOp layer, rt::Artifact &out, std::string *commandLog,
                                      std::string *llvmIR) {
  MLIRContext *context = module.getContext();
  Location loc = layer.getLoc();
  if (failed(extractSignature(layer, out.signature)))
    return failure();
  std::string layerName = layer.getName().str();
  // Keep only the layer being compiled.
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (fn != layer)
      fn.erase();

  PassManager pm(context);
  // -mlir-print-ir-* and friends, when the tool registered them (moec does).
  (void)applyPassManagerCLOptions(pm);
  // -mlir-timing, when the tool registered it: reported when `timing` ends.
  DefaultTimingManager timing;
  applyDefaultTimingManagerCLOptions(timing);
  TimingScope timingRoot = timing.getRootScope();
  pm.enableTiming(timingRoot);
  // The module is verified once, after the pipeline, not after each of its
  // ~50 passes (moe-opt, which the pass tests run, verifies after each).
  pm.enableVerifier(false);
  buildMoELowerToCPUPipeline(pm);
  if (failed(pm.run(module)) || failed(verify(module)))
    return failure();

  std::vector<uint8_t> library;
  if (failed(moe::buildHostLibrary(module, layerName, loc, out.signature.entry, library, commandLog, llvmIR)))
    return failure();
  out.sections.emplace_back("code.cpu.so", std::move(library));
  return success();
}
