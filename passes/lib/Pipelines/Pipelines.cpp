//===- Pipelines.cpp - named moe pass pipelines -----------------*- C++ -*-===//
#include "moe/Pipelines/Pipelines.h"

#include "moe/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"

#include <cstdlib>

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
         "buffer-deallocation-pipeline,convert-bufferization-to-memref,"
         "func.func(convert-linalg-to-loops),expand-strided-metadata,lower-affine,"
         "convert-scf-to-cf,arith-expand{include-bf16=true},convert-math-to-llvm,convert-math-to-libm,"
         "finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
         "convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts";
}

LogicalResult moe::buildMoELowerToCPUPipeline(OpPassManager &pm) {
  return parsePassPipeline(getMoELowerToCPUPipeline(), pm);
}

std::string moe::findLibdevice() {
  // Where CUDA toolkits keep it: $CUDA_HOME (or CUDA_PATH, CUDA_ROOT), then the
  // usual install prefixes (NVIDIA's packages, Debian's nvidia-cuda-toolkit).
  llvm::SmallVector<std::string> roots;
  for (const char *var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char *value = std::getenv(var))
      roots.push_back(value);
  for (const char *dir : {"/usr/local/cuda", "/usr/lib/cuda", "/usr/lib/nvidia-cuda-toolkit", "/opt/cuda"})
    roots.push_back(dir);
  for (const std::string &root : roots)
    for (const char *sub : {"/nvvm/libdevice/libdevice.10.bc", "/libdevice/libdevice.10.bc"})
      if (llvm::sys::fs::exists(root + sub))
        return root + sub;
  return "";
}

std::string moe::getMoELowerToNVVMPipeline(const NVVMCodegenOptions &options) {
  llvm::StringRef chip = options.chip, libdevice = options.libdevice;
  return "moe-verify-input,canonicalize,cse,"
         "convert-moe-to-gpu-kernels{chip=" +
         chip.str() + " gemm-k-tile=" + std::to_string(options.gemm.kTile) +
         (options.gemm.engine.empty() ? std::string() : " gemm=" + options.gemm.engine) +
         " gemm-n=" + std::to_string(options.gemm.n) + " gemm-epilogue=" + options.gemm.epilogue +
         (options.gemm.tma ? " gemm-tma=true" : "") + (options.gemm.persistent ? " gemm-persistent=true" : "") +
         "},convert-moe-to-linalg,"
         "func.func(convert-elementwise-to-linalg,linalg-fuse-elementwise-ops),canonicalize,cse,"
         "one-shot-bufferize{bufferize-function-boundaries "
         "function-boundary-type-conversion=identity-layout-map},canonicalize,"
         "func.func(convert-linalg-to-parallel-loops,moe-gpu-map-parallel-loops),"
         "moe-gpu-host-memory,gpu-kernel-outlining,moe-gpu-merge-kernel-modules,canonicalize,cse,"
         "func.func(gpu-async-region),"
         "convert-nvgpu-to-nvvm,convert-vector-to-scf,convert-scf-to-cf,convert-nvvm-to-llvm,"
         "convert-func-to-llvm,expand-strided-metadata,"
         "nvvm-attach-target{chip=" +
         chip.str() +
         " features=+ptx80 O=3" + (libdevice.empty() ? std::string() : " l=" + libdevice.str()) +
         "},lower-affine,convert-arith-to-llvm,convert-index-to-llvm,"
         "llvm.func(canonicalize,cse),"
         "gpu.module(convert-gpu-to-nvvm,reconcile-unrealized-casts),"
         "gpu-to-llvm,moe-gpu-module-to-binary,convert-math-to-llvm,canonicalize,cse,"
         "reconcile-unrealized-casts";
}

LogicalResult moe::buildMoELowerToNVVMPipeline(OpPassManager &pm, const NVVMCodegenOptions &options) {
  return parsePassPipeline(getMoELowerToNVVMPipeline(options), pm);
}

namespace {
struct NVVMPipelineOptions : PassPipelineOptions<NVVMPipelineOptions> {
  Option<std::string> chip{*this, "chip", llvm::cl::desc("CUDA architecture: sm_90a, sm_90 or sm_80"),
                           llvm::cl::init("sm_90a")};
  Option<int64_t> gemmKTile{*this, "gemm-k-tile",
                            llvm::cl::desc("k depth of the tensor-core GEMM stages: 32 or 64; 0: the default, 32"),
                            llvm::cl::init(0)};
  Option<std::string> gemm{*this, "gemm",
                           llvm::cl::desc("tensor-core instructions of the GEMMs: mma or wgmma (sm_90a only); "
                                          "default: wgmma on sm_90a, else mma")};
  Option<int64_t> gemmN{*this, "gemm-n",
                        llvm::cl::desc("wgmma: B columns a GEMM block multiplies, 128 or 256; 0: from the shapes"),
                        llvm::cl::init(0)};
  Option<std::string> gemmEpilogue{*this, "gemm-epilogue",
                                   llvm::cl::desc("wgmma: staged (through shared memory, the default) or "
                                                  "direct output stores"),
                                   llvm::cl::init("staged")};
  Option<bool> gemmPersistent{*this, "gemm-persistent",
                              llvm::cl::desc("wgmma: one block an SM walking its tiles (256-column blocks)"),
                              llvm::cl::init(false)};
  Option<bool> gemmTma{*this, "gemm-tma", llvm::cl::desc("wgmma: load B by TMA"),
                       llvm::cl::init(false)};
  Option<std::string> libdevice{*this, "libdevice",
                                llvm::cl::desc("the CUDA toolkit's libdevice.10.bc (math functions); default: found "
                                               "from $CUDA_HOME or /usr/local/cuda")};
};
} // namespace

void moe::registerMoEPipelines() {
  PassPipelineRegistration<NVVMPipelineOptions>(
      "moe-lower-to-nvvm",
      "lower a moe module for NVIDIA GPUs: generated kernels for routing, dispatch, experts and matrix "
      "products, the rest as one-thread-per-element launches, PTX embedded in host code",
      [](OpPassManager &pm, const NVVMPipelineOptions &options) {
        NVVMCodegenOptions codegen;
        codegen.chip = options.chip;
        codegen.gemm = {options.gemmKTile, options.gemm,    options.gemmN,
                        options.gemmEpilogue, options.gemmTma, options.gemmPersistent};
        codegen.libdevice = options.libdevice.empty() ? findLibdevice() : std::string(options.libdevice);
        if (failed(buildMoELowerToNVVMPipeline(pm, codegen)))
          llvm::report_fatal_error("moe-lower-to-nvvm: bad pipeline text");
      });
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
