//===- Commands.h - moec's build and run commands ---------------*- C++ -*-===//
#ifndef MOEC_COMMANDS_H
#define MOEC_COMMANDS_H

#include "moe/Compiler/CompileOptions.h"

#include <string>
#include <utility>
#include <vector>

namespace moec {

/// A layer to compile: a .moe file (with --layer and --set) or a .moeb artifact.
struct LayerSource {
  std::string path;
  std::string layer;
  std::vector<std::pair<std::string, std::string>> overrides;
  /// The target (the CPU or a CUDA architecture) and the GPU code generator's choices (moec: from the flags).
  moe::CompileOptions target;
};

struct RunOptions {
  std::string weights, inputs, outputs;
  unsigned seed = 0, tokens = 16, iterations = 10, threads = 0;
  bool bench = false;
  bool check = false; ///< compare with the float64 reference evaluator
  std::string device; ///< "", "cpu" or "cuda": where the artifact must run
  /// With check: compare these outputs (a safetensors file, e.g. written by
  /// moe-run on a GPU machine from the same seed) with the reference instead.
  std::string checkOutputs;
  /// The backward too (the layer compiled with --train): gradients for the
  /// cotangents in this file (empty: random), checked by --check.
  bool backward = false;
  std::string cotangents;
};

/// `moec build`: compiles the layer for its target into an artifact at `output`.
int build(const LayerSource &source, const std::string &output);

/// `moec run`: runs a .moe (compiled in memory) or a .moeb on the CPU or the GPU
/// its target names.
int run(const LayerSource &source, const RunOptions &options);

/// `moec import` / `moec export-hf` (argv after the subcommand): one MoE
/// layer's weights from a Hugging Face checkpoint, or back (docs/weights.md).
int importHf(int argc, char **argv);
int exportHf(int argc, char **argv);

} // namespace moec

#endif // MOEC_COMMANDS_H
