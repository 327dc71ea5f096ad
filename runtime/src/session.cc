// session.cc - run a layer: weights, inputs, outputs, summary, benchmark.
#include "moe/runtime/session.h"

#include "moe/runtime/cpu_kernels.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/shard_io.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

namespace moe::runtime {
namespace {

int error(const SessionOptions &options) {
  std::fprintf(stderr, "%s: error%s: %s\n", options.tool.c_str(), options.errorPrefix.c_str(), moe_last_error());
  return 1;
}

std::string describe(const Tensor &t) { return t.name + " " + shapeString(t.shape) + " " + moe_dtype_name(t.dtype); }

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void printSummary(const Signature &sig, const std::vector<Tensor> &inputs, const std::vector<Tensor> &outputs,
                  FILE *out, const std::string &where) {
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
  std::fprintf(out, "%s; %s\n", summary.c_str(), where.c_str());
}

/// The slowest rank's value of `v` (every rank calls it).
double slowest(Communicator &comm, const Mesh &mesh, double v) {
  std::vector<double> all(static_cast<size_t>(comm.world()));
  if (comm.allGather(mesh.group(comm.rank(), kAllAxes), &v, all.data(), sizeof v, "bench (times)") != MOE_OK)
    return v;
  return *std::max_element(all.begin(), all.end());
}

/// On a mesh: rank 0 prints the global summary; --bench times calls on every
/// rank and reports the slowest rank's median and its share in collectives.
int shardedSummaryAndBench(Layer &layer, Communicator &comm, const std::vector<Tensor> &localInputs,
                           const std::vector<Tensor> &outputs, double firstMs, const SessionOptions &options,
                           FILE *out) {
  const Signature &sig = layer.signature();
  const int64_t tokens = outputs.empty() || outputs[0].shape.empty() ? 0 : outputs[0].shape[0];
  firstMs = slowest(comm, sig.mesh, firstMs);
  if (comm.rank() == 0) {
    char where[160];
    std::string perRank =
        layer.onGpu() ? layer.deviceName() + " a rank" : std::to_string(moe_cpu_get_num_threads()) + " threads a rank";
    std::snprintf(where, sizeof where, "%.2f ms on mesh %s (%lld ranks, %s), %s", firstMs, sig.mesh.toString().c_str(),
                  static_cast<long long>(comm.world()), comm.engine(), perRank.c_str());
    std::vector<Tensor> shown = localInputs;
    for (Tensor &t : shown)
      if (!t.shape.empty())
        t.shape[0] = tokens; // the global batch
    printSummary(sig, shown, outputs, out, where);
  }
  if (options.bench) {
    // Plain calls on every rank (a GPU rank's inputs stay on the device).
    std::vector<double> times, inCollectives, shares;
    if (layer.benchmark(localInputs, std::max(1u, options.iterations), times, /*eager=*/true, &inCollectives) != MOE_OK)
      return error(options);
    for (size_t i = 0; i < times.size(); ++i)
      shares.push_back(inCollectives[i] / times[i]);
    std::vector<size_t> order(times.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return times[a] < times[b]; });
    double median = times[order[order.size() / 2]], share = shares[order[order.size() / 2]];
    double worst = slowest(comm, sig.mesh, median);
    // The collective share of the rank that is slowest.
    std::vector<double> pair{median, share}, all(2 * static_cast<size_t>(comm.world()));
    comm.allGather(sig.mesh.group(comm.rank(), kAllAxes), pair.data(), all.data(), sizeof(double) * 2,
                   "bench (shares)");
    double worstShare = share;
    for (size_t r = 0; r < all.size() / 2; ++r)
      if (all[2 * r] == worst)
        worstShare = all[2 * r + 1];
    if (comm.rank() == 0) {
      double gflops = sig.flopsPerToken * static_cast<double>(tokens) / worst / 1e9;
      const bool gpu = layer.onGpu();
      char where[96];
      if (gpu)
        std::snprintf(where, sizeof where, "%s, %s", layer.deviceName().c_str(), comm.engine());
      else
        std::snprintf(where, sizeof where, "%d threads a rank", moe_cpu_get_num_threads());
      std::fprintf(out,
                   "bench: %s tokens=%lld median %.4f ms (slowest of %lld ranks, mesh %s) over %zu calls, %.1f "
                   "%s, %.0f%% in collectives (%s)\n",
                   sig.layer.c_str(), static_cast<long long>(tokens), worst * 1e3, static_cast<long long>(comm.world()),
                   sig.mesh.toString().c_str(), times.size(), gpu ? gflops / 1e3 : gflops, gpu ? "TFLOP/s" : "GFLOP/s",
                   worstShare * 100, where);
    }
  }
  std::fflush(out);
  return 0;
}

/// --backward: the gradients for the cotangents, written with the outputs.
int backwardSession(Layer &layer, const SessionOptions &options, const std::vector<Tensor> &inputs,
                    const std::vector<Tensor> &outputs, FILE *out, const SessionCheck &check,
                    const SessionGradientCheck &gradientCheck) {
  if (!layer.hasBackward()) {
    fail(MOE_INVALID_ARGUMENT, "--backward needs a train artifact (moec build --train)");
    return error(options);
  }
  // On a mesh the cotangents are global tensors too (a file, or random by
  // the seed for the global outputs), of which each rank takes its rows.
  Communicator *comm = layer.isSharded() ? layer.communicator() : nullptr;
  std::vector<Tensor> globalOutputs = outputs;
  if (comm && gatherOutputs(*comm, layer, outputs, globalOutputs) != MOE_OK)
    return error(options);
  std::vector<Tensor> cotangents;
  if (!options.cotangents.empty()) {
    if (readSafetensors(options.cotangents, cotangents) != MOE_OK)
      return error(options);
  } else {
    cotangents = layer.randomCotangents(options.seed, globalOutputs);
  }
  if (comm)
    for (size_t i = 0; i < cotangents.size(); ++i)
      if (i < layer.signature().outputs.size() && isTokenSliced(layer.signature().outputs[i]) &&
          !cotangents[i].shape.empty()) {
        RowSlice rows = tokenSlice(cotangents[i].shape[0], comm->world(), comm->rank());
        cotangents[i] = sliceRows(cotangents[i], rows.begin, rows.count);
      }
  std::vector<Tensor> gradients;
  auto start = std::chrono::steady_clock::now();
  if (layer.backward(inputs, cotangents, gradients) != MOE_OK)
    return error(options);
  double ms = seconds(start) * 1e3;
  if (comm) {
    std::vector<Tensor> global;
    if (gatherGradients(*comm, layer, gradients, global) != MOE_OK)
      return error(options);
    gradients = std::move(global);
    if (comm->rank() != 0)
      return 0;
  }
  if (!options.outputs.empty()) {
    std::vector<Tensor> written = globalOutputs;
    written.insert(written.end(), gradients.begin(), gradients.end());
    if (writeSafetensors(options.outputs, written) != MOE_OK)
      return error(options);
  }
  int status = check ? check(inputs, layer.parameters(), outputs) : 0;
  if (gradientCheck)
    status |= gradientCheck(inputs, layer.parameters(), cotangents, gradients);
  // What the backward's call ran before its gradients: the train forward
  // (the residuals it keeps) or the forward inside the backward.
  const bool keeps = layer.signature().backward && !layer.signature().backward->residuals.empty();
  std::fprintf(out, "%s backward: %zu gradients in %.2f ms (%s), %d threads\n", layer.signature().layer.c_str(),
               gradients.size(), ms, keeps ? "with the train forward's residuals" : "forward recomputed",
               moe_cpu_get_num_threads());
  for (const Tensor &g : gradients)
    std::fprintf(out, "  %s\n", describe(g).c_str());
  if (options.bench && !comm) {
    // Forward and backward: the backward recomputes the forward.
    std::vector<double> times;
    if (layer.benchmarkBackward(inputs, cotangents, std::max(1u, options.iterations), times, options.benchEager) !=
        MOE_OK)
      return error(options);
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    int64_t tokens = inputs.empty() || inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
    // Useful work: the forward's products and the backward's two (3x the forward's).
    double tflops = 3 * layer.signature().flopsPerToken * static_cast<double>(tokens) / median / 1e12;
    std::fprintf(
        out, "bench backward: %s tokens=%lld median %.4f ms forward + backward over %zu %s, %.1f TFLOP/s (%s)\n",
        layer.signature().layer.c_str(), static_cast<long long>(tokens), median * 1e3, times.size(),
        layer.onGpu() && !options.benchEager ? "CUDA-graph replays" : "calls", tflops, layer.deviceName().c_str());
  }
  std::fflush(out);
  return status;
}

} // namespace

