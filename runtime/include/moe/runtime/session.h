// session.h - one "run a layer" session: weights, inputs, a call, outputs,
// a summary, an optional benchmark. Shared by `moec run` and the runtime-only
// runner `moe-run`, so both behave the same.
#ifndef MOE_RUNTIME_SESSION_H
#define MOE_RUNTIME_SESSION_H

#include "moe/runtime/layer.h"

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace moe::runtime {

struct SessionOptions {
  std::string weights, inputs, outputs; ///< safetensors paths; empty: random / none
  unsigned seed = 0, tokens = 16, iterations = 10, threads = 0;
  bool bench = false;
  /// With bench on a GPU: time plain calls, not CUDA-graph replays (a
  /// sharded cuda layer is always timed so).
  bool benchEager = false;
  /// With bench: more token counts timed on the same weights (random inputs).
  std::vector<unsigned> moreBenchTokens;
  /// Backward (a train artifact): gradients for the cotangents in this
  /// safetensors file (one per output, named as it; empty: random normals),
  /// written with the outputs to `outputs`.
  bool backward = false;
  std::string cotangents;
  std::string tool = "moe-run"; ///< the program name errors start with
  std::string errorPrefix;      ///< after "error": " (rank 2)" on a mesh
};

/// Called after the first run with (inputs, parameters, outputs); returns an
/// exit status (e.g. moec's comparison with the reference evaluator).
using SessionCheck =
    std::function<int(const std::vector<Tensor> &, const std::vector<Tensor> &, const std::vector<Tensor> &)>;

/// Called after the backward with (inputs, parameters, cotangents, gradients).
using SessionGradientCheck = std::function<int(const std::vector<Tensor> &, const std::vector<Tensor> &,
                                               const std::vector<Tensor> &, const std::vector<Tensor> &)>;

/// Binds the layer's weights: from the safetensors file at `path` (each rank
/// its shard when `comm` is the layer's mesh; float types converted, a note
/// each on `notes`), else random ones by `seed` (refused first when they do
/// not fit this machine).
moe_status_t bindWeights(Layer &layer, const std::string &path, unsigned seed, Communicator *comm, FILE *notes);

/// Runs `layer` as the options say, printing the summary (and benchmark) to
/// `out` and errors to stderr. Returns the process exit status.
int runSession(Layer &layer, const SessionOptions &options, FILE *out, const SessionCheck &check = nullptr,
               const SessionGradientCheck &gradientCheck = nullptr);

} // namespace moe::runtime

#endif // MOE_RUNTIME_SESSION_H
