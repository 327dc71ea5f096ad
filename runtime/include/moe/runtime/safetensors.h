// safetensors.h - reading and writing safetensors files (F32, F16, BF16, I32).
//
// Reading is strict, because checkpoints are untrusted input: the header
// length must fit the file, the header must be valid JSON with unique names,
// every dtype known, every shape's byte size equal to its data_offsets span,
// offsets inside the data region, in order, not overlapping and leaving no
// holes. Every violation is a MOE_INVALID_FORMAT with a message naming the
// tensor and the values involved.
#ifndef MOE_RUNTIME_SAFETENSORS_H
#define MOE_RUNTIME_SAFETENSORS_H

#include "moe/runtime/status.h"
#include "moe/runtime/tensor.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// A tensor of a safetensors header: its data at bytes [begin, end) of the
/// data region.
struct TensorEntry {
  std::string name;
  moe_dtype_t dtype = MOE_F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

/// Parses and checks a header (the JSON text) for a data region of `dataSize` bytes.
moe_status_t parseSafetensorsHeader(std::string_view header, uint64_t dataSize, std::vector<TensorEntry> &out);

/// A safetensors file read in pieces: open() reads and checks the header
/// only; readElements() reads a range of one tensor with pread, so a rank of
/// a mesh reads its own shard and never the whole file.
class SafetensorsFile {
public:
  SafetensorsFile() = default;
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;
  ~SafetensorsFile();
  moe_status_t open(const std::string &path);
  const std::vector<TensorEntry> &entries() const { return entries_; }
  const TensorEntry *find(const std::string &name) const;
  /// Elements [first, first + count) of `e` (row-major) into `out`.
  moe_status_t readElements(const TensorEntry &e, int64_t first, int64_t count, void *out) const;
  const std::string &fileName() const { return path; }

private:
  std::string path;
  int fd = -1;
  uint64_t dataStart = 0;
  std::vector<TensorEntry> entries_;
};

/// Parses a safetensors image held in memory.
moe_status_t parseSafetensors(const uint8_t *bytes, size_t size, std::vector<Tensor> &out);
moe_status_t readSafetensors(const std::string &path, std::vector<Tensor> &out);
/// Writes `tensors` (names must be unique) with an optional __metadata__.
moe_status_t writeSafetensors(const std::string &path, const std::vector<Tensor> &tensors);

/// A tensor to write from memory the writer does not own (a checkpoint's
/// optimizer state, written without copying it into Tensors).
struct TensorView {
  std::string name;
  moe_dtype_t dtype = MOE_F32;
  std::vector<int64_t> shape;
  const void *data = nullptr;
  size_t bytes = 0;
};
/// The same writer over views; `fileOffsets`, when given, gets each
/// tensor's absolute byte offset in the file.
moe_status_t writeSafetensors(const std::string &path, const std::vector<TensorView> &tensors,
                              std::vector<uint64_t> *fileOffsets = nullptr);

/// Reads a whole file (a clear error if it cannot).
moe_status_t readFile(const std::string &path, std::vector<uint8_t> &out);

} // namespace moe::runtime

#endif // MOE_RUNTIME_SAFETENSORS_H
