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
#include "moe/runtime/cpu_kernels.h"
#include "moe/runtime/layer.h"
#include "moe/runtime/safetensors.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
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

std::string describe(const rt::Tensor &t) {
  return t.name + " " + rt::shapeString(t.shape) + " " + moe_dtype_name(t.dtype);
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
  if (options.threads)
    moe_cpu_set_num_threads(static_cast<int>(options.threads));
  double flopsPerToken = artifact.signature.flopsPerToken;
  std::unique_ptr<rt::Layer> layer;
  if (rt::Layer::load(std::move(artifact), layer) != MOE_OK)
    return runtimeError();
  const rt::Signature &sig = layer->signature();

  std::vector<rt::Tensor> weights;
  if (!options.weights.empty()) {
    if (rt::readSafetensors(options.weights, weights) != MOE_OK)
      return runtimeError();
  } else {
    weights = layer->randomParameters(options.seed);
  }
  if (layer->bindParameters(std::move(weights)) != MOE_OK)
    return runtimeError();

  std::vector<rt::Tensor> inputs;
  if (!options.inputs.empty()) {
    if (rt::readSafetensors(options.inputs, inputs) != MOE_OK)
      return runtimeError();
  } else {
    std::map<std::string, int64_t> symbols;
    for (const rt::TensorSpec &in : sig.inputs)
      for (const rt::Dim &d : in.shape)
        if (d.isSymbolic())
          symbols[d.symbol] = options.tokens;
    if (layer->randomInputs(options.seed, symbols, inputs) != MOE_OK)
      return runtimeError();
  }

  std::vector<rt::Tensor> outputs;
  auto start = std::chrono::steady_clock::now();
  if (layer->run(inputs, outputs) != MOE_OK)
    return runtimeError();
  double firstMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  if (!options.outputs.empty() && rt::writeSafetensors(options.outputs, outputs) != MOE_OK)
    return runtimeError();
  int checkStatus = 0;
  if (options.check)
    checkStatus = checkAgainstReference(*compiled.moeModule, inputs, layer->parameters(), outputs);

  // Summary: shapes, and a few statistics of each output to eyeball.
  std::string summary = sig.layer + ": ";
  for (size_t i = 0; i < inputs.size(); ++i)
    summary += (i ? ", " : "") + describe(inputs[i]);
  summary += " ->";
  for (const rt::Tensor &o : outputs) {
    double sumAbs = 0;
    bool finite = true;
    for (int64_t i = 0; i < o.numElements(); ++i) {
      float v = o.at(i);
      finite = finite && std::isfinite(v);
      sumAbs += std::fabs(v);
    }
    char stats[96];
    std::snprintf(stats, sizeof stats, " (mean |v| %.4g%s)",
                  o.numElements() ? sumAbs / static_cast<double>(o.numElements()) : 0.0,
                  finite ? "" : ", NOT FINITE");
    summary += " " + describe(o) + stats;
  }
  llvm::outs() << summary << "; " << llvm::format("%.2f", firstMs) << " ms, "
               << moe_cpu_get_num_threads() << " threads\n";

  if (options.bench) {
    std::vector<double> times;
    for (unsigned i = 0; i < std::max(1u, options.iterations); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      if (layer->run(inputs, outputs) != MOE_OK)
        return runtimeError();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    int64_t tokenCount = inputs.empty() || inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
    double gflops = flopsPerToken * static_cast<double>(tokenCount) / median / 1e9;
    llvm::outs() << "bench: " << sig.layer << " tokens=" << tokenCount << " median "
                 << llvm::format("%.3f", median * 1e3) << " ms over " << times.size() << " calls, "
                 << llvm::format("%.1f", gflops) << " GFLOP/s (" << moe_cpu_get_num_threads()
                 << " threads)\n";
  }
  return checkStatus;
}

} // namespace moec
