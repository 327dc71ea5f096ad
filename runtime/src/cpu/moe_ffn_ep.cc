// moe_ffn_ep.cc - the expert-parallel dispatch -> expert FFN -> combine
// (moe_cpu_moe_ffn_ep, collective_entry_points.h).
//
// 1. counts: every rank's per-expert assignment counts (and token count) are
//    all-gathered over the world, so each rank knows, for every (rank, expert),
//    how many rows exist, which are kept under a capacity (the first `limit`
//    of each expert in global (token, slot) order) and what it will receive;
// 2. dispatch: each kept row goes to the rank of its expert's slice in the ep
//    group (an all-to-all of x rows);
// 3. the rank's experts run on the rows they received (moe_ffn.h, the code
//    the single-device kernel runs);
// 4. combine: the outputs return by the reverse all-to-all and each token
//    sums its slots in order on its own rank.
// Every rank takes part in both all-to-alls whatever it routes or receives.
#include "moe/runtime/collective_entry_points.h"

#include "moe/runtime/comm.h"
#include "moe/runtime/dtype.h"

#include "../comm/expert_counts.h"
#include "elements.h"
#include "moe_ffn.h"

#include <algorithm>
#include <vector>

using namespace moe::runtime;
using namespace moe::runtime::cpu;

extern "C" void moe_cpu_moe_ffn_ep(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                                   int64_t out, int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k,
                                   int32_t kind, double capacity, int32_t xDtype, int32_t weightsDtype, int32_t wDtype,
                                   int32_t outDtype, int32_t axes) {
  if (CallCommunicator::status() != MOE_OK)
    return;
  Communicator *comm = currentCommunicator();
  if (!comm) {
    failCurrentCall(fail(MOE_INTERNAL, "the expert-parallel experts called outside a layer call"));
    return;
  }
  const Mesh &mesh = CallCommunicator::mesh();
  const int64_t me = comm->rank();
  const std::vector<int64_t> group = mesh.group(me, axes);
  const int64_t shards = static_cast<int64_t>(group.size()), local = experts / shards;
  const int64_t myShard = std::find(group.begin(), group.end(), me) - group.begin();
  const int64_t assignments = tokens * k;
  const int32_t *idx = ptr<int32_t>(indices);

  // 1. Counts per (rank, expert) from every rank of the world, and the rows I keep.
  ExpertCounts counts;
  KeptRows keptRows;
  if (moe_status_t s = keepRowsOnMesh(*comm, mesh, idx, tokens, k, experts, capacity, counts, keptRows)) {
    failCurrentCall(s);
    return;
  }
  const std::vector<std::vector<int64_t>> &keptOf = keptRows.of;
  const std::vector<char> &keptMask = keptRows.mask;

  // 2. Dispatch: my kept rows by destination shard, then expert, in order.
  const int64_t rowBytes = d * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(xDtype)));
  std::vector<int64_t> sendBytes(shards, 0), recvBytes(shards, 0), order; // order: assignment of each sent row
  for (int64_t e = 0; e < experts; ++e) {
    sendBytes[e / local] += static_cast<int64_t>(keptOf[e].size()) * rowBytes;
    order.insert(order.end(), keptOf[e].begin(), keptOf[e].end());
  }
  std::vector<char> sendRows(order.size() * rowBytes);
  for (size_t i = 0; i < order.size(); ++i)
    std::copy_n(ptr<char>(x) + (order[i] / k) * rowBytes, rowBytes, sendRows.data() + i * rowBytes);
  // What arrives: from each shard s, for each of my experts, kept(s, e) rows.
  std::vector<int64_t> mine(local);
  for (int64_t le = 0; le < local; ++le)
    mine[le] = le;
  std::vector<std::vector<int64_t>> rowsOf(local);
  const int64_t received = planArrivals(counts, group, myShard * local, mine, rowBytes, rowsOf, recvBytes);
  std::vector<char> recvRows(static_cast<size_t>(received * rowBytes));
  if (moe_status_t s = comm->allToAllV(group, sendRows.data(), sendBytes, recvRows.data(), recvBytes,
                                       "experts (dispatch all_to_all)")) {
    failCurrentCall(s);
    return;
  }

  // 3. My experts on the rows they received.
  std::vector<float> y(static_cast<size_t>(received * d), 0.0f);
  Experts ex{d, f, kind, xDtype, wDtype, w0, w1, w2};
  runExperts(ex, recvRows.data(), rowsOf, rowsOf, y.data());
  for (int64_t i = 0; i < received * d; ++i)
    storeF32(recvRows.data(), i, xDtype, y[i]); // exact: y is already rounded to xDtype

  // 4. Combine: the outputs back to their tokens' ranks, then slots in order.
  if (moe_status_t s = comm->allToAllV(group, recvRows.data(), recvBytes, sendRows.data(), sendBytes,
                                       "experts (combine all_to_all)")) {
    failCurrentCall(s);
    return;
  }
  std::vector<float> yTokens(static_cast<size_t>(assignments * d), 0.0f);
  for (size_t i = 0; i < order.size(); ++i)
    loadRow(sendRows.data(), static_cast<int64_t>(i) * d, d, xDtype, yTokens.data() + order[i] * d);
  combineSlots(yTokens, keptMask, weights, weightsDtype, out, outDtype, tokens, d, k);
}
