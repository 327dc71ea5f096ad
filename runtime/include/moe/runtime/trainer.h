// trainer.h - training a compiled layer on one device (spec, "Training"):
// a step is the forward, the loss, the backward and AdamW on every trainable
// parameter. The loss is the mean squared error of the first output to a
// target plus every scalar output (an auxiliary loss the layer returns,
// already scaled), so its cotangents are 2 (y - target) / numel(y) for the
// first output, 1 for a scalar output and 0 for any other.
//
//   Trainer trainer(*layer, AdamWOptions{});
//   double loss;
//   trainer.step({x}, target, loss);          // x: this step's batch
#ifndef MOE_RUNTIME_TRAINER_H
#define MOE_RUNTIME_TRAINER_H

#include "moe/runtime/checkpoint.h"
#include "moe/runtime/comm.h"
#include "moe/runtime/layer.h"
#include "moe/runtime/optimizer.h"

#include <cstdio>
#include <string>
#include <vector>

namespace moe::runtime {

class GpuTrainStep;

class Trainer {
public:
  /// `layer` must be a train artifact (moec build --train) with bound parameters.
  /// `balanceRate`: the step of DeepSeek-V3's bias update for parameters
  /// with update "balance" (b_e += rate * sign(mean load - load_e)).
  /// `comm`: the ranks' communicator (null: one device). A layer placed on a
  /// mesh (moec build --train --mesh ep=E, attached to `comm`) holds its
  /// rank's experts, and its backward forms every gradient in the
  /// single-device order; any other layer runs whole on every rank, data
  /// parallel over `comm`, each rank with its own rows of each batch.
  Trainer(Layer &layer, AdamWOptions options, double balanceRate = 1e-3, Communicator *comm = nullptr);
  ~Trainer();

  /// One step on `inputs` toward `target` (the first output's shape and
  /// dtype; on a communicator, this rank's rows of both); `loss` gets the
  /// loss of the global batch before the update. AdamW moves the trainable
  /// parameters; a parameter with update "balance" moves by its experts'
  /// load in this batch.
  ///
  /// On one device and on a placed layer's mesh, one backward over the
  /// batch (its sums over the tokens per 128-token block in f32, added in
  /// block order: the same bits on every mesh). On one GPU (an unsharded
  /// CUDA train artifact), the whole step runs on the device: outputs,
  /// gradients and AdamW's masters and moments never leave it, and the
  /// host's copy of the parameters is refreshed for state() and
  /// globalParameters() (Layer::pullParameters). Data parallel over whole
  /// layers (row-independent ones only), a backward per
  /// MOE_GRADIENT_BLOCK_TOKENS rows, whose partials are summed from zeros in
  /// global block order, rank after rank: the same bits as one device for
  /// f32 parameters when every rank's rows are a multiple of the block (a
  /// bf16 or f16 parameter's block partials are rounded to its type first).
  moe_status_t step(const std::vector<Tensor> &inputs, const Tensor &target, double &loss);

  /// On one GPU, keeps a training data file's x [batches, ...] and target
  /// [batches, ...] on the device for stepBatch; false where it does not
  /// (the CPU, a mesh, data over a quarter of the free device memory).
  bool holdData(const Tensor &x, const Tensor &target);
  /// step() on batch `batch` of the data holdData keeps: the same bits.
  moe_status_t stepBatch(int64_t batch, double &loss);

  /// The update of a step for gradients the caller got from
  /// Layer::backward (any loss): AdamW on the trainable parameters, the
  /// balance rule on update = :balance ones; the layer is rebound.
  moe_status_t apply(std::vector<Tensor> gradients);

  /// Changes AdamW's hyperparameters from the next step on (a learning-rate
  /// schedule); the moments and step count are kept.
  void setOptions(const AdamWOptions &options) { optimizer_.setOptions(options); }
  void setBalanceRate(double rate) { balanceRate_ = rate; }

  const AdamW &optimizer() const { return optimizer_; }

