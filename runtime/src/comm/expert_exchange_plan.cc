// expert_exchange_plan.cc - the messages of an expert-parallel exchange.
#include "expert_exchange_plan.h"

#include <numeric>
#include <utility>

namespace moe::runtime {
namespace {

/// Where a shard's experts receive: for each of its local experts, every
/// shard's rows in shard order (`at[le][s]`), from the world's counts.
struct ReceiveLayout {
  ReceiveLayout(const ExpertCounts &world, const std::vector<int64_t> &group, int64_t shard, int64_t local)
      : rows(local, std::vector<int64_t>(group.size())), at(rows) {
    for (int64_t le = 0; le < local; ++le) {
      int64_t expertRows = 0;
      for (size_t s = 0; s < group.size(); ++s) {
        rows[le][s] = world.kept(group[s], shard * local + le);
        at[le][s] = total;
        total += rows[le][s];
        expertRows += rows[le][s];
      }
      perExpert.push_back(static_cast<int32_t>(expertRows));
    }
  }
  /// Shard s's messages into this layout as (row, rows) pairs: at the
  /// sender's rows from `senderAt` on (-1: at the receiver's rows), one
  /// message per run that is consecutive here. Empty runs send nothing.
  std::vector<std::pair<int64_t, int64_t>> messagesFrom(int64_t s, int64_t senderAt) const {
    std::vector<std::pair<int64_t, int64_t>> out;
    int64_t runStart = -1, runRows = 0, runAt = 0;
    for (size_t le = 0; le < rows.size(); ++le) {
      int64_t n = rows[le][s];
      if (!n)
        continue;
      if (runRows && at[le][s] == runAt + runRows) {
        runRows += n;
      } else {
        if (runRows)
          out.push_back({runStart, runRows});
        runStart = senderAt >= 0 ? senderAt : at[le][s];
        runAt = at[le][s];
        runRows = n;
      }
      if (senderAt >= 0)
        senderAt += n;
    }
    if (runRows)
      out.push_back({runStart, runRows});
    return out;
  }
  std::vector<std::vector<int64_t>> rows, at;
  std::vector<int32_t> perExpert;
  int64_t total = 0;
};

} // namespace

ExpertExchangePlan planExpertExchange(const ExpertCounts &world, const std::vector<int64_t> &group, int64_t myShard,
                                      int64_t me) {
  const int64_t shards = static_cast<int64_t>(group.size()), local = world.experts() / shards;
  ExpertExchangePlan plan;
  std::vector<int32_t> &kept = plan.keptPerExpert;
  for (int64_t e = 0; e < world.experts(); ++e)
    kept.push_back(static_cast<int32_t>(world.kept(me, e)));
  plan.sentRows = std::accumulate(kept.begin(), kept.end(), int64_t(0));
  // Sends: my kept rows in expert order, so shard s's experts are one run
  // of my buffer, cut where they are not one run on shard s.
  for (int64_t s = 0, at = 0; s < shards; ++s) {
    ReceiveLayout there(world, group, s, local);
    for (const auto &m : there.messagesFrom(myShard, at))
      plan.sends.push_back({group[s], m.first, m.second});
    for (int64_t le = 0; le < local; ++le)
      at += kept[s * local + le];
  }
  // Receives: for each of my experts, every shard's rows in shard order.
  ReceiveLayout here(world, group, myShard, local);
  for (int64_t s = 0; s < shards; ++s)
    for (const auto &m : here.messagesFrom(s, -1))
      plan.receives.push_back({group[s], m.first, m.second});
  plan.receivedPerExpert = here.perExpert;
  plan.receivedRows = here.total;
  return plan;
}

} // namespace moe::runtime
