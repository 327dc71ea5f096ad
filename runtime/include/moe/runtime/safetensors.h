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
#include <vector>

namespace moe::runtime {

/// Parses a safetensors image held in memory.
moe_status_t parseSafetensors(const uint8_t *bytes, size_t size, std::vector<Tensor> &out);
moe_status_t readSafetensors(const std::string &path, std::vector<Tensor> &out);
/// Writes `tensors` (names must be unique) with an optional __metadata__.
moe_status_t writeSafetensors(const std::string &path, const std::vector<Tensor> &tensors);

/// Reads a whole file (a clear error if it cannot).
moe_status_t readFile(const std::string &path, std::vector<uint8_t> &out);

} // namespace moe::runtime

#endif // MOE_RUNTIME_SAFETENSORS_H
