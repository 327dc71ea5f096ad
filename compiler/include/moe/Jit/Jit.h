//===- Jit.h - compile-on-first-call layers with a cache --------*- C++ -*-===//
//
// Julia's method specialisation for MoE layers: a jit::Function holds a
// layer *definition* (a C++ function that builds a Graph for given input
// dtypes and shapes). The first call with a new signature — input names,
// dtypes and every dimension but the first (the token count, left symbolic) —
// builds the graph, compiles it for the CPU and caches the artifact in memory
// and on disk; later calls with that signature run the cached layer.
//
//   moe::jit::Function layer("Tiny", [](moe::builder::Graph &g, const auto &in) {
//     auto x = g.input("x", "f32", {"tokens", in[0].shape[1]});
//     ...
//   });
//   layer({x}, outputs);   // compiles
//   layer({x2}, outputs);  // same dtypes and widths: no compilation
//
//===----------------------------------------------------------------------===//
#ifndef MOE_JIT_JIT_H
#define MOE_JIT_JIT_H

#include "moe/Builder/GraphBuilder.h"
#include "moe/runtime/layer.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe::jit {

/// One input of a call, as the definition sees it.
struct InputSpec {
  std::string name;
  moe_dtype_t dtype;
  std::vector<int64_t> shape;
};

using Definition = std::function<void(builder::Graph &, const std::vector<InputSpec> &)>;

struct Options {
  /// Disk cache directory; empty: $MOE_CACHE_DIR, else $HOME/.cache/moec; "-"
  /// (here or in $MOE_CACHE_DIR): no disk cache.
  std::string cacheDir;
  /// Seed of the random parameters given to names setParameters did not bind.
  uint64_t seed = 0;
  /// "cpu", or a CUDA architecture (sm_90a, sm_90, sm_80): where the layer runs.
  std::string target = "cpu";
  /// GPU targets: also embed a cubin assembled by the toolkit's ptxas. Off,
  /// the artifact holds PTX that the driver compiles when it loads it: a
  /// shorter compile (no ptxas), but the first load on a cold driver cache
  /// pays the driver's compile (docs/performance.md has both measured).
  bool cubin = false;
  /// The device mesh the layer is placed on (part of the cache key). On a
  /// mesh of several ranks each process calls with its own rows of the batch
  /// (moe/runtime/mesh.h's tokenSlice) and `communicator` (which must
  /// outlive the Function); setParameters still takes the global tensors.
  runtime::Mesh mesh;
  runtime::Communicator *communicator = nullptr;
};

struct Stats {
  int compilations = 0; ///< layers compiled (cache misses everywhere)
  int memoryHits = 0;   ///< calls served by an already loaded specialisation
  int diskHits = 0;     ///< specialisations loaded from the disk cache
};

class Function {
public:
  Function(std::string name, Definition define, Options options = {});
  ~Function();

  /// Parameters by checkpoint name, shared by every specialisation. A name the
  /// layer does not have makes the next call fail with MOE_INVALID_ARGUMENT.
  void setParameters(std::vector<runtime::Tensor> params);

  /// Runs the layer, compiling it first for a new signature.
  moe_status_t operator()(const std::vector<runtime::Tensor> &inputs, std::vector<runtime::Tensor> &outputs);

  const Stats &stats() const { return counters; }
  /// The .moe source of the last specialisation built.
  const std::string &lastSource() const { return source; }

private:
  moe_status_t specialise(const std::vector<InputSpec> &specs, runtime::Layer *&out);

  std::string name;
  Definition define;
  Options options;
  std::vector<runtime::Tensor> params;
  std::map<std::string, std::unique_ptr<runtime::Layer>> loaded; ///< by signature key
  Stats counters;
  std::string source;
};

/// The compiler's build identity: its version, the git revision it was
/// configured from and the GNU build ID of every loaded object holding
/// compiler code (this program or library, the moe, MLIR and LLVM libraries).
/// Computed once per process.
const std::string &compilerIdentity();

/// The disk cache's key for `source` compiled with `options`: a hash of the
/// compiler identity, every option that changes code (the target, the cubin, the mesh) and the
/// source. A rebuilt compiler or another target never hits a stale entry.
std::string diskCacheKey(const Options &options, const std::string &source);

/// Compiles `.moe` source text (buffer `bufferName`) for the CPU; diagnostics
/// go to stderr. Shared by the JIT and `moec`.
moe_status_t compileSourceForCPU(const std::string &text, const std::string &bufferName, runtime::Artifact &out);

/// Compiles a layer's .moe source for `target` ("cpu" or a CUDA architecture);
/// `cubin`: on a GPU target, embed a cubin from ptxas beside the PTX.
moe_status_t compileSource(const std::string &text, const std::string &bufferName, const std::string &target,
                           runtime::Artifact &out, bool cubin = false, const runtime::Mesh &mesh = {});

} // namespace moe::jit

#endif // MOE_JIT_JIT_H
