// layer.h - a compiled layer, loaded from an artifact and ready to run.
//
//   std::unique_ptr<Layer> layer;
//   if (Layer::loadFile("mixtral.moeb", layer) != MOE_OK) puts(moe_last_error());
//   layer->bindParameters(weights);          // by name: "router.weight", ...
//   layer->run({x}, outputs);                // inputs by name: "x"
//
// The artifact's CPU code is a shared object loaded from memory (memfd); like
// any native library it is trusted code: the runtime checks the artifact's
// integrity and every tensor's dtype and shape, not the code's intent.
#ifndef MOE_RUNTIME_LAYER_H
#define MOE_RUNTIME_LAYER_H

#include "moe/runtime/artifact.h"
#include "moe/runtime/comm.h"
#include "moe/runtime/cuda.h"
#include "moe/runtime/tensor.h"

#include <cstdio>
#include <functional>
#include <map>
#include <memory>

namespace moe::runtime {

struct DeviceArguments;

/// forwardForBackward's residuals and the inputs they are of: host tensors
/// (CPU), or device buffers and their descriptors (GPU).
struct KeptResiduals {
  std::vector<Tensor> inputs, residuals;
  std::vector<DeviceBuffer> deviceBuffers;
  std::vector<std::vector<int64_t>> deviceDescriptors;
};

class Layer {
public:
  ~Layer();
  Layer(const Layer &) = delete;
  Layer &operator=(const Layer &) = delete;

  static moe_status_t load(Artifact artifact, std::unique_ptr<Layer> &out);
  static moe_status_t loadFile(const std::string &path, std::unique_ptr<Layer> &out);

  const Signature &signature() const { return artifact.signature; }
  /// The bound parameters, in signature order.
  const std::vector<Tensor> &parameters() const { return params; }
  /// Moves the bound parameters out (an update in place, then
  /// bindParameters); the layer has none until they are bound again.
  /// Call pullParameters first after GPU training steps.
  std::vector<Tensor> takeParameters() {
    deviceParams.clear();
    kept.reset(); // residuals of these parameters
    return std::move(params);
  }
  /// Brings the host copy of the parameters (parameters()) up to the
  /// device's after GPU training steps updated them there; nothing to do
  /// otherwise.
  moe_status_t pullParameters();

  /// Places the layer on a rank of its mesh: the communicator its collectives
  /// run on (it must outlive the layer's calls). Without one, the layer runs
  /// as the world of one. The world must match the signature's mesh.
  moe_status_t attach(Communicator *communicator);
  int64_t rank() const { return comm ? comm->rank() : 0; }
  Communicator *communicator() const { return comm; }
  /// Whether the layer is placed on more than one rank.
  bool isSharded() const { return signature().mesh.isPlaced(); }
  /// The shard of parameter `spec` this rank holds (mesh.h), and the shape
  /// bindParameters expects for it.
  ParamShard paramShardOf(const TensorSpec &spec) const;
  /// A hash of the whole artifact (FNV-1a 64 over its signature and code),
  /// compared across ranks at start-up.
  uint64_t artifactHash() const { return hash; }

  /// Binds every parameter by its checkpoint name; dtypes and shapes must
  /// match the signature exactly. Extra tensors are an error too (a typo in a
  /// name must not go unnoticed).
  moe_status_t bindParameters(std::vector<Tensor> params);

  /// Converts weights read from a file to the float types the layer declares
  /// (an F32 file for a bf16 layer: NumPy has no bf16), with one note a
  /// converted tensor on `notes` (null: none). Index tensors and shapes are
  /// left for bindParameters to check. Call before bindParameters.
  void convertWeightTypes(std::vector<Tensor> &weights, FILE *notes) const;

  /// Runs the layer. `inputs` are matched by name; symbolic dimensions are
  /// bound from them and must agree. Outputs are named "output" (one) or
  /// "output1", "output2", ... (several).
  moe_status_t run(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs);

  /// A training step's forward: run(), keeping for the next backward on the
  /// same inputs (and parameters) the residuals it takes, where the artifact
  /// has any: the train forward's results after the outputs, kept in host
  /// memory on the CPU and in device memory on a GPU.
  moe_status_t forwardForBackward(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs);

  /// Whether the artifact has a backward (moec build --train).
  bool hasBackward() const { return backwardEntry != nullptr; }

  /// The backward of a train artifact: the gradients of every float input
  /// and parameter ("grad.x", "grad.<param>", signature().backward->gradients)
  /// on `inputs` for `cotangents`, one per output, named as the output
  /// ("output", or "output1", ...). It recomputes what the forward does not
  /// keep; where the artifact keeps residuals it takes those of the last
  /// forwardForBackward on these inputs, or runs the train forward first (on
  /// a GPU in the same call). Kept residuals are used once.
  moe_status_t backward(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                        std::vector<Tensor> &gradients);

  /// Deterministic random parameters following each one's init (normal scaled
  /// by 1/sqrt(fan-in): dimension 1, or 2 of a stacked [n, in, out] tensor; zeros, ones), and random inputs with the
  /// symbolic dimensions set from `symbols`.
  std::vector<Tensor> randomParameters(uint64_t seed) const;

