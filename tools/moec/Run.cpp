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

#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/Reference/Evaluator.h"
#include "moe/runtime/layer.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/session.h"
#include "moe/runtime/target.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "llvm/ADT/SetVector.h"
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

moe::reference::Tensor toReference(const rt::Tensor &t) {
  moe::reference::Tensor r;
  r.shape = t.shape;
  r.data.resize(static_cast<size_t>(t.numElements()));
  for (int64_t i = 0; i < t.numElements(); ++i)
    r.data[i] = t.at(i);
  return r;
}

/// The comparison tolerance of an output: the narrowest floating-point type
/// that the computation producing it passes through (a bf16 intermediate
/// inside an f32 layer rounds as much as a bf16 output): 1e-5 when every
/// value on the way is f32, 1e-2 when a bf16 or f16 value is on the way, and
/// exact for index outputs.
double toleranceOf(mlir::Value output) {
  if (mlir::getElementTypeOrSelf(output.getType()).isInteger(32))
    return 0.0;
  llvm::SetVector<mlir::Operation *> slice;
  mlir::BackwardSliceOptions sliceOptions;
  sliceOptions.omitBlockArguments = true;
  if (mlir::Operation *def = output.getDefiningOp()) {
    (void)mlir::getBackwardSlice(def, &slice, sliceOptions);
    slice.insert(def);
  }
  // The loosest tolerance of the float dtypes the computation passes through
  // (the dtype table's, moe/runtime/dtype.h).
  double tolerance = rt::checkTolerance(MOE_F32);
  auto widen = [&](mlir::Type t) {
    std::optional<moe_dtype_t> d = moe::runtimeDType(t);
    if (d && rt::isFloatDType(*d))
      tolerance = std::max(tolerance, rt::checkTolerance(*d));
  };
  widen(output.getType());
  for (mlir::Operation *op : slice) {
    for (mlir::Type t : op->getResultTypes())
      widen(t);
    for (mlir::Type t : op->getOperandTypes())
      widen(t);
  }
  return tolerance;
}

/// max |got - want| / max |want|: the checks' measure of a tensor's error.
/// `zeroIsAbsolute`: an all-zero reference compares the error itself (a
/// gradient nothing flows to must come back zero), else it divides by 1e-30.
double relativeDifference(const rt::Tensor &got, const moe::reference::Tensor &want, bool zeroIsAbsolute) {
  double maxDiff = 0, maxRef = 0;
  for (int64_t j = 0; j < got.numElements(); ++j) {
    maxDiff = std::max(maxDiff, std::fabs(static_cast<double>(got.at(j)) - want.data[j]));
    maxRef = std::max(maxRef, std::fabs(want.data[j]));
  }
  if (zeroIsAbsolute && maxRef == 0)
    return maxDiff;
  return maxDiff / std::max(maxRef, 1e-30);
}

/// Prints one check line; returns whether it passed.
bool reportCheck(const std::string &name, double relative, double tolerance) {
  bool ok = relative <= tolerance;
  llvm::outs() << "check: " << name
               << " max |compiled - reference| / max |reference| = " << llvm::format("%.3g", relative) << " (tolerance "
               << llvm::format("%g", tolerance) << ") " << (ok ? "OK" : "MISMATCH") << "\n";
  return ok;
}

/// Runs the float64 reference evaluator on the same inputs and weights (the
/// same moe IR the artifact was compiled from, evaluated in float64) and
/// compares max |compiled - reference| / max |reference| per output against
/// toleranceOf. Returns the exit status.
int checkAgainstReference(mlir::ModuleOp module, const std::vector<rt::Tensor> &inputs,
                          const std::vector<rt::Tensor> &params, const std::vector<const rt::Tensor *> &outputs) {
  auto fn = *module.getOps<mlir::func::FuncOp>().begin();
  std::vector<moe::reference::Tensor> args;
  for (const rt::Tensor &t : inputs)
    args.push_back(toReference(t));
  for (const rt::Tensor &t : params)
    args.push_back(toReference(t));
  std::string error;
  auto expected = moe::reference::evaluate(fn, args, error);
  if (mlir::failed(expected)) {
    llvm::WithColor::error(llvm::errs(), "moec") << "reference evaluator: " << error << "\n";
    return 1;
  }
  auto returnOp = llvm::cast<mlir::func::ReturnOp>(fn.getBody().front().getTerminator());
  int status = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const rt::Tensor &got = *outputs[i];
    const moe::reference::Tensor &want = (*expected)[i];
    if (got.shape != want.shape) {
      llvm::outs() << "check: " << got.name << " has shape " << rt::shapeString(got.shape) << ", the reference "
                   << rt::shapeString(want.shape) << " MISMATCH\n";
      status = 1;
      continue;
    }
    if (!reportCheck(got.name, relativeDifference(got, want, false), toleranceOf(returnOp.getOperand(i))))
      status = 1;
  }
  return status;
}

