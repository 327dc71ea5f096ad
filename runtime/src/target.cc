// target.cc - parsing a layer's target (target.h).
#include "moe/runtime/target.h"

#include <cctype>

namespace moe::runtime {

std::optional<Target> parseTarget(std::string_view text) {
  if (text == "cpu" || text == "cpu-x86_64")
    return Target::cpu();
  if (text.substr(0, 5) == "cuda-")
    text.remove_prefix(5);
  if (text.substr(0, 3) != "sm_")
    return std::nullopt;
  std::string_view digits = text.substr(3);
  bool arch = !digits.empty() && digits.back() == 'a';
  if (arch)
    digits.remove_suffix(1);
  if (digits.empty() || digits.size() > 4)
    return std::nullopt;
  int cc = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
    cc = cc * 10 + (c - '0');
  }
  if (cc < 80)
    return std::nullopt;
  Target t;
  t.kind = Target::Kind::Cuda;
  t.chip = std::string(text);
  t.computeCapability = cc;
  t.archSpecific = arch;
  return t;
}

} // namespace moe::runtime