  /// Refuses, before anything is allocated, a layer whose parameters cannot
  /// be held: a size whose bytes overflow, or more bytes in all than this
  /// machine has available (MemAvailable). The message names the largest
  /// tensor and the bytes. Called before random parameters are made.
  moe_status_t checkParametersFit() const;

  /// Whether the layer runs on a GPU (a cuda-* artifact), and which one.
  bool onGpu() const { return gpu != nullptr; }
  std::string deviceName() const;

  /// Times `iterations` calls on `inputs` (after one warm-up call), in seconds
  /// each. On a GPU, inputs stay on the device and one call is captured as a
  /// CUDA graph whose replays are timed with device events; `eager` (and
  /// every sharded layer, whose exchanges wait on the host) times plain
  /// calls instead, to their last kernel. `collectiveSeconds`, when given,
  /// gets each call's time inside collectives.
  moe_status_t benchmark(const std::vector<Tensor> &inputs, unsigned iterations, std::vector<double> &seconds,
                         bool eager = false, std::vector<double> *collectiveSeconds = nullptr);
  /// A training step's forward and backward time on `inputs` and
  /// `cotangents`: the forward's call, then the backward's (which recomputes
  /// what the forward does not keep); on a GPU `iterations` CUDA-graph
  /// replays of both with every argument on the device (plain calls with
  /// `eager`); on the CPU plain calls.
  moe_status_t benchmarkBackward(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                                 unsigned iterations, std::vector<double> &seconds, bool eager = false);
  /// Standard normal cotangents shaped as `outputs` (for moe-run --backward
  /// without --cotangent, and the checks).
  std::vector<Tensor> randomCotangents(uint64_t seed, const std::vector<Tensor> &outputs) const;
  moe_status_t randomInputs(uint64_t seed, const std::map<std::string, int64_t> &symbols,
                            std::vector<Tensor> &out) const;

private:
  friend class GpuTrainStep; // runs the entries on device-resident tensors
  Layer() = default;
  moe_status_t orderArguments(const std::vector<Tensor> &inputs, std::vector<const Tensor *> &ordered,
                              std::map<std::string, int64_t> &symbols);
  /// The train forward on the inputs and parameters that lead `ordered`: its
  /// outputs, and its residuals moved into `residuals`.
  moe_status_t trainForwardOnCpu(const std::vector<const Tensor *> &ordered, std::map<std::string, int64_t> &symbols,
                                 std::vector<Tensor> &outputs, std::vector<Tensor> &residuals);
  moe_status_t callOnCpu(void (*fn)(void **), const std::vector<TensorSpec> &resultSpecs,
                         const std::vector<const Tensor *> &ordered, std::map<std::string, int64_t> &symbols,
                         std::vector<Tensor> &outputs);
  /// One entry's call in a GPU benchmark: the entry (the forward's or the
  /// backward's), its results and its arguments in order.
  struct GpuBenchCall {
    void (*fn)(void **);
    const std::vector<TensorSpec> *results;
    std::vector<const Tensor *> ordered;
    /// The previous call's results past its outputs (a train forward's
    /// residuals) follow `ordered`.
    bool residualsFromPrevious = false;
  };
  /// The benchmarks' GPU half: `calls` one after another, captured as one
  /// CUDA graph and replayed `iterations` times (plain calls with `eager`).
  moe_status_t benchmarkOnGpu(const std::vector<GpuBenchCall> &calls, unsigned iterations, std::vector<double> &seconds,
                              bool eager,
                              const std::function<moe_status_t(const std::function<moe_status_t()> &)> &timeCalls);
  /// Calls `fn` (the forward's or the backward's entry) on the GPU; its
  /// results are `resultSpecs`.
  /// With `residualsFirst` (a backward whose artifact keeps residuals), the
  /// train forward runs first in the same call, on the first inputs and
  /// parameters of `ordered`, and its residuals follow `ordered`; with
  /// `residuals` (kept device residuals), those follow `ordered`. With
  /// `keepResults` (a train forward), the buffers of results past the
  /// outputs move there instead of being downloaded.
  moe_status_t runOnGpu(void (*fn)(void **), const std::vector<TensorSpec> &resultSpecs,
                        const std::vector<const Tensor *> &ordered, std::map<std::string, int64_t> &symbols,
                        std::vector<Tensor> &outputs, bool residualsFirst = false,
                        const KeptResiduals *residuals = nullptr, KeptResiduals *keepResults = nullptr);
  moe_status_t uploadParameters();
  /// The device current, the parameters uploaded, the inputs placed.
  moe_status_t prepareGpuCall(const std::vector<const Tensor *> &ordered, DeviceArguments &args);

  // Declared first, destroyed last: the layer's code unloads its GPU module
  // when it is closed.
  std::unique_ptr<CudaDevice> gpu;
  std::vector<DeviceBuffer> deviceParams;
  Artifact artifact;
  void *library = nullptr;
  int libraryFd = -1;
  void (*entry)(void **) = nullptr;
  void (*backwardEntry)(void **) = nullptr;
  /// The train forward (outputs, then residuals), when the backward takes residuals.
  void (*trainEntry)(void **) = nullptr;
  std::unique_ptr<KeptResiduals> kept;
  std::vector<Tensor> params;
  /// The device's parameters are newer than `params` (GPU training steps).
  bool hostParametersBehind = false;
  Communicator *comm = nullptr;
  uint64_t hash = 0;
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_LAYER_H
