//===- CudaToolkit.h - where the CUDA toolkit's tools are -------*- C++ -*-===//
//
// The one place that looks for the CUDA toolkit: $CUDA_HOME (or CUDA_PATH,
// CUDA_ROOT), then the usual install prefixes (NVIDIA's packages, Debian's
// nvidia-cuda-toolkit), then PATH for ptxas.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_CUDATOOLKIT_H
#define MOE_COMPILER_CUDATOOLKIT_H

#include "mlir/IR/Location.h"
#include "moe/Support/MLIR.h"
#include <string>

namespace moe {

/// libdevice.10.bc (the kernels' math functions), or "" if there is none.
std::string findLibdevice();

/// The toolkit's ptxas, or "" if there is none.
std::string findPtxas();

/// Assembles `ptx` for `chip` ("sm_90a") with `ptxas` into `cubin`; ptxas's
/// log is the error at `loc` when it refuses.
LogicalResult assemblePtx(Location loc, const std::string &ptxas, llvm::StringRef chip, llvm::StringRef ptx,
                          std::string &cubin);

} // namespace moe

#endif // MOE_COMPILER_CUDATOOLKIT_H
