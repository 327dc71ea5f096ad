// ExpertExchangePlanTest.cpp - the messages of the GPU's expert-parallel
// exchange (planExpertExchange), checked on the host: every pair of ranks
// agrees on the messages between them, and moving labelled rows by them puts
// each expert's rows on its rank in global token order, with nothing lost.
#include "../src/comm/expert_exchange_plan.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

using namespace moe::runtime;

namespace {

using Row = std::tuple<int64_t, int64_t, int64_t>; // (rank, expert, index among its kept rows)

/// Plans every rank of `mesh`'s ep groups, runs the exchange on labelled
/// rows and checks what each rank receives.
void checkExchange(const Mesh &mesh, const std::vector<int64_t> &table, int64_t experts, int64_t k, double capacity) {
  ExpertCounts world;
  world.fromTable(table, mesh.world(), experts, k, capacity);
  std::vector<ExpertExchangePlan> plans;
  std::vector<std::vector<Row>> sendBuffers, recvBuffers;
  for (int64_t r = 0; r < mesh.world(); ++r) {
    std::vector<int64_t> group = mesh.group(r, kAxisEp);
    int64_t shard = std::find(group.begin(), group.end(), r) - group.begin();
    plans.push_back(planExpertExchange(world, group, shard, r));
    std::vector<Row> rows;
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t i = 0; i < world.kept(r, e); ++i)
        rows.emplace_back(r, e, i);
    ASSERT_EQ(plans.back().sentRows, static_cast<int64_t>(rows.size()));
    for (int64_t e = 0; e < experts; ++e)
      ASSERT_EQ(plans.back().keptPerExpert[e], world.kept(r, e));
    sendBuffers.push_back(rows);
    recvBuffers.emplace_back(plans.back().receivedRows, Row{-1, -1, -1});
  }
  // Messages between a pair match in order, as NCCL matches them.
  for (int64_t a = 0; a < mesh.world(); ++a)
    for (int64_t b = 0; b < mesh.world(); ++b) {
      std::vector<ExpertExchangePlan::Segment> out, in;
      for (const auto &s : plans[a].sends)
        if (s.peer == b)
          out.push_back(s);
      for (const auto &s : plans[b].receives)
        if (s.peer == a)
          in.push_back(s);
      ASSERT_EQ(out.size(), in.size()) << "messages from rank " << a << " to rank " << b;
      for (size_t m = 0; m < out.size(); ++m) {
        ASSERT_EQ(out[m].rows, in[m].rows) << "message " << m << " from rank " << a << " to rank " << b;
        ASSERT_GT(out[m].rows, 0);
        ASSERT_LE(out[m].at + out[m].rows, plans[a].sentRows);
        ASSERT_LE(in[m].at + in[m].rows, plans[b].receivedRows);
        for (int64_t i = 0; i < out[m].rows; ++i)
          recvBuffers[b][in[m].at + i] = sendBuffers[a][out[m].at + i];
      }
    }
  // Each local expert's rows: every shard's kept rows, in shard order.
  for (int64_t r = 0; r < mesh.world(); ++r) {
    std::vector<int64_t> group = mesh.group(r, kAxisEp);
    int64_t shard = std::find(group.begin(), group.end(), r) - group.begin();
    int64_t local = experts / static_cast<int64_t>(group.size());
    std::vector<Row> expected;
    for (int64_t le = 0; le < local; ++le) {
      int64_t e = shard * local + le, before = static_cast<int64_t>(expected.size());
      for (int64_t source : group)
        for (int64_t i = 0; i < world.kept(source, e); ++i)
          expected.emplace_back(source, e, i);
      EXPECT_EQ(plans[r].receivedPerExpert[le], static_cast<int64_t>(expected.size()) - before);
    }
    EXPECT_EQ(recvBuffers[r], expected) << "rank " << r << " of mesh " << mesh.toString();
  }
}

/// A world x (experts + 1) table: random counts (some zero), then tokens.
std::vector<int64_t> randomTable(std::mt19937 &rng, int64_t world, int64_t experts, int64_t k) {
  std::vector<int64_t> table;
  for (int64_t r = 0; r < world; ++r) {
    int64_t tokens = rng() % 40, assigned = 0;
    std::vector<int64_t> counts(experts, 0);
    for (int64_t a = 0; a < tokens * k; ++a)
      if (rng() % 5) // some experts of some ranks get nothing
        ++counts[rng() % experts], ++assigned;
    table.insert(table.end(), counts.begin(), counts.end());
    table.push_back(tokens);
  }
  return table;
}

} // namespace

TEST(ExpertExchangePlan, EveryMeshMovesEachRowToItsExpertInTokenOrder) {
  std::mt19937 rng(17);
  for (const char *text : {"ep=1", "ep=2", "ep=4", "dp=2,ep=2", "rep=2,ep=4"}) {
    std::string error;
    Mesh mesh = *parseMesh(text, error);
    for (double capacity : {0.0, 1.0, 0.5})
      for (int trial = 0; trial < 5; ++trial)
        checkExchange(mesh, randomTable(rng, mesh.world(), 8, 2), 8, 2, capacity);
  }
}

TEST(ExpertExchangePlan, OneExpertTakingEveryTokenAndRanksWithNone) {
  std::string error;
  Mesh mesh = *parseMesh("ep=4", error);
  // Rank 1 routes nothing; every other row goes to expert 5 (rank 2's).
  std::vector<int64_t> table;
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t e = 0; e < 8; ++e)
      table.push_back(r != 1 && e == 5 ? 30 : 0);
    table.push_back(r != 1 ? 15 : 0);
  }
  checkExchange(mesh, table, 8, 2, 0.0);
  checkExchange(mesh, table, 8, 2, 1.0); // capacity: the first ranks' rows win
}

TEST(ExpertExchangePlan, AMeshOfOneSendsOneMessage) {
  std::string error;
  Mesh mesh = *parseMesh("ep=1", error);
  std::vector<int64_t> table{3, 0, 5, 7, 1, 0, 2, 2, 10};
  ExpertCounts world;
  world.fromTable(table, 1, 8, 2, 0.0);
  ExpertExchangePlan plan = planExpertExchange(world, {0}, 0, 0);
  ASSERT_EQ(plan.sends.size(), 1u);
  ASSERT_EQ(plan.receives.size(), 1u);
  EXPECT_EQ(plan.sends[0].rows, 20);
  EXPECT_EQ(plan.receivedRows, 20);
}