  /// The state a checkpoint keeps after `step` steps (the layer's weights,
  /// AdamW's masters and moments; a placed layer's rank: its shards, with
  /// their extents), and its restoration on resume (a placed layer: from
  /// the shards loadCheckpoint read for shardExtents, or from whole tensors).
  moe_status_t state(int64_t step, TrainingState &out) const;
  moe_status_t restore(const TrainingState &state);

  /// The layer's parameters as global tensors (a collective on a placed layer).
  moe_status_t globalParameters(std::vector<Tensor> &out) const;

private:
  moe_status_t blockedGradients(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                                std::vector<Tensor> &out);
  std::vector<int64_t> everyRank() const;
  /// Whether steps run on the device (one GPU, the artifact's step kernels).
  bool onDevice() const;
  /// The device step made, the options checked, the step counted.
  moe_status_t prepareDeviceStep();

  Layer &layer_;
  /// The options and step count; on the GPU the state is the device step's.
  AdamW optimizer_;
  std::unique_ptr<GpuTrainStep> gpuStep_; ///< made by the first step of a GPU layer
  bool heldData_ = false;                 ///< the data is on the device (holdData)
  double balanceRate_;
  Communicator *comm_;
};

/// Where a placed layer's rank holds each parameter (and its optimizer
/// state) in the global tensors, and whether it is the rank that saves
/// that range: what its checkpoints save and its resumes load.
std::map<std::string, TensorExtent> shardExtents(const Layer &layer);

/// What `moe-run --train` and `moe-run --make-data` are asked to do.
struct TrainOptions {
  std::string data;  ///< safetensors: x [steps, tokens, ...], target [steps, tokens, ...]
  int64_t steps = 0; ///< train until this step (the data's batches cycle)
  AdamWOptions adamw;
  /// The learning rate over the steps (scheduledLr): "constant", "linear" or
  /// "cosine" decay to 0 at the last step, after `warmupSteps` of linear warm-up.
  std::string lrSchedule = "constant";
  int64_t warmupSteps = 0;
  double balanceRate = 1e-3;    ///< DeepSeek-V3's bias update speed (update = :balance)
  std::string saveWeights;      ///< write the final weights here (safetensors)
  std::string lossCsv;          ///< write step,loss,seconds here
  std::string plot;             ///< draw the loss curve into this PNG (log scale)
  std::string checkpointDir;    ///< save the training state here ...
  int64_t checkpointEvery = 0;  ///< ... after every this many steps (0: never)
  std::string resume;           ///< continue from the newest complete checkpoint here
  bool asyncCheckpoint = false; ///< write checkpoints in the background (--async)
  bool autoResume = false;      ///< resume from checkpointDir if it holds a checkpoint, else start (restarts)
  bool progress = true;         ///< a progress line per step on stderr (a bar on a terminal)
};

/// The learning rate of step `step` (1-based) of `options.steps`, as
/// transformers' get_{constant,linear,cosine}_schedule_with_warmup form it at
/// their step `step - 1`: `lr * (step - 1) / warmup` while warming up, then
/// constant, or decaying linearly or along a half cosine to 0 at the end.
/// A function of the step alone: a resumed run continues the same curve.
double scheduledLr(const TrainOptions &options, int64_t step);
/// Refuses an unknown schedule or a warm-up longer than the run.
moe_status_t checkSchedule(const TrainOptions &options);

/// The training loop: reads the data, steps `options.steps` times, prints a
/// summary to `out`. On `comm` (mpirun), data parallel: each rank trains on
/// its rows of every batch, rank 0 prints and writes. Returns the process
/// exit status.
int runTraining(Layer &layer, const TrainOptions &options, FILE *out, Communicator *comm = nullptr);

/// Writes a training data file for a student of `teacher`: `steps` batches
/// of `tokens` random inputs (by `seed`) and the teacher's first output on
/// each, as x [steps, tokens, ...] and target [steps, tokens, ...].
moe_status_t makeTeacherData(Layer &teacher, int64_t steps, int64_t tokens, uint64_t seed, const std::string &path);

} // namespace moe::runtime

#endif // MOE_RUNTIME_TRAINER_H
