// checkpoint_index.h - the index of a checkpoint directory (index.json,
// docs/checkpoint.md) parsed and checked: every global tensor's dtype,
// shape, placement and chunks (element range, file, byte range, CRC-32 per
// block). Untrusted bytes: runtime/fuzz/FormatsFuzzer.cpp feeds it.
#ifndef MOE_RUNTIME_CHECKPOINT_INDEX_H
#define MOE_RUNTIME_CHECKPOINT_INDEX_H

#include "moe/runtime/dtype.h"
#include "moe/runtime/status.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

constexpr int kCheckpointVersion = 2;

/// A saved chunk: elements [first, last) of its tensor at bytes [begin,
/// begin + bytes) of `file`, with a CRC-32 per block of `blockBytes`.
struct SavedChunk {
  std::string file;
  int64_t first = 0, last = 0, begin = 0, bytes = 0, blockBytes = 0;
  std::vector<uint32_t> crcs;
};

struct SavedTensor {
  moe_dtype_t dtype = MOE_F32;
  std::vector<int64_t> shape;
  std::string placement = "replicated";
  std::vector<SavedChunk> chunks; ///< ascending, disjoint
};

/// A parsed index (version 1: one chunk a tensor, one CRC; version 2:
/// chunks by element range, a CRC per block of crc32_block_bytes).
struct CheckpointIndex {
  int64_t step = 0, optimizerSteps = 0;
  std::string writtenBy;
  std::map<std::string, SavedTensor> tensors;
};

/// Parses index `text` (`dir` names it in messages); a malformed, overlapping
/// or inconsistent entry is refused naming the tensor.
moe_status_t parseCheckpointIndex(std::string_view text, const std::string &dir, CheckpointIndex &out);
/// Reads and parses `dir`/index.json.
moe_status_t readCheckpointIndex(const std::string &dir, CheckpointIndex &out);

} // namespace moe::runtime

#endif // MOE_RUNTIME_CHECKPOINT_INDEX_H
