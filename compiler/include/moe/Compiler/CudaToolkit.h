//===- CudaToolkit.h - where the CUDA toolkit's tools are -------*- C++ -*-===//
//
// The one place that looks for the CUDA toolkit: $CUDA_HOME (or CUDA_PATH,
// CUDA_ROOT), then the usual install prefixes (NVIDIA's packages, Debian's
// nvidia-cuda-toolkit), then PATH for ptxas.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_CUDATOOLKIT_H
#define MOE_COMPILER_CUDATOOLKIT_H

#include "moe/Support/MLIR.h"
#include <string>

namespace moe {

/// libdevice.10.bc (the kernels' math functions), or "" if there is none.
std::string findLibdevice();

/// The toolkit's ptxas, or "" if there is none.
std::string findPtxas();

} // namespace moe

#endif // MOE_COMPILER_CUDATOOLKIT_H
