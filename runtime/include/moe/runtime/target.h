// target.h - where a layer's code runs: the compiler <-> runtime contract for
// an artifact's "target", typed. One parser for both spellings a user may
// write (`cpu`, `sm_90a`) and the artifact's own names (`cpu-x86_64`,
// `cuda-sm_90a`), so no code compares target strings.
#ifndef MOE_RUNTIME_TARGET_H
#define MOE_RUNTIME_TARGET_H

#include <optional>
#include <string>
#include <string_view>

namespace moe::runtime {

struct Target {
  enum class Kind { Cpu, Cuda };
  Kind kind = Kind::Cpu;
  /// The CUDA architecture (`sm_90a`, `sm_90`, `sm_80`, ...); empty for the CPU.
  std::string chip;
  /// The compute capability times 10 (90 for sm_90a); 0 for the CPU.
  int computeCapability = 0;
  /// `sm_90a`: code for exactly that capability (wgmma, setmaxnreg).
  bool archSpecific = false;

  static Target cpu() { return {}; }
  bool isCuda() const { return kind == Kind::Cuda; }
  /// The artifact's name: `cpu-x86_64` or `cuda-<chip>`.
  std::string artifactName() const { return isCuda() ? "cuda-" + chip : "cpu-x86_64"; }
  /// What a user writes: `cpu` or the chip.
  std::string flagName() const { return isCuda() ? chip : "cpu"; }
  bool operator==(const Target &o) const { return kind == o.kind && chip == o.chip; }
};

/// Parses `cpu`, `cpu-x86_64`, `sm_NN[a]` or `cuda-sm_NN[a]` (NN >= 80:
/// mma.sync and cp.async need sm_80); nullopt for anything else.
std::optional<Target> parseTarget(std::string_view text);

/// What parseTarget accepts, for messages.
inline constexpr const char *kTargetsHelp =
    "the targets are cpu and CUDA architectures from sm_80 (sm_80, sm_90, sm_90a)";

} // namespace moe::runtime

#endif // MOE_RUNTIME_TARGET_H
