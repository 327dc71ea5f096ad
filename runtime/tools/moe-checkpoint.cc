// moe-checkpoint.cc - looks into training checkpoints (docs/checkpoint.md)
// and exports one as a single-device weights file.
//
//   moe-checkpoint info C              the newest complete checkpoint: step, tensors
//   moe-checkpoint export C W.safetensors   its weights, the moe-run --weights format
#include "moe/runtime/checkpoint.h"
#include "moe/runtime/safetensors.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {

const char *kUsage = "usage: moe-checkpoint info CHECKPOINT_DIR\n"
                     "       moe-checkpoint export CHECKPOINT_DIR OUT.safetensors\n"
                     "Reads the newest complete checkpoint under CHECKPOINT_DIR (moe-run --checkpoint-dir), checking\n"
                     "every chunk's checksum; export writes its weights as one safetensors file (moe-run --weights).\n";

int failed() {
  std::fprintf(stderr, "moe-checkpoint: error: %s\n", moe_last_error());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  bool info = argc == 3 && std::strcmp(argv[1], "info") == 0;
  bool exporting = argc == 4 && std::strcmp(argv[1], "export") == 0;
  if (!info && !exporting) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  moe::runtime::TrainingState state;
  std::string path;
  if (moe::runtime::loadCheckpoint(argv[2], state, path) != MOE_OK)
    return failed();
  if (exporting) {
    if (moe::runtime::writeSafetensors(argv[3], state.params) != MOE_OK)
      return failed();
    std::printf("wrote the %zu weights of %s (step %lld) to %s\n", state.params.size(), path.c_str(),
                static_cast<long long>(state.step), argv[3]);
    return 0;
  }
  std::printf("%s: step %lld, AdamW step %lld, %zu weights, optimizer state for %zu\n", path.c_str(),
              static_cast<long long>(state.step), static_cast<long long>(state.optimizerSteps), state.params.size(),
              state.optimizer.size());
  for (const moe::runtime::Tensor &t : state.params)
    std::printf("  %s %s %s\n", t.name.c_str(), moe::runtime::shapeString(t.shape).c_str(), moe_dtype_name(t.dtype));
  return 0;
}
