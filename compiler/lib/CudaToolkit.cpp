//===- CudaToolkit.cpp - where the CUDA toolkit's tools are -----*- C++ -*-===//
#include "moe/Compiler/CudaToolkit.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <optional>

using namespace mlir;

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

LogicalResult moe::assemblePtx(Location loc, const std::string &ptxas, llvm::StringRef chip, llvm::StringRef ptx,
                               std::string &cubin) {
  llvm::SmallString<128> in, out, log;
  int fd;
  if (llvm::sys::fs::createTemporaryFile("moe-kernels", "ptx", fd, in))
    return emitError(loc) << "cannot create a temporary file for ptxas";
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << ptx;
  }
  llvm::sys::fs::createTemporaryFile("moe-kernels", "cubin", out);
  llvm::sys::fs::createTemporaryFile("moe-ptxas", "log", log);
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(in);
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(log);
  });
  std::string arch = ("-arch=" + chip).str();
  llvm::SmallVector<llvm::StringRef> argv{ptxas, arch, "-O3", in, "-o", out};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log), llvm::StringRef(log)};
  if (llvm::sys::ExecuteAndWait(ptxas, argv, std::nullopt, redirects) != 0) {
    auto text = llvm::MemoryBuffer::getFile(log);
    return emitError(loc) << "ptxas rejected the layer's PTX: "
                          << (text ? (*text)->getBuffer().trim() : llvm::StringRef("(no log)"));
  }
  auto bytes = llvm::MemoryBuffer::getFile(out);
  if (!bytes)
    return emitError(loc) << "cannot read the cubin ptxas wrote";
  cubin = (*bytes)->getBuffer().str();
  return success();
}
