// engines.h - the communicator engines a build may hold (comm.h).
#ifndef MOE_RUNTIME_COMM_ENGINES_H
#define MOE_RUNTIME_COMM_ENGINES_H

#include "moe/runtime/comm.h"

namespace moe::runtime {

/// MPI (mpi.cc when the build found MPI; else a refusal naming the fix).
moe_status_t openMpiCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out);
/// NCCL between GPUs, libnccl.so.2 loaded with dlopen (nccl.cc).
moe_status_t openNcclCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMM_ENGINES_H
