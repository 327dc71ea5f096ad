//===- CompilerIdentity.cpp - what a JIT cache key must change with -----===//
//
// The disk cache must never hand back code made by another compiler. A
// hand-kept version constant goes stale the first time somebody forgets it,
// so the identity is read off the loaded compiler itself: the GNU build ID
// (a hash the linker computes over the linked code) of every object that
// holds compiler code — the program or library holding the JIT, the moe
// libraries and MLIR/LLVM — next to the version and git revision the build
// was configured from. Any rebuild that changes code changes a build ID.
//
//===----------------------------------------------------------------------===//
#include "moe/Jit/Jit.h"

#include <elf.h>
#include <link.h>

#include <cstdio>
#include <cstring>
#include <string>

#ifndef MOE_VERSION
#define MOE_VERSION "unknown"
#endif
#ifndef MOE_GIT_REVISION
#define MOE_GIT_REVISION "unknown"
#endif

namespace moe::jit {
namespace {

struct Scan {
  const void *jitAddress; ///< an address inside the object holding the JIT
  std::string ids;
};

bool holdsAddress(const dl_phdr_info *info, const void *address) {
  auto a = reinterpret_cast<ElfW(Addr)>(address);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    ElfW(Addr) start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && a >= start && a < start + ph.p_memsz)
      return true;
  }
  return false;
}

/// The object's NT_GNU_BUILD_ID in hex, or "" if it has none.
std::string buildId(const dl_phdr_info *info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE)
      continue;
    auto *p = reinterpret_cast<const unsigned char *>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char *end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto *note = reinterpret_cast<const ElfW(Nhdr) *>(p);
      const unsigned char *name = p + sizeof(ElfW(Nhdr));
      const unsigned char *desc = name + ((note->n_namesz + 3) & ~3u);
      if (desc + note->n_descsz > end)
        break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        std::string hex;
        char byte[3];
        for (unsigned j = 0; j < note->n_descsz; ++j) {
          std::snprintf(byte, sizeof byte, "%02x", desc[j]);
          hex += byte;
        }
        return hex;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return "";
}

int collect(dl_phdr_info *info, size_t, void *data) {
  auto *scan = static_cast<Scan *>(data);
  std::string name = info->dlpi_name ? info->dlpi_name : "";
  bool compiler = holdsAddress(info, scan->jitAddress) || name.find("libMoE") != std::string::npos ||
                  name.find("libMLIR") != std::string::npos || name.find("libLLVM") != std::string::npos ||
                  name.find("libmoe") != std::string::npos;
  if (compiler) {
    std::string id = buildId(info);
    std::string base = name.substr(name.find_last_of('/') + 1);
    scan->ids += (base.empty() ? "program" : base) + "=" + (id.empty() ? "none" : id) + ";";
  }
  return 0;
}

} // namespace

const std::string &compilerIdentity() {
  static const std::string identity = [] {
    Scan scan{reinterpret_cast<const void *>(&compileSource), ""};
    dl_iterate_phdr(collect, &scan);
    return std::string("moec ") + MOE_VERSION + " " + MOE_GIT_REVISION + " " + scan.ids;
  }();
  return identity;
}

} // namespace moe::jit
