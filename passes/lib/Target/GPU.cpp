//===- GPU.cpp - compile a moe layer to a CUDA artifact ---------*- C++ -*-===//
#include "moe/Target/GPU.h"

#include "moe/Pipelines/Pipelines.h"
#include "moe/Target/CPU.h"
#include "moe/Target/HostLibrary.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "llvm/Support/Regex.h"

using namespace mlir;
namespace rt = ::moe::runtime;

bool mlir::moe::isCudaTarget(llvm::StringRef target) {
  llvm::SmallVector<llvm::StringRef> m;
  if (!llvm::Regex("^sm_([0-9]+)a?$").match(target, &m))
    return false;
  int cc = 0;
  return !m[1].getAsInteger(10, cc) && cc >= 80;
}

void mlir::moe::registerGPUTarget(DialectRegistry &registry) {
  registerCPUTarget(registry);
  registerGPUDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  gpu::registerOffloadingLLVMTranslationInterfaceExternalModels(registry);
}

LogicalResult mlir::moe::compileLayerForGPU(ModuleOp module, func::FuncOp layer, llvm::StringRef chip,
                                            rt::Artifact &out, std::string *commandLog, std::string *llvmIR,
                                            std::string *ptx, int64_t gemmKTile) {
  Location loc = layer.getLoc();
  if (!isCudaTarget(chip))
    return emitError(loc) << "unknown CUDA target '" << chip << "' (expected sm_80, sm_90, sm_90a, ...)";
  if (failed(extractSignature(layer, out.signature)))
    return failure();
  out.signature.target = ("cuda-" + chip).str();
  std::string layerName = layer.getName().str();
  for (auto fn : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (fn != layer)
      fn.erase();

  // The kernels' math (expf, logf, tanhf) comes from libdevice: without it the
  // PTX would name functions no driver can resolve.
  std::string libdevice = findLibdevice();
  if (libdevice.empty())
    return emitError(loc) << "cannot find the CUDA toolkit's libdevice.10.bc (math functions of GPU kernels): "
                             "install the CUDA toolkit or set CUDA_HOME";
  PassManager pm(module.getContext());
  (void)applyPassManagerCLOptions(pm);
  if (failed(buildMoELowerToNVVMPipeline(pm, chip, gemmKTile, libdevice)))
    return emitError(loc) << "cannot build the moe-lower-to-nvvm pipeline";
  if (failed(pm.run(module)))
    return failure();

  // Keep the kernels' PTX beside the host code.
  std::string kernels;
  module.walk([&](gpu::BinaryOp binary) {
    for (Attribute a : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(a))
        kernels += object.getObject().getValue().str();
  });
  // Belt and braces: an unresolved libdevice function would only fail on the GPU.
  if (kernels.find(".extern .func") != std::string::npos && kernels.find("__nv_") != std::string::npos)
    return emitError(loc) << "the layer's PTX calls libdevice functions that were not linked (" << libdevice << ")";
  if (ptx)
    *ptx = kernels;
  std::vector<uint8_t> library;
  if (failed(buildHostLibrary(module, layerName, loc, out.signature.entry, library, commandLog, llvmIR)))
    return failure();
  out.sections.emplace_back("code.host.so", std::move(library));
  out.sections.emplace_back("code.ptx", std::vector<uint8_t>(kernels.begin(), kernels.end()));
  return success();
}
