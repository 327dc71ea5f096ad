// expert_counts.cc - the world's expert counts and the rows each rank keeps.
#include "expert_counts.h"

#include "../cpu/moe_ffn.h"

#include <algorithm>

namespace moe::runtime {

moe_status_t ExpertCounts::gather(Communicator &comm, const Mesh &mesh, const std::vector<int64_t> &mine,
                                  int64_t experts, int64_t k, double capacity) {
  std::vector<int64_t> table(static_cast<size_t>(mesh.world() * (experts + 1)), 0);
  if (moe_status_t s = comm.allGather(mesh.group(comm.rank(), kAllAxes), mine.data(), table.data(), (experts + 1) * 8,
                                      "experts (counts)"))
    return s;
  fromTable(std::move(table), mesh.world(), experts, k, capacity);
  return MOE_OK;
}

void ExpertCounts::fromTable(std::vector<int64_t> table, int64_t world, int64_t experts, int64_t k, double capacity) {
  experts_ = experts;
  world_ = world;
  table_ = std::move(table);
  const int64_t stride = experts + 1;
  int64_t globalAssignments = 0;
  for (int64_t r = 0; r < world_; ++r)
    globalAssignments += table_[r * stride + experts] * k;
  limit_ = cpu::capacityLimit(capacity, globalAssignments, experts);
  before_.assign(static_cast<size_t>(world_ * experts), 0);
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t r = 1; r < world_; ++r)
      before_[r * experts + e] = before_[(r - 1) * experts + e] + table_[(r - 1) * stride + e];
}

int64_t ExpertCounts::kept(int64_t rank, int64_t expert) const {
  return std::clamp<int64_t>(limit_ - before_[rank * experts_ + expert], 0, table_[rank * (experts_ + 1) + expert]);
}

} // namespace moe::runtime
