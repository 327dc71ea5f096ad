// FormatsFuzzer.cpp - libFuzzer target for the runtime's parsers of untrusted
// bytes: safetensors files, .moeb artifacts and checkpoint indexes (and the
// JSON inside them).
// Each must reject or accept; never crash, hang or read out of bounds (ASan).
//   build/bin/moe-formats-fuzzer runtime/fuzz/corpus
#include "moe/runtime/artifact.h"
#include "moe/runtime/checkpoint_index.h"
#include "moe/runtime/safetensors.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<moe::runtime::Tensor> tensors;
  (void)moe::runtime::parseSafetensors(data, size, tensors);
  moe::runtime::Artifact artifact;
  (void)moe::runtime::parseArtifact(data, size, artifact);
  moe::runtime::CheckpointIndex index;
  (void)moe::runtime::parseCheckpointIndex(std::string_view(reinterpret_cast<const char *>(data), size), "fuzz", index);
  return 0;
}
