// expert_exchange_plan.h - which rows an expert-parallel exchange moves, as
// messages: the GPU path's plan (cuda/expert_exchange.cc), pure host logic
// derived from the world's counts, so that every rank computes the same
// messages for every pair of ranks (and a unit test can check them).
//
// A rank sends its kept rows in expert order. Its peer receives them grouped
// by local expert, each expert's rows from every shard in shard order (so in
// global token order), ready for the grouped GEMMs. A message carries a
// sender's rows for consecutive experts as long as they are consecutive on
// the receiver too: one message a peer on a mesh of one, or where the other
// peers route nothing to those experts; else one a (peer, expert).
#ifndef MOE_RUNTIME_COMM_EXPERT_EXCHANGE_PLAN_H
#define MOE_RUNTIME_COMM_EXPERT_EXCHANGE_PLAN_H

#include "expert_counts.h"

#include <cstdint>
#include <vector>

namespace moe::runtime {

struct ExpertExchangePlan {
  /// A run of rows with one peer: `rows` rows from row `at` of the buffer.
  struct Segment {
    int64_t peer = 0, at = 0, rows = 0;
  };
  /// Same order on both sides of every pair; the return trip swaps them.
  std::vector<Segment> sends, receives;
  std::vector<int32_t> keptPerExpert;     ///< this rank's kept rows of each (global) expert
  std::vector<int32_t> receivedPerExpert; ///< rows of each local expert
  int64_t sentRows = 0, receivedRows = 0;
};

/// The plan of world rank `me`, shard `myShard` of its expert-parallel
/// `group` (world ranks, increasing), each shard holding
/// world.experts() / group.size() consecutive experts.
ExpertExchangePlan planExpertExchange(const ExpertCounts &world, const std::vector<int64_t> &group, int64_t myShard,
                                      int64_t me);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMM_EXPERT_EXCHANGE_PLAN_H
