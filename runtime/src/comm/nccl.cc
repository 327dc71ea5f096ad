// nccl.cc - the NCCL engine (libnccl.so.2 through dlopen).
#include "engines.h"

namespace moe::runtime {

moe_status_t openNcclCommunicator(const Launch &launch, std::unique_ptr<Communicator> &) {
  return fail(MOE_UNAVAILABLE, "cuda layers on several ranks (" + launch.launcher + ", world " +
                                   std::to_string(launch.world) +
                                   ") are not supported yet: compile with --mesh for the CPU (docs/sharding.md)");
}

} // namespace moe::runtime
