// expert_counts.h - the first step of every expert-parallel call, on the
// CPU and the GPU alike: each rank's per-expert assignment counts (and token
// count) all-gathered over the world, and from them, for every (rank,
// expert), how many rows are kept under a capacity: the first `limit` of
// each expert in global (token, slot) order, where global order is rank
// order, then each rank's own order. Both backends call this, so they drop
// exactly the same assignments.
#ifndef MOE_RUNTIME_COMM_EXPERT_COUNTS_H
#define MOE_RUNTIME_COMM_EXPERT_COUNTS_H

#include "moe/runtime/comm.h"

#include <cstdint>
#include <vector>

namespace moe::runtime {

class ExpertCounts {
public:
  /// `mine`: this rank's count for each of `experts` experts, then its token
  /// count (experts + 1 values). Every rank of the world must call it.
  moe_status_t gather(Communicator &comm, const Mesh &mesh, const std::vector<int64_t> &mine, int64_t experts,
                      int64_t k, double capacity);
  /// The same from the gathered table itself (world x (experts + 1) values).
  void fromTable(std::vector<int64_t> table, int64_t world, int64_t experts, int64_t k, double capacity);

  /// Rank `rank`'s rows for `expert` that fit under the limit.
  int64_t kept(int64_t rank, int64_t expert) const;
  int64_t experts() const { return experts_; }
  /// Rank `rank`'s token count, and the global index of its first token
  /// (the tokens of the ranks before it, in world order).
  int64_t tokens(int64_t rank) const { return table_[rank * (experts_ + 1) + experts_]; }
  int64_t firstToken(int64_t rank) const {
    int64_t first = 0;
    for (int64_t r = 0; r < rank; ++r)
      first += tokens(r);
    return first;
  }

private:
  int64_t world_ = 1, experts_ = 0, limit_ = 0;
  std::vector<int64_t> table_;  ///< world x (experts + 1): counts, then tokens
  std::vector<int64_t> before_; ///< world x experts: the rows of the ranks before
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMM_EXPERT_COUNTS_H
