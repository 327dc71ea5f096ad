//===- Build.cpp - moec build: a .moe layer to an artifact ---*- C++ -*-===//
#include "Commands.h"
#include "Compile.h"

#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"

using namespace moe::frontend;
namespace rt = moe::runtime;

namespace moec {

bool compileLayer(const LayerSource &source, CompiledLayer &out) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = mlir::openInputFile(source.path, &error);
  if (!input) {
    llvm::WithColor::error(llvm::errs(), "moec") << error << "\n";
    return false;
  }
  out.session = std::make_unique<moe::CompileSession>(std::move(input));
  ElaborationOptions options;
  options.layer = source.layer;
  options.overrides = source.overrides;
  mlir::OwningOpRef<mlir::ModuleOp> module = out.session->elaborate(options);
  if (!module)
    return false;
  out.moeModule = mlir::OwningOpRef<mlir::ModuleOp>(module->clone());
  return mlir::succeeded(moe::compile(*module, source.target, out.artifact));
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
  size_t codeBytes = 0;
  for (const auto &[name, bytes] : artifact.sections)
    if (name.rfind("code.", 0) == 0)
      codeBytes += bytes.size();
  llvm::outs() << "moec: wrote " << output << " (" << artifact.signature.layer << ", " << artifact.signature.target
               << ", " << codeBytes << " bytes of code, " << artifact.signature.params.size() << " parameters)\n";
  return 0;
}

} // namespace moec
