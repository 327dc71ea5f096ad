//===- CudaToolkit.cpp - where the CUDA toolkit's tools are -----*- C++ -*-===//
#include "moe/Compiler/CudaToolkit.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdlib>

namespace {
/// The candidate toolkit roots, in the order they are tried.
llvm::SmallVector<std::string> toolkitRoots() {
  llvm::SmallVector<std::string> roots;
  for (const char *var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char *value = std::getenv(var))
      roots.push_back(value);
  for (const char *dir : {"/usr/local/cuda", "/usr/lib/cuda", "/usr/lib/nvidia-cuda-toolkit", "/opt/cuda"})
    roots.push_back(dir);
  return roots;
}
} // namespace

std::string moe::findLibdevice() {
  for (const std::string &root : toolkitRoots())
    for (const char *sub : {"/nvvm/libdevice/libdevice.10.bc", "/libdevice/libdevice.10.bc"})
      if (llvm::sys::fs::exists(root + sub))
        return root + sub;
  return "";
}

std::string moe::findPtxas() {
  // The ptxas of the toolkit libdevice comes from (<root>/nvvm/libdevice/...),
  // so the PTX and the assembler match.
  std::string libdevice = findLibdevice();
  if (!libdevice.empty()) {
    llvm::SmallString<256> root(libdevice);
    for (int i = 0; i < 3; ++i)
      llvm::sys::path::remove_filename(root);
    llvm::sys::path::append(root, "bin", "ptxas");
    if (llvm::sys::fs::can_execute(root))
      return root.str().str();
  }
  if (llvm::ErrorOr<std::string> onPath = llvm::sys::findProgramByName("ptxas"))
    return *onPath;
  return "";
}
