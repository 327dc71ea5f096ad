//===- Build.cpp - moec build: a .moe layer to a CPU artifact ---*- C++ -*-===//
#include "Commands.h"
#include "Compile.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Target/CPU.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"

using namespace moe::frontend;
namespace rt = moe::runtime;

namespace moec {

double flopsPerToken(mlir::func::FuncOp layer) {
  // Terms linear in the token count, per token: a dense layer on [tokens, k]
  // costs 2 k n; an expert FFN 2 k (per-token assignments) times its GEMMs.
  double flops = 0;
  layer.walk([&](mlir::Operation *op) {
    if (auto d = llvm::dyn_cast<mlir::moe::DenseOp>(op)) {
      auto in = d.getInput().getType(), w = d.getWeight().getType();
      double perRow = 2.0 * static_cast<double>(w.getDimSize(0)) * static_cast<double>(w.getDimSize(1));
      flops += in.isDynamicDim(0) ? perRow : 0.0;
    } else if (auto f = llvm::dyn_cast<mlir::moe::ExpertFfnOp>(op)) {
      auto routed = f.getRouted().getType();
      double d = static_cast<double>(routed.getHidden()), inner = static_cast<double>(f.getInnerDim());
      double gemms = f.getKind() == mlir::moe::FfnKind::mlp ? 2.0 : 3.0;
      flops += 2.0 * gemms * d * inner * static_cast<double>(routed.getK());
    }
  });
  return flops;
}

bool compileLayer(const LayerSource &source, CompiledLayer &out) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = mlir::openInputFile(source.path, &error);
  if (!input) {
    llvm::WithColor::error(llvm::errs(), "moec") << error << "\n";
    return false;
  }
  llvm::SourceMgr sourceMgr;
  unsigned buffer = sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  installCaretDiagnosticPrinter(sourceMgr, llvm::errs());
  Diagnostics diags(sourceMgr);
  mlir::DialectRegistry registry;
  mlir::moe::registerCPUTarget(registry);
  out.context = std::make_unique<mlir::MLIRContext>(registry);
  registerFrontendDialects(*out.context);
  mlir::SourceMgrDiagnosticHandler mlirDiagnostics(sourceMgr, out.context.get());
  ElaborationOptions options;
  options.layer = source.layer;
  options.overrides = source.overrides;
  mlir::OwningOpRef<mlir::ModuleOp> module = parseAndElaborate(diags, buffer, *out.context, options);
  if (!module)
    return false;
  auto layer = *module->getOps<mlir::func::FuncOp>().begin();
  double flops = flopsPerToken(layer);
  out.moeModule = mlir::OwningOpRef<mlir::ModuleOp>(module->clone());
  if (mlir::failed(mlir::moe::compileLayerForCPU(*module, layer, out.artifact)))
    return false;
  out.artifact.signature.flopsPerToken = flops;
  return true;
}

int build(const LayerSource &source, const std::string &output) {
  CompiledLayer compiled;
  if (!compileLayer(source, compiled))
    return 1;
  const rt::Artifact &artifact = compiled.artifact;
  if (rt::writeArtifact(output, artifact) != MOE_OK) {
    llvm::WithColor::error(llvm::errs(), "moec") << moe_last_error() << "\n";
    return 1;
  }
  size_t codeBytes = artifact.section("code.cpu.so")->size();
  llvm::outs() << "moec: wrote " << output << " (" << artifact.signature.layer << ", cpu-x86_64, "
               << codeBytes << " bytes of code, " << artifact.signature.params.size()
               << " parameters)\n";
  return 0;
}

} // namespace moec
