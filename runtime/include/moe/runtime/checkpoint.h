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

#include "moe/runtime/checkpoint_index.h"
#include "moe/runtime/comm.h"
#include "moe/runtime/optimizer.h"
#include "moe/runtime/status.h"
#include "moe/runtime/tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime {

/// Where a rank's part of a global tensor lies: elements [begin, begin +
/// count) of the flattened global tensor (a placed layer's shard, as
/// mesh.h's paramShard gives it), held in a local tensor of `localShape`
/// (`stored` elements: the count, then an FSDP chunk's zero padding).
struct TensorExtent {
  std::vector<int64_t> globalShape;
  int64_t begin = 0, count = 0, stored = 0;
  std::vector<int64_t> localShape;
  std::string placement = "replicated"; ///< "experts" or "replicated", recorded in the index
  bool writes = true;                   ///< this rank saves the range (one holder of each range does)
};

/// Where rank `rank` of `mesh` holds a parameter of global `shape` placed
/// as `placement` (paramShard), and whether it is the rank that saves that
/// range: the lowest rank holding any of it (replicas and FSDP copies write
/// nothing twice).
TensorExtent meshExtent(const Mesh &mesh, int64_t rank, Placement placement, const std::vector<int64_t> &shape);

/// What a training run resumes from.
struct TrainingState {
  int64_t step = 0;                              ///< steps completed; the next batch is batch `step mod batches`
  std::vector<Tensor> params;                    ///< the weights, by checkpoint name
  int64_t optimizerSteps = 0;                    ///< AdamW's step count (its bias correction)
  std::map<std::string, AdamW::State> optimizer; ///< per trainable parameter (as its parameter is held)
  std::string writtenBy;                         ///< who saved it, and on which mesh (loaded; for people)
  /// A rank's shard of a mesh's state: the extent of each of `params` (and
  /// of its optimizer state) by name. Empty: the tensors are whole.
  std::map<std::string, TensorExtent> extents;
};

/// Saves `state` as `root/step-<step>` (root created if needed), then
/// points `root/latest` at it. `writer` describes who wrote it and `mesh`
/// the mesh (for people: loading needs neither). `path` gets the directory.
/// With `comm` (world > 1) a collective: every rank writes the ranges it
/// holds and `writes` into its own file, in parallel, and rank 0 writes
/// the index once every file is on the disk.
moe_status_t saveCheckpoint(const std::string &root, const TrainingState &state, const std::string &writer,
                            std::string &path, Communicator *comm = nullptr, const std::string &mesh = "");

/// `--async` saves: the state is handed over (the snapshot: training is
/// blocked only while the caller copies it), then written by a background
/// thread while training continues, one save at a time. On a mesh the
/// thread writes the rank's file only; the index, which needs every rank's
/// files, is written from the caller's thread at the next start() or at
/// finish(), which every rank calls at the same step.
class BackgroundCheckpoint {
public:
  BackgroundCheckpoint();
  BackgroundCheckpoint(const BackgroundCheckpoint &) = delete;
  BackgroundCheckpoint &operator=(const BackgroundCheckpoint &) = delete;
  ~BackgroundCheckpoint();

  /// Finishes the save in flight (its result is the return value, its
  /// message moe_last_error()), then starts writing `state`.
  moe_status_t start(const std::string &root, TrainingState state, const std::string &writer,
                     Communicator *comm = nullptr, const std::string &mesh = "");
  /// Finishes the save in flight; MOE_OK when there is none.
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
/// names, else the highest step with an index), checking the checksums of
/// every byte read. `path` gets the directory read. With `wanted`, only
/// those tensors' ranges (a rank's shards for any mesh; their optimizer
/// states too), read from whichever chunks hold them, into local tensors;
/// without, every tensor whole.
moe_status_t loadCheckpoint(const std::string &root, TrainingState &state, std::string &path,
                            const std::map<std::string, TensorExtent> *wanted = nullptr);

/// The placement the index records for each tensor of the newest complete
/// checkpoint under `root`, with its global shape (moe-checkpoint reshard).
moe_status_t checkpointLayout(const std::string &root, std::map<std::string, TensorExtent> &layout);

} // namespace moe::runtime

#endif // MOE_RUNTIME_CHECKPOINT_H
