// session.cc - run a layer: weights, inputs, outputs, summary, benchmark.
#include "moe/runtime/session.h"

#include "moe/runtime/cpu_kernels.h"
#include "moe/runtime/safetensors.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

namespace moe::runtime {
namespace {

int error(const SessionOptions &options) {
  std::fprintf(stderr, "%s: error: %s\n", options.tool.c_str(), moe_last_error());
  return 1;
}

std::string describe(const Tensor &t) { return t.name + " " + shapeString(t.shape) + " " + moe_dtype_name(t.dtype); }

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

} // namespace

int runSession(Layer &layer, const SessionOptions &options, FILE *out, const SessionCheck &check) {
  if (options.threads)
    moe_cpu_set_num_threads(static_cast<int>(options.threads));
  const Signature &sig = layer.signature();

  std::vector<Tensor> weights;
  if (!options.weights.empty()) {
    if (readSafetensors(options.weights, weights) != MOE_OK)
      return error(options);
    layer.convertWeightTypes(weights, stderr);
  } else {
    if (layer.checkParametersFit() != MOE_OK)
      return error(options);
    weights = layer.randomParameters(options.seed);
  }
  if (layer.bindParameters(std::move(weights)) != MOE_OK)
    return error(options);

  std::vector<Tensor> inputs;
  if (!options.inputs.empty()) {
    if (readSafetensors(options.inputs, inputs) != MOE_OK)
      return error(options);
  } else {
    std::map<std::string, int64_t> symbols;
    for (const TensorSpec &in : sig.inputs)
      for (const Dim &d : in.shape)
        if (d.isSymbolic())
          symbols[d.symbol] = options.tokens;
    if (layer.randomInputs(options.seed, symbols, inputs) != MOE_OK)
      return error(options);
  }

  std::vector<Tensor> outputs;
  auto start = std::chrono::steady_clock::now();
  if (layer.run(inputs, outputs) != MOE_OK)
    return error(options);
  double firstMs = seconds(start) * 1e3;
  if (!options.outputs.empty() && writeSafetensors(options.outputs, outputs) != MOE_OK)
    return error(options);
  int status = check ? check(inputs, layer.parameters(), outputs) : 0;

  // Summary: shapes, and the mean magnitude of each output to eyeball.
  std::string summary = sig.layer + ": ";
  for (size_t i = 0; i < inputs.size(); ++i)
    summary += (i ? ", " : "") + describe(inputs[i]);
  summary += " ->";
  for (const Tensor &o : outputs) {
    double sumAbs = 0;
    bool finite = true;
    for (int64_t i = 0; i < o.numElements(); ++i) {
      float v = o.at(i);
      finite = finite && std::isfinite(v);
      sumAbs += std::fabs(v);
    }
    char stats[96];
    std::snprintf(stats, sizeof stats, " (mean |v| %.4g%s)",
                  o.numElements() ? sumAbs / static_cast<double>(o.numElements()) : 0.0, finite ? "" : ", NOT FINITE");
    summary += " " + describe(o) + stats;
  }
  if (layer.onGpu())
    std::fprintf(out, "%s; %.2f ms on %s (first call, copies included)\n", summary.c_str(), firstMs,
                 layer.deviceName().c_str());
  else
    std::fprintf(out, "%s; %.2f ms, %d threads\n", summary.c_str(), firstMs, moe_cpu_get_num_threads());

  auto benchmark = [&](const std::vector<Tensor> &at) {
    std::vector<double> times;
    if (layer.benchmark(at, std::max(1u, options.iterations), times) != MOE_OK)
      return false;
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    int64_t tokens = at.empty() || at[0].shape.empty() ? 0 : at[0].shape[0];
    double gflops = sig.flopsPerToken * static_cast<double>(tokens) / median / 1e9;
    if (layer.onGpu())
      std::fprintf(out, "bench: %s tokens=%lld median %.4f ms over %zu CUDA-graph replays, %.1f TFLOP/s (%s)\n",
                   sig.layer.c_str(), static_cast<long long>(tokens), median * 1e3, times.size(), gflops / 1e3,
                   layer.deviceName().c_str());
    else
      std::fprintf(out, "bench: %s tokens=%lld median %.3f ms over %zu calls, %.1f GFLOP/s (%d threads)\n",
                   sig.layer.c_str(), static_cast<long long>(tokens), median * 1e3, times.size(), gflops,
                   moe_cpu_get_num_threads());
    std::fflush(out);
    return true;
  };
  if (options.bench) {
    if (!benchmark(inputs))
      return error(options);
    for (unsigned tokens : options.moreBenchTokens) {
      std::map<std::string, int64_t> symbols;
      for (const TensorSpec &in : sig.inputs)
        for (const Dim &d : in.shape)
          if (d.isSymbolic())
            symbols[d.symbol] = tokens;
      std::vector<Tensor> more;
      if (layer.randomInputs(options.seed, symbols, more) != MOE_OK || !benchmark(more))
        return error(options);
    }
  }
  std::fflush(out);
  return status;
}

} // namespace moe::runtime
