// mpi_absent.cc - the MPI engine of a build without MPI: a clear refusal.
#include "engines.h"

namespace moe::runtime {

moe_status_t openMpiCommunicator(const Launch &launch, std::unique_ptr<Communicator> &) {
  return fail(MOE_UNAVAILABLE, "launched by " + launch.launcher + " as rank " + std::to_string(launch.rank) + " of " +
                                   std::to_string(launch.world) +
                                   ", but this runtime was built without MPI (install libopenmpi-dev and rebuild)");
}

moe_status_t shareBytesOverMpi(const Launch &, void *, size_t) {
  return fail(MOE_UNAVAILABLE, "this runtime was built without MPI");
}

} // namespace moe::runtime
