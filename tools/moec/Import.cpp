//===- Import.cpp - moec import / export-hf ---------------------*- C++ -*-===//
//
// One MoE layer's weights between a Hugging Face checkpoint and moec's
// weights file (moe/runtime/hf.h does the mapping):
//
//   moec import CHECKPOINT --layer N [--family mixtral|qwen3_moe|deepseek_v3] -o W.safetensors
//   moec export-hf W.safetensors --family F --layer N -o HF.safetensors
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "moe/runtime/hf.h"
#include "moe/runtime/safetensors.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr const char *kImportUsage =
    "usage: moec import CHECKPOINT --layer N [--family mixtral|qwen3_moe|deepseek_v3] -o W.safetensors\n"
    "CHECKPOINT: a Hugging Face checkpoint directory (sharded: with model.safetensors.index.json), its index\n"
    "file, or one .safetensors file. Writes decoder layer N's MoE block under the names of examples/*.moe\n"
    "(experts stacked, [out, in] Linear weights transposed to [in, out]); the family is found from the\n"
    "tensor names unless given.\n";
constexpr const char *kExportUsage =
    "usage: moec export-hf W.safetensors --family mixtral|qwen3_moe|deepseek_v3 --layer N -o HF.safetensors\n"
    "Writes moec's weights of one MoE layer as decoder layer N's tensors in Hugging Face's layout.\n";

struct Args {
  std::string input, output, family;
  int64_t layer = -1;
  bool ok = true;
};

Args parse(int argc, char **argv) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        a.ok = false;
        return "";
      }
      return argv[++i];
    };
    if (arg == "--layer") {
      std::string v = value();
      char *end = nullptr;
      a.layer = std::strtoll(v.c_str(), &end, 10);
      a.ok = a.ok && !v.empty() && *end == 0 && a.layer >= 0;
    } else if (arg == "--family") {
      a.family = value();
    } else if (arg == "-o") {
      a.output = value();
    } else if (arg.rfind("-", 0) != 0 && a.input.empty()) {
      a.input = arg;
    } else {
      a.ok = false;
    }
  }
  a.ok = a.ok && !a.input.empty() && !a.output.empty() && a.layer >= 0;
  return a;
}

int failed() {
  std::fprintf(stderr, "moec: error: %s\n", moe_last_error());
  return 1;
}

} // namespace

int moec::importHf(int argc, char **argv) {
  Args a = parse(argc, argv);
  if (!a.ok) {
    std::fputs(kImportUsage, stderr);
    return 1;
  }
  moe::runtime::HfLayer hf{a.input, a.layer, std::nullopt};
  if (!a.family.empty()) {
    hf.family = moe::runtime::parseHfFamily(a.family);
    if (!hf.family) {
      std::fprintf(stderr, "moec: error: unknown --family '%s' (mixtral, qwen3_moe or deepseek_v3)\n",
                   a.family.c_str());
      return 1;
    }
  }
  std::vector<moe::runtime::Tensor> weights;
  moe::runtime::HfFamily family;
  if (moe::runtime::importHuggingFace(hf, weights, &family) != MOE_OK ||
      moe::runtime::writeSafetensors(a.output, weights) != MOE_OK)
    return failed();
  std::printf("moec: imported layer %lld of %s (%s) to %s\n", static_cast<long long>(a.layer), a.input.c_str(),
              moe::runtime::hfFamilyName(family), a.output.c_str());
  for (const moe::runtime::Tensor &t : weights)
    std::printf("  %s %s %s\n", t.name.c_str(), moe_dtype_name(t.dtype), moe::runtime::shapeString(t.shape).c_str());
  return 0;
}

int moec::exportHf(int argc, char **argv) {
  Args a = parse(argc, argv);
  std::optional<moe::runtime::HfFamily> family = moe::runtime::parseHfFamily(a.family);
  if (!a.ok || !family) {
    std::fputs(kExportUsage, stderr);
    return 1;
  }
  std::vector<moe::runtime::Tensor> weights;
  if (moe::runtime::readSafetensors(a.input, weights) != MOE_OK ||
      moe::runtime::exportHuggingFace(weights, *family, a.layer, a.output) != MOE_OK)
    return failed();
  std::printf("moec: wrote %s's weights as layer %lld of a %s checkpoint to %s\n", a.input.c_str(),
              static_cast<long long>(a.layer), moe::runtime::hfFamilyName(*family), a.output.c_str());
  return 0;
}
