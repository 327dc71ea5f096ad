//===- Pipelines.cpp - named moe pass pipelines -----------------*- C++ -*-===//
#include "moe/Compiler/Pipelines.h"

#include "moe/Compiler/CudaToolkit.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void moe::buildMoEDefaultPipeline(OpPassManager &pm) {
  pm.addPass(createMoEVerifyInput());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void moe::buildMoEPlaceOnMeshPipeline(OpPassManager &pm, const ::moe::runtime::Mesh &mesh) {
  pm.addPass(createMoEVerifyInput());
  MoEPlaceOnMeshOptions options;
  options.mesh = mesh.toString();
  pm.addPass(createMoEPlaceOnMesh(options));
}

/// Tensors to buffers, function boundaries included, with identity layouts
/// (the runtime passes dense memref descriptors).
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions options;
  options.bufferizeFunctionBoundaries = true;
  options.functionBoundaryTypeConversion = bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(options));
}

/// The linalg glue between the kernels, fused where elementwise.
static void addElementwiseFusion(OpPassManager &pm) {
  OpPassManager &fn = pm.nest<func::FuncOp>();
  fn.addPass(createConvertElementwiseToLinalgPass());
  fn.addPass(createLinalgElementwiseOpFusionPass());
}

/// Canonicalisation and CSE of the CPU program only once it is in buffers: a
/// kernel call reads its operands through pointers taken from
/// bufferization.to_buffer, so merging two calls' to_buffer ops (CSE), or
/// folding one into the buffer it came from, would hide the later call's
/// read from the bufferization's analysis, which could then overwrite the
/// tensor in place before that call reads it.
static void addCleanupAfterBufferization(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void moe::buildMoELowerToCPUPipeline(OpPassManager &pm) {
  buildMoEDefaultPipeline(pm);
  pm.addPass(createConvertMoEToCPUKernels());
  pm.addPass(createConvertMoEToLinalg());
  addElementwiseFusion(pm);
  addBufferization(pm);
  bufferization::buildBufferDeallocationPipeline(pm);
  addCleanupAfterBufferization(pm);
  pm.addPass(createConvertBufferizationToMemRefPass());
  pm.nest<func::FuncOp>().addPass(createConvertLinalgToLoopsPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true; // bf16 arithmetic as f32 (extf, op, truncf)
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void moe::buildMoELowerToNVVMPipeline(OpPassManager &pm, const GPUKernelOptions &kernels, StringRef libdevice) {
  buildMoEDefaultPipeline(pm);
  pm.addPass(createConvertMoEToGPUKernels(kernels));
  pm.addPass(createConvertMoEToLinalg());
  addElementwiseFusion(pm);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  addBufferization(pm);
  pm.addPass(createCanonicalizerPass());
  {
    OpPassManager &fn = pm.nest<func::FuncOp>();
    fn.addPass(createConvertLinalgToParallelLoopsPass());
    fn.addPass(createMoEGPUMapParallelLoops());
  }
  pm.addPass(createMoEGPUHostMemory());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createMoEGPUMergeKernelModules());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.nest<func::FuncOp>().addPass(createGpuAsyncRegionPass());
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = kernels.chip;
  target.features = "+ptx80";
  target.optLevel = 3;
  if (!libdevice.empty())
    target.linkLibs.push_back(libdevice.str());
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  {
    OpPassManager &fn = pm.nest<LLVM::LLVMFuncOp>();
    fn.addPass(createCanonicalizerPass());
    fn.addPass(createCSEPass());
  }
  {
    OpPassManager &kernelModule = pm.nest<gpu::GPUModuleOp>();
    kernelModule.addPass(createConvertGpuOpsToNVVMOps());
    kernelModule.addPass(createReconcileUnrealizedCastsPass());
  }
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createMoEGPUModuleToBinary());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void moe::registerMoEPipelines() {
  // moe-lower-to-nvvm's options are convert-moe-to-gpu-kernels' own, parsed
  // by that pass's option parser: they are declared once, in Passes.td.
  registerPassPipeline(
      "moe-lower-to-nvvm",
      "lower a moe module for NVIDIA GPUs: generated kernels for routing, dispatch, experts and matrix "
      "products, the rest as one-thread-per-element launches, PTX embedded in host code (options: "
      "convert-moe-to-gpu-kernels'; libdevice from $CUDA_HOME or /usr/local/cuda)",
      [](OpPassManager &pm, StringRef text, function_ref<LogicalResult(const Twine &)> errorHandler) {
        GPUKernelOptions kernels;
        if (failed(parseGPUKernelOptions(text, kernels, errorHandler)))
          return failure();
        buildMoELowerToNVVMPipeline(pm, kernels, findLibdevice());
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)>) {});
  PassPipelineRegistration<>("moe-lower-to-cpu",
                             "lower a moe module to the LLVM dialect for the CPU: kernel calls for routing, "
                             "experts and matrix products, linalg for the rest, bufferization, LLVM",
                             buildMoELowerToCPUPipeline);
  PassPipelineRegistration<>("moe-default-pipeline",
                             "verify a moe module, then fold routing into moe.topk and clean up",
                             buildMoEDefaultPipeline);
}