/// The gradients' tolerance: 1e-5 relative when every tensor of the layer is
/// f32, 2e-2 when a bf16 or f16 one is (the and docs/training.md's).
double gradientTolerance(mlir::func::FuncOp fn) {
  bool narrow = false;
  fn.walk([&](mlir::Operation *op) {
    for (mlir::Type t : llvm::concat<const mlir::Type>(op->getOperandTypes(), op->getResultTypes())) {
      mlir::Type e = mlir::getElementTypeOrSelf(t);
      narrow = narrow || e.isBF16() || e.isF16();
    }
  });
  for (mlir::Type t : fn.getArgumentTypes())
    narrow = narrow || mlir::getElementTypeOrSelf(t).isBF16() || mlir::getElementTypeOrSelf(t).isF16();
  return narrow ? 2e-2 : 1e-5;
}

/// The compiled gradients against reference::gradient (float64, the exact
/// forward) for the same inputs, weights and cotangents: max |compiled -
/// reference| / max |reference| per gradient. Returns the exit status.
int checkGradients(mlir::ModuleOp module, const rt::Signature &sig, const std::vector<rt::Tensor> &inputs,
                   const std::vector<rt::Tensor> &params, const std::vector<rt::Tensor> &cotangents,
                   const std::vector<rt::Tensor> &gradients) {
  auto fn = *module.getOps<mlir::func::FuncOp>().begin();
  std::vector<moe::reference::Tensor> args, cots;
  std::vector<std::string> names;
  for (const rt::Tensor &t : inputs)
    args.push_back(toReference(t));
  for (const rt::Tensor &t : params)
    args.push_back(toReference(t));
  for (const rt::TensorSpec &spec : sig.inputs)
    names.push_back(spec.name);
  for (const rt::TensorSpec &spec : sig.params)
    names.push_back(spec.name);
  for (const rt::TensorSpec &spec : sig.outputs)
    for (const rt::Tensor &c : cotangents)
      if (c.name == spec.name)
        cots.push_back(toReference(c));
  std::string error;
  auto expected = moe::reference::gradient(fn, args, cots, nullptr, error);
  if (mlir::failed(expected)) {
    llvm::WithColor::error(llvm::errs(), "moec") << "reference evaluator: " << error << "\n";
    return 1;
  }
  double tolerance = gradientTolerance(fn);
  int status = 0;
  for (const rt::Tensor &got : gradients) {
    if (got.name.rfind("load.", 0) == 0)
      continue; // a balance bias's expert load, not a gradient (test/Training/balance.test checks it)
    auto at = std::find(names.begin(), names.end(), got.name.substr(5)); // "grad." + name
    if (got.name.rfind("grad.", 0) != 0 || at == names.end()) {
      llvm::outs() << "check: " << got.name << " names no argument MISMATCH\n";
      status = 1;
      continue;
    }
    const moe::reference::Tensor &want = (*expected)[at - names.begin()];
    if (got.shape != want.shape) {
      llvm::outs() << "check: " << got.name << " has shape " << rt::shapeString(got.shape) << ", the reference "
                   << rt::shapeString(want.shape) << " MISMATCH\n";
      status = 1;
    } else if (!reportCheck(got.name, relativeDifference(got, want, /*zeroIsAbsolute=*/true), tolerance)) {
      status = 1;
    }
  }
  return status;
}

/// A backward's result that is not an output: grad.<name>, or a balance load.
bool isGradientName(const rt::Tensor &t) {
  return llvm::StringRef(t.name).starts_with("grad.") || llvm::StringRef(t.name).starts_with("load.");
}

