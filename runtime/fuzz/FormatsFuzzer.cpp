// FormatsFuzzer.cpp - libFuzzer target for the runtime's parsers of untrusted
// bytes: safetensors files and .moeb artifacts (and the JSON inside both).
// Each must reject or accept; never crash, hang or read out of bounds (ASan).
//   build/bin/moe-formats-fuzzer runtime/fuzz/corpus
#include "moe/runtime/artifact.h"
#include "moe/runtime/safetensors.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<moe::runtime::Tensor> tensors;
  (void)moe::runtime::parseSafetensors(data, size, tensors);
  moe::runtime::Artifact artifact;
  (void)moe::runtime::parseArtifact(data, size, artifact);
  return 0;
}
