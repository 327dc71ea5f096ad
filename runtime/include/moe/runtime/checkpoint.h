// checkpoint.h - training checkpoints (docs/checkpoint.md): a directory per
// saved step under a checkpoint root, holding safetensors shard files and
// one JSON index that gives, for every global tensor (the weights, AdamW's
// f32 masters and moments), its dtype, shape and the file, byte range,
// offsets and CRC-32 of each saved chunk. The index is written last, and the
// directory renamed into place after it: a save killed at any point leaves
// the previous checkpoint whole, and a half-written one (no index, or a
// temporary name) is never taken for a complete one.
#ifndef MOE_RUNTIME_CHECKPOINT_H
#define MOE_RUNTIME_CHECKPOINT_H

#include "moe/runtime/optimizer.h"
#include "moe/runtime/status.h"
#include "moe/runtime/tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime {

constexpr int kCheckpointVersion = 1;

/// What a training run resumes from.
struct TrainingState {
  int64_t step = 0;                              ///< steps completed; the next batch is batch `step mod batches`
  std::vector<Tensor> params;                    ///< the global weights, by checkpoint name
  int64_t optimizerSteps = 0;                    ///< AdamW's step count (its bias correction)
  std::map<std::string, AdamW::State> optimizer; ///< per trainable parameter
  std::string writtenBy;                         ///< who saved it, and on which mesh (loaded; for people)
};

/// Saves `state` as `root/step-<step>` (root created if needed), then
/// points `root/latest` at it. `writer` describes who wrote it (the mesh,
/// for people: loading needs none of it). `path` gets the directory.
moe_status_t saveCheckpoint(const std::string &root, const TrainingState &state, const std::string &writer,
                            std::string &path);

/// `--async` saves: the state is handed over (the snapshot: training is
/// blocked only while the caller copies it), then written by a background
/// thread while training continues, one save at a time.
class BackgroundCheckpoint {
public:
  BackgroundCheckpoint();
  BackgroundCheckpoint(const BackgroundCheckpoint &) = delete;
  BackgroundCheckpoint &operator=(const BackgroundCheckpoint &) = delete;
  ~BackgroundCheckpoint();

  /// Waits for the save in flight (its result is the return value, its
  /// message moe_last_error()), then starts writing `state`.
  moe_status_t start(const std::string &root, TrainingState state, const std::string &writer);
  /// Waits for the save in flight; MOE_OK when there is none.
  moe_status_t finish();
  /// The directory and the seconds of the last finished save.
  const std::string &lastPath() const { return path_; }
  double lastSeconds() const { return seconds_; }

private:
  struct Job;
  std::unique_ptr<Job> job_;
  std::string path_;
  double seconds_ = 0;
};

/// Loads the newest complete checkpoint under `root` (the one `latest`
/// names, else the highest step with an index), checking every chunk's
/// byte range and checksum. `path` gets the directory read.
moe_status_t loadCheckpoint(const std::string &root, TrainingState &state, std::string &path);

} // namespace moe::runtime

#endif // MOE_RUNTIME_CHECKPOINT_H
