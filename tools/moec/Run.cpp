//===- Run.cpp - moec run: execute a layer on the CPU -----------*- C++ -*-===//
//
// Loads a .moeb (or compiles a .moe in memory), binds weights (a safetensors
// file, or deterministic random ones by each parameter's init), runs on
// inputs (a safetensors file, or random ones with --tokens), writes the
// outputs, and prints a one-line summary; --bench times it.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Compile.h"

#include "moe/Dialect/MoE/Reference/Evaluator.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/layer.h"
#include "moe/runtime/session.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>

namespace rt = moe::runtime;

namespace moec {
namespace {

int runtimeError() {
  llvm::WithColor::error(llvm::errs(), "moec") << moe_last_error() << "\n";
  return 1;
}

mlir::moe::reference::Tensor toReference(const rt::Tensor &t) {
  mlir::moe::reference::Tensor r;
  r.shape = t.shape;
  r.data.resize(static_cast<size_t>(t.numElements()));
  for (int64_t i = 0; i < t.numElements(); ++i)
    r.data[i] = t.at(i);
  return r;
}

/// Runs the float64 reference evaluator on the same inputs and weights and
/// compares: max |compiled - reference| / max |reference| per output, within
/// 1e-5 for f32 outputs and 1e-2 for bf16/f16. Returns the exit status.
int checkAgainstReference(mlir::ModuleOp module, const std::vector<rt::Tensor> &inputs,
                          const std::vector<rt::Tensor> &params,
                          const std::vector<rt::Tensor> &outputs) {
  auto fn = *module.getOps<mlir::func::FuncOp>().begin();
  std::vector<mlir::moe::reference::Tensor> args;
  for (const rt::Tensor &t : inputs)
    args.push_back(toReference(t));
  for (const rt::Tensor &t : params)
    args.push_back(toReference(t));
  std::string error;
  auto expected = mlir::moe::reference::evaluate(fn, args, error);
  if (mlir::failed(expected)) {
    llvm::WithColor::error(llvm::errs(), "moec") << "reference evaluator: " << error << "\n";
    return 1;
  }
  int status = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const rt::Tensor &got = outputs[i];
    const mlir::moe::reference::Tensor &want = (*expected)[i];
    double maxDiff = 0, maxRef = 0;
    for (int64_t j = 0; j < got.numElements(); ++j) {
      maxDiff = std::max(maxDiff, std::fabs(static_cast<double>(got.at(j)) - want.data[j]));
      maxRef = std::max(maxRef, std::fabs(want.data[j]));
    }
    double relative = maxDiff / std::max(maxRef, 1e-30);
    double tolerance = got.dtype == MOE_I32 ? 0.0 : got.dtype == MOE_F32 ? 1e-5 : 1e-2;
    bool ok = relative <= tolerance && got.shape == want.shape;
    llvm::outs() << "check: " << got.name << " max |compiled - reference| / max |reference| = "
                 << llvm::format("%.3g", relative) << " (tolerance " << llvm::format("%g", tolerance)
                 << ") " << (ok ? "OK" : "MISMATCH") << "\n";
    if (!ok)
      status = 1;
  }
  return status;
}


} // namespace

int run(const LayerSource &source, const RunOptions &options) {
  CompiledLayer compiled;
  rt::Artifact &artifact = compiled.artifact;
  if (llvm::StringRef(source.path).ends_with(".moeb")) {
    if (options.check) {
      llvm::WithColor::error(llvm::errs(), "moec") << "--check needs the .moe source, not an artifact\n";
      return 1;
    }
    if (rt::readArtifact(source.path, artifact) != MOE_OK)
      return runtimeError();
  } else if (!compileLayer(source, compiled)) {
    return 1;
  }
  bool gpuArtifact = artifact.signature.target.rfind("cuda-", 0) == 0;
  if ((options.device == "cuda" && !gpuArtifact) || (options.device == "cpu" && gpuArtifact)) {
    llvm::WithColor::error(llvm::errs(), "moec")
        << "--device=" << options.device << " cannot run an artifact for " << artifact.signature.target << "\n";
    return 1;
  }
  std::unique_ptr<rt::Layer> layer;
  if (rt::Layer::load(std::move(artifact), layer) != MOE_OK)
    return runtimeError();
  rt::SessionOptions session;
  session.weights = options.weights;
  session.inputs = options.inputs;
  session.outputs = options.outputs;
  session.seed = options.seed;
  session.tokens = options.tokens;
  session.iterations = options.iterations;
  session.threads = options.threads;
  session.bench = options.bench;
  session.tool = "moec";
  rt::SessionCheck check;
  if (options.check)
    check = [&](const std::vector<rt::Tensor> &inputs, const std::vector<rt::Tensor> &params,
                const std::vector<rt::Tensor> &outputs) {
      std::vector<rt::Tensor> given;
      if (!options.checkOutputs.empty()) {
        if (rt::readSafetensors(options.checkOutputs, given) != MOE_OK)
          return runtimeError();
        llvm::outs() << "check: the outputs of " << options.checkOutputs << "\n";
      }
      int status = checkAgainstReference(*compiled.moeModule, inputs, params,
                                         options.checkOutputs.empty() ? outputs : given);
      llvm::outs().flush(); // before the session's summary, which goes to stdout
      return status;
    };
  llvm::outs().flush();
  return rt::runSession(*layer, session, stdout, check);
}

} // namespace moec