/// Picks the outputs of a --check-outputs file by name, in the layer's order,
/// checking dtype and shape before any element is read. Null after an error.
bool matchOutputsByName(llvm::StringRef path, const std::vector<rt::Tensor> &given,
                        const std::vector<rt::Tensor> &computed, std::vector<const rt::Tensor *> &matched) {
  auto fail = [&](const llvm::Twine &message) {
    llvm::WithColor::error(llvm::errs(), "moec") << path << ": " << message << "\n";
    return false;
  };
  std::string names;
  for (const rt::Tensor &c : computed)
    names += (names.empty() ? "'" : ", '") + c.name + "'";
  for (const rt::Tensor &want : computed) {
    auto it = std::find_if(given.begin(), given.end(), [&](const rt::Tensor &t) { return t.name == want.name; });
    if (it == given.end())
      return fail("has no tensor named '" + want.name + "' (the layer's outputs are " + names +
                  ", as moec run --output writes them)");
    if (it->dtype != want.dtype)
      return fail("'" + want.name + "' is " + moe_dtype_name(it->dtype) + ", the layer returns " +
                  moe_dtype_name(want.dtype));
    if (it->shape != want.shape)
      return fail("'" + want.name + "' has shape " + rt::shapeString(it->shape) + ", the layer returns " +
                  rt::shapeString(want.shape));
    matched.push_back(&*it);
  }
  for (const rt::Tensor &t : given)
    if (std::none_of(computed.begin(), computed.end(), [&](const rt::Tensor &c) { return c.name == t.name; }))
      return fail("'" + t.name + "' is not an output of the layer (its outputs are " + names + ")");
  return true;
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
  std::optional<rt::Target> target = rt::parseTarget(artifact.signature.target);
  bool gpuArtifact = target && target->isCuda();
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
  session.backward = options.backward;
  session.cotangents = options.cotangents;
  rt::SessionCheck check;
  if (options.check)
    check = [&](const std::vector<rt::Tensor> &inputs, const std::vector<rt::Tensor> &params,
                const std::vector<rt::Tensor> &outputs) {
      std::vector<rt::Tensor> given;
      std::vector<const rt::Tensor *> compared;
      if (options.checkOutputs.empty()) {
        for (const rt::Tensor &t : outputs)
          compared.push_back(&t);
      } else {
        if (rt::readSafetensors(options.checkOutputs, given) != MOE_OK)
          return runtimeError();
        // A backward's file (moe-run --backward --output) also holds its gradients.
        if (options.backward)
          given.erase(std::remove_if(given.begin(), given.end(), isGradientName), given.end());
        if (!matchOutputsByName(options.checkOutputs, given, outputs, compared))
          return 1;
        llvm::outs() << "check: the outputs of " << options.checkOutputs << "\n";
      }
      int status = checkAgainstReference(*compiled.moeModule, inputs, params, compared);
      llvm::outs().flush(); // before the session's summary, which goes to stdout
      return status;
    };
  rt::SessionGradientCheck gradientCheck;
  if (options.check && options.backward)
    gradientCheck = [&](const std::vector<rt::Tensor> &inputs, const std::vector<rt::Tensor> &params,
                        const std::vector<rt::Tensor> &cotangents, const std::vector<rt::Tensor> &gradients) {
      if (options.checkOutputs.empty())
        return checkGradients(*compiled.moeModule, layer->signature(), inputs, params, cotangents, gradients);
      // The gradients of another run (a GPU's, say): those of the file.
      std::vector<rt::Tensor> given, theirs;
      std::vector<const rt::Tensor *> compared;
      if (rt::readSafetensors(options.checkOutputs, given) != MOE_OK)
        return runtimeError();
      given.erase(std::remove_if(given.begin(), given.end(), [](const rt::Tensor &t) { return !isGradientName(t); }),
                  given.end());
      if (!matchOutputsByName(options.checkOutputs, given, gradients, compared))
        return 1;
      for (const rt::Tensor *t : compared)
        theirs.push_back(*t);
      llvm::outs() << "check: the gradients of " << options.checkOutputs << "\n";
      int status = checkGradients(*compiled.moeModule, layer->signature(), inputs, params, cotangents, theirs);
      llvm::outs().flush();
      return status;
    };
  llvm::outs().flush();
  return rt::runSession(*layer, session, stdout, check, gradientCheck);
}

} // namespace moec