moe_status_t bindWeights(Layer &layer, const std::string &path, unsigned seed, Communicator *comm, FILE *notes) {
  std::vector<Tensor> weights;
  if (!path.empty()) {
    if (comm) {
      if (moe_status_t s = readParameterShards(layer, path, weights, notes))
        return s;
    } else {
      if (moe_status_t s = readSafetensors(path, weights))
        return s;
      layer.convertWeightTypes(weights, notes);
    }
  } else {
    if (moe_status_t s = layer.checkParametersFit())
      return s;
    weights = layer.randomParameters(seed);
    if (comm)
      weights = shardParameters(layer, weights);
  }
  return layer.bindParameters(std::move(weights));
}

int runSession(Layer &layer, const SessionOptions &options, FILE *out, const SessionCheck &check,
               const SessionGradientCheck &gradientCheck) {
  if (options.threads)
    moe_cpu_set_num_threads(static_cast<int>(options.threads));
  const Signature &sig = layer.signature();

  // On a mesh every rank reads its own shard and rows of the same files.
  Communicator *comm = layer.isSharded() ? layer.communicator() : nullptr;
  if (layer.isSharded() && !comm) {
    fail(MOE_INVALID_ARGUMENT, "the layer is placed on mesh " + sig.mesh.toString() + " but has no communicator");
    return error(options);
  }
  const int64_t rank = comm ? comm->rank() : 0, world = comm ? comm->world() : 1;
  if (comm && checkSameArtifact(*comm, layer) != MOE_OK)
    return error(options);
  if (bindWeights(layer, options.weights, options.seed, comm, stderr) != MOE_OK)
    return error(options);

  std::vector<Tensor> inputs;
  if (!options.inputs.empty()) {
    if (comm ? readInputRows(layer, options.inputs, rank, world, inputs) != MOE_OK
             : readSafetensors(options.inputs, inputs) != MOE_OK)
      return error(options);
  } else {
    std::map<std::string, int64_t> symbols;
    for (const TensorSpec &in : sig.inputs)
      for (const Dim &d : in.shape)
        if (d.isSymbolic())
          symbols[d.symbol] = options.tokens;
    if (layer.randomInputs(options.seed, symbols, inputs) != MOE_OK)
      return error(options);
    if (comm)
      inputs = sliceInputs(layer, inputs, rank, world);
  }

  if (options.backward && comm && check) {
    fail(MOE_INVALID_ARGUMENT, "--check of a backward runs on one device (the layer is placed on mesh " +
                                   sig.mesh.toString() + "); compare a mesh's gradients with one device's with cmp");
    return error(options);
  }
  std::vector<Tensor> outputs;
  auto start = std::chrono::steady_clock::now();
  // A backward's forward keeps the residuals the backward takes.
  if ((options.backward ? layer.forwardForBackward(inputs, outputs) : layer.run(inputs, outputs)) != MOE_OK)
    return error(options);
  double firstMs = seconds(start) * 1e3;
  if (options.backward)
    return backwardSession(layer, options, inputs, outputs, out, check, gradientCheck);
  if (comm) {
    // The global outputs (and, for the summary, the global batch size).
    std::vector<Tensor> global;
    if (gatherOutputs(*comm, layer, outputs, global) != MOE_OK)
      return error(options);
    outputs = std::move(global);
  }
  if (rank == 0 && !options.outputs.empty() && writeSafetensors(options.outputs, outputs) != MOE_OK)
    return error(options);
  if (comm)
    return shardedSummaryAndBench(layer, *comm, inputs, outputs, firstMs, options, out);
  int status = check ? check(inputs, layer.parameters(), outputs) : 0;

  char where[160];
  if (layer.onGpu())
    std::snprintf(where, sizeof where, "%.2f ms on %s (first call, copies included)", firstMs,
                  layer.deviceName().c_str());
  else
    std::snprintf(where, sizeof where, "%.2f ms, %d threads", firstMs, moe_cpu_get_num_threads());
  printSummary(sig, inputs, outputs, out, where);

  auto benchmark = [&](const std::vector<Tensor> &at) {
    std::vector<double> times;
    if (layer.benchmark(at, std::max(1u, options.iterations), times, options.benchEager) != MOE_OK)
      return false;
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    int64_t tokens = at.empty() || at[0].shape.empty() ? 0 : at[0].shape[0];
    double gflops = sig.flopsPerToken * static_cast<double>(tokens) / median / 1e9;
    if (layer.onGpu())
      std::fprintf(out, "bench: %s tokens=%lld median %.4f ms over %zu %s, %.1f TFLOP/s (%s)\n", sig.layer.c_str(),
                   static_cast<long long>(tokens), median * 1e3, times.size(),
                   options.benchEager ? "plain calls" : "CUDA-graph replays", gflops / 1e3, layer.deviceName().c_str());
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
