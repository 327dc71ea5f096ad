//===- GPUTrainKernels.cpp - a CUDA train artifact's step kernels ---------===//
#include "moe/Compiler/GPUTrainKernels.h"

#include "moe/Compiler/CudaToolkit.h"
#include "moe/Compiler/GPUCodeGen.h"
#include "moe/Conversion/Passes.h"
#include "moe/Conversion/TrainKernels.h"

#include "RunPipeline.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Parser/Parser.h"

using namespace mlir;
namespace rt = ::moe::runtime;

LogicalResult moe::compileTrainKernels(Location loc, const rt::Signature &signature, llvm::StringRef chip,
                                       const std::string &ptxas, std::string &ptx, std::string &cubin) {
  // The element types the step meets: each trainable parameter's with its
  // gradient's, and the first output's (the squared error's).
  std::set<std::pair<std::string, std::string>> adamw;
  for (const rt::TensorSpec &p : signature.params) {
    if (!p.trainable || !signature.backward)
      continue;
    for (const rt::TensorSpec &g : signature.backward->gradients)
      if (g.name == "grad." + p.name)
        adamw.insert({rt::languageName(p.dtype), rt::languageName(g.dtype)});
  }
  std::set<std::string> squaredError;
  if (!signature.outputs.empty())
    squaredError.insert(rt::languageName(signature.outputs[0].dtype));

  MLIRContext *context = loc.getContext();
  ParserConfig config(context);
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(trainKernelsModule(adamw, squaredError), config, "moe_train_kernels");
  if (!module)
    return emitError(loc) << "internal error: the training step's generated kernels do not parse";
  if (failed(runPipeline(*module, [&](OpPassManager &pm) {
        pm.addPass(createSCFToControlFlowPass());
        OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
        kernels.addPass(createConvertGpuOpsToNVVMOps());
        kernels.addPass(createReconcileUnrealizedCastsPass());
        GpuNVVMAttachTargetOptions target;
        target.chip = chip.str();
        target.features = "+ptx80";
        target.optLevel = 3;
        pm.addPass(createGpuNVVMAttachTarget(target));
        pm.addPass(createMoEGPUModuleToBinary());
      })))
    return emitError(loc) << "the training step's kernels did not compile for " << chip;
  ptx = modulePtx(*module);
  if (ptx.empty())
    return emitError(loc) << "internal error: the training step's kernels gave no PTX";
  cubin.clear();
  if (!ptxas.empty())
    return assemblePtx(loc, ptxas, chip, ptx, cubin);
  return success();
}
