// engines.h - the communicator engines a build may hold (comm.h).
#ifndef MOE_RUNTIME_COMM_ENGINES_H
#define MOE_RUNTIME_COMM_ENGINES_H

#include "moe/runtime/comm.h"

namespace moe::runtime {

/// MPI (mpi.cc when the build found MPI; else a refusal naming the fix).
moe_status_t openMpiCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out);
/// TCP sockets between CPU processes (tcp.cc): torchrun's environment
/// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), no MPI.
moe_status_t openTcpCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out);
/// Rank 0's `size` bytes at `data` to every rank, through MPI (the NCCL
/// engine's unique id under mpirun); MOE_UNAVAILABLE in a build without MPI.
moe_status_t shareBytesOverMpi(const Launch &launch, void *data, size_t size);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMM_ENGINES_H
