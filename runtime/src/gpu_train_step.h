// gpu_train_step.h - a training step of a GPU layer with everything on the
// device: the forward's outputs, the loss's cotangent (the artifact's
// squared-error kernel), the backward's gradients and AdamW (its kernel, on
// f32 masters and moments kept on the device). Only the loss's row sums and
// a balance bias's loads come back to the host; the parameters' host copy
// is refreshed when asked (Layer::pullParameters).
#ifndef MOE_RUNTIME_GPU_TRAIN_STEP_H
#define MOE_RUNTIME_GPU_TRAIN_STEP_H

#include "moe/runtime/cuda.h"
#include "moe/runtime/layer.h"
#include "moe/runtime/optimizer.h"

#include <map>
#include <memory>
#include <string>

namespace moe::runtime {

struct DeviceArguments;

class GpuTrainStep {
public:
  /// Whether `layer` can take GPU steps: an unsharded GPU train artifact
  /// that carries the step's kernels (train_kernels.h).
  static bool available(const Layer &layer);
  /// Loads the step's kernels for `layer` (which must outlive it).
  static moe_status_t create(Layer &layer, std::unique_ptr<GpuTrainStep> &out);

  /// One step on `inputs` toward `target`, AdamW's step `t` with `options`
  /// (Trainer::step's contract). A parameter without moments on the device
  /// yet starts from `initial` (a restored checkpoint's state) when it
  /// holds it, else from its bound value with zero moments.
  moe_status_t step(const std::vector<Tensor> &inputs, const Tensor &target, const AdamWOptions &options, int64_t t,
                    double balanceRate, const std::map<std::string, AdamW::State> &initial, double &loss);

  /// Keeps a training data file's x [batches, ...] and target [batches, ...]
  /// on the device (refused when they exceed a quarter of its free memory),
  /// for stepBatch: no upload or host copy of a batch each step.
  moe_status_t holdData(const Tensor &x, const Tensor &target);
  /// step() on batch `b` of the held data.
  moe_status_t stepBatch(int64_t b, const AdamWOptions &options, int64_t t, double balanceRate,
                         const std::map<std::string, AdamW::State> &initial, double &loss);

  /// Forgets the device's masters and moments (a checkpoint was restored:
  /// the next step starts them from its state).
  void dropMoments() { moments_.clear(); }

  /// AdamW's state on the device, downloaded (for checkpoints).
  moe_status_t state(std::map<std::string, AdamW::State> &out) const;

private:
  explicit GpuTrainStep(Layer &layer) : layer_(layer) {}
  struct Moments {
    DeviceBuffer master, m, v;
    int64_t count = 0; ///< elements of each
  };
  /// The step from the forward on: `forwardArgs` (inputs and parameters on
  /// the device, symbols bound) toward the target at device address `target`.
  moe_status_t run(DeviceArguments &forwardArgs, std::map<std::string, int64_t> &symbols, uint64_t target,
                   moe_dtype_t targetType, const std::vector<int64_t> &targetShape, const AdamWOptions &options,
                   int64_t t, double balanceRate, const std::map<std::string, AdamW::State> &initial, double &loss);
  moe_status_t launchAdamW(size_t param, uint64_t grad, moe_dtype_t gradType, const AdamWScalars &scalars,
                           const std::map<std::string, AdamW::State> &initial);

  Layer &layer_;
  CudaModule module_;
  std::map<std::string, void *> kernels_;  ///< by name
  std::map<std::string, Moments> moments_; ///< by parameter name
  struct HeldData {
    DeviceBuffer x, target;
    moe_dtype_t xType = MOE_F32, targetType = MOE_F32;
    std::vector<int64_t> xShape, targetShape;
  } data_;
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_GPU_TRAIN_STEP_H
