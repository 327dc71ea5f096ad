//===- GPUCodeGen.cpp - a moe layer to a CUDA artifact ----------*- C++ -*-===//
#include "moe/Compiler/GPUCodeGen.h"
#include "moe/Compiler/GPUTrainKernels.h"

#include "moe/Compiler/CudaToolkit.h"
#include "moe/Compiler/HostLibrary.h"
#include "moe/Compiler/Pipelines.h"
#include "moe/Compiler/Signature.h"

#include "RunPipeline.h"

#include "moe/Transforms/Passes.h"
#include "moe/runtime/train_kernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"

using namespace mlir;
namespace rt = ::moe::runtime;

std::string moe::modulePtx(ModuleOp module) {
  std::string ptx;
  module.walk([&](gpu::BinaryOp binary) {
    for (Attribute a : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(a); object && object.getFormat() == gpu::CompilationTarget::Assembly)
        ptx += object.getObject().getValue().str();
  });
  return ptx;
}

LogicalResult moe::compileLayerForGPU(ModuleOp module, func::FuncOp layer, const CompileOptions &options,
                                      rt::Artifact &out, CompileListing *listing) {
  Location loc = layer.getLoc();
  if (!options.target.isCuda())
    return emitError(loc) << "compileLayerForGPU needs a CUDA target, got " << options.target.flagName();
  llvm::StringRef chip = options.target.chip;
  // On a mesh, the signature is the placed program's (shards, mesh).
  if (options.mesh.isPlaced() &&
      failed(runPipeline(module, [&](OpPassManager &pm) { buildMoEPlaceOnMeshPipeline(pm, options.mesh); })))
    return failure();
  std::string layerName = layer.getName().str();
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (fn != layer)
      fn.erase();
  // The backward (moec build --train), built from the single-device layer.
  // On one device the forward keeps the experts' up products (two of the
  // backward's GEMMs otherwise) and what the backward reads of its other moe
  // ops (the routing); the GPU backend keeps none on a mesh.
  MoEDifferentiateOptions differentiate;
  differentiate.keepUpProducts = differentiate.keepTensors = !options.mesh.isPlaced();
  if (options.train && failed(runPipeline(module, [&](OpPassManager &pm) {
        pm.addPass(createMoEVerifyInput());
        pm.addPass(createMoEDifferentiate(differentiate));
      })))
    return failure();
  if (failed(extractSignature(layer, out.signature)))
    return failure();
  out.signature.target = options.target.artifactName();
  if (options.train) {
    auto backward = module.lookupSymbol<func::FuncOp>(layerName + "_backward");
    out.signature.backward.emplace();
    if (!backward || failed(extractBackward(backward, out.signature, *out.signature.backward)))
      return failure();
  }

  // The kernels' math (expf, logf, tanhf) comes from libdevice: without it the
  // PTX would name functions no driver can resolve.
  std::string libdevice = findLibdevice();
  if (libdevice.empty())
    return emitError(loc) << "cannot find the CUDA toolkit's libdevice.10.bc (math functions of GPU kernels): "
                             "install the CUDA toolkit or set CUDA_HOME";
  GPUKernelOptions kernelOptions = options.kernels;
  kernelOptions.chip = chip.str(); // the kernels are for the target's chip, whatever the options said
  if (failed(
          runPipeline(module, [&](OpPassManager &pm) { buildMoELowerToNVVMPipeline(pm, kernelOptions, libdevice); })))
    return failure();

  // Keep the kernels' PTX beside the host code.
  std::string kernels = modulePtx(module);
  // A cubin for the chip, when the toolkit is here: no compilation when the
  // layer loads. The runtime falls back to the PTX section on other GPUs.
  std::string ptxas = options.cubin ? findPtxas() : "";
  if (!ptxas.empty()) {
    for (auto binary : module.getOps<gpu::BinaryOp>()) {
      SmallVector<Attribute> objects;
      for (Attribute a : binary.getObjects()) {
        auto object = dyn_cast<gpu::ObjectAttr>(a);
        if (!object || object.getFormat() != gpu::CompilationTarget::Assembly) {
          objects.push_back(a);
          continue;
        }
        std::string cubin;
        if (failed(assemblePtx(loc, ptxas, chip, object.getObject().getValue(), cubin)))
          return failure();
        objects.push_back(gpu::ObjectAttr::get(module.getContext(), object.getTarget(), gpu::CompilationTarget::Binary,
                                               StringAttr::get(module.getContext(), cubin), object.getProperties(),
                                               object.getKernels()));
      }
      binary.setObjectsAttr(ArrayAttr::get(module.getContext(), objects));
    }
  }
  // Belt and braces: an unresolved libdevice function would only fail on the GPU.
  if (kernels.find(".extern .func") != std::string::npos && kernels.find("__nv_") != std::string::npos)
    return emitError(loc) << "the layer's PTX calls libdevice functions that were not linked (" << libdevice << ")";
  if (listing)
    listing->ptx = kernels;
  std::vector<uint8_t> library;
  if (failed(buildHostLibrary(
          module, layerName, loc, out.signature.entry, library, listing ? &listing->linkCommand : nullptr,
          listing ? &listing->llvmIR : nullptr, options.train ? &out.signature.backward->entry : nullptr,
          options.train && !out.signature.backward->residuals.empty() ? &out.signature.backward->trainEntry : nullptr)))
    return failure();
  out.sections.emplace_back("code.host.so", std::move(library));
  out.sections.emplace_back("code.ptx", std::vector<uint8_t>(kernels.begin(), kernels.end()));
  // A train artifact's step kernels (AdamW, the loss), which the runtime launches itself.
  if (options.train) {
    std::string stepPtx, stepCubin;
    if (failed(compileTrainKernels(loc, out.signature, chip, ptxas, stepPtx, stepCubin)))
      return failure();
    out.sections.emplace_back(rt::kTrainKernelsPtxSection, std::vector<uint8_t>(stepPtx.begin(), stepPtx.end()));
    if (!stepCubin.empty())
      out.sections.emplace_back(rt::kTrainKernelsCubinSection,
                                std::vector<uint8_t>(stepCubin.begin(), stepCubin.end()));
    if (listing)
      listing->trainPtx = stepPtx;
  }
  return success();
}
