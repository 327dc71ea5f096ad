// moe_ffn_ep_grad.cc - the expert-parallel backward of dispatch -> expert
// FFN -> combine (moe_cpu_moe_ffn_ep_grad, collective_entry_points.h).
//
// 1. counts: the forward's (expert_counts.h), so the same rows are kept and
//    every rank knows where each rank's tokens start in the global batch;
// 2. dispatch: each kept row goes to its expert's rank with its token
//    output's cotangent, its combine weight and its global token (one
//    all-to-all of records);
// 3. the rank's experts run their backward on the rows they received, which
//    arrive in global token order (ranks in order, each in its own order):
//    backwardExpert, the single-device kernel's code, so the weight
//    cotangents are the same blocked sums over global tokens;
// 4. combine: each row's cotangent and its combine weight's come back (the
//    reverse all-to-all), and each token sums its slots in order.
//
// With replicas or FSDP (R = rep * dp copies of each expert slice, whole in
// the call: FSDP gathers its chunks before), each expert
// is owned by one of its R holders (local index mod R), which receives that
// expert's rows from every rank of every replica and forms its cotangent
// alone, in global token order; the owner then sends it to the other R - 1
// holders, so that every replica updates its copy with the same bits.
#include "moe/runtime/collective_entry_points.h"

#include "moe/runtime/comm.h"
#include "moe/runtime/dtype.h"

#include "../comm/expert_counts.h"
#include "elements.h"
#include "moe_ffn_grad.h"

#include <algorithm>
#include <cstring>
#include <vector>

using namespace moe::runtime;
using namespace moe::runtime::cpu;

namespace {

/// The bytes of one dispatched row: x, dout, the combine weight (f32) and
/// the global token (int64), packed.
struct RecordLayout {
  int64_t xBytes, doutBytes;
  int64_t size() const { return xBytes + doutBytes + 4 + 8; }
};

/// What returns for each row: its cotangent (f32) and its combine weight's.
int64_t returnBytes(int64_t d) { return (d + 1) * 4; }

} // namespace

extern "C" void moe_cpu_moe_ffn_ep_grad(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                                        int64_t dout, int64_t dx, int64_t dweights, int64_t dw0, int64_t dw1,
                                        int64_t dw2, int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k,
                                        int32_t kind, double capacity, int32_t xDtype, int32_t weightsDtype,
                                        int32_t wDtype, int32_t doutDtype, int32_t axes) {
  if (CallCommunicator::status() != MOE_OK)
    return;
  Communicator *comm = currentCommunicator();
  if (!comm) {
    failCurrentCall(fail(MOE_INTERNAL, "the expert-parallel backward called outside a layer call"));
    return;
  }
  const Mesh &mesh = CallCommunicator::mesh();
  const int64_t me = comm->rank();
  // The group: the ep slices (minor) of every replica and FSDP rank. A
  // weight's cotangent is over the global batch, so the exchange spans them
  // too; FSDP's ranks then take their chunks of it (moe-place-on-mesh).
  const std::vector<int64_t> group = mesh.group(me, axes | (mesh.rep > 1 ? kAxisRep : 0) | (mesh.dp > 1 ? kAxisDp : 0));
  const int64_t shards = static_cast<int64_t>(group.size()), slices = mesh.ep, replicas = shards / slices;
  const int64_t local = experts / slices;
  const int64_t myIndex = std::find(group.begin(), group.end(), me) - group.begin();
  const int64_t mySlice = myIndex % slices, myReplica = myIndex / slices;
  // Expert e's owner: among its slice's holders, the replica of its local index mod R.
  auto ownerOf = [&](int64_t e) { return (e % local % replicas) * slices + e / local; };
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
  const int64_t firstToken = counts.firstToken(me);

  // 2. Dispatch: my kept rows by owner, then expert, in order.
  const RecordLayout record{d * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(xDtype))),
                            d * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(doutDtype)))};
  const int64_t recordBytes = record.size(), backBytes = returnBytes(d);
  std::vector<int64_t> sendBytes(shards, 0), recvBytes(shards, 0), order; // order: assignment of each sent row
  for (int64_t owner = 0; owner < shards; ++owner)
    for (int64_t e = 0; e < experts; ++e)
      if (ownerOf(e) == owner) {
        sendBytes[owner] += static_cast<int64_t>(keptOf[e].size()) * recordBytes;
        order.insert(order.end(), keptOf[e].begin(), keptOf[e].end());
      }
  std::vector<char> send(order.size() * recordBytes);
  for (size_t i = 0; i < order.size(); ++i) {
    char *r = send.data() + i * recordBytes;
    const int64_t a = order[i], t = a / k;
    std::memcpy(r, ptr<char>(x) + t * record.xBytes, record.xBytes);
    std::memcpy(r + record.xBytes, ptr<char>(dout) + t * record.doutBytes, record.doutBytes);
    float w = loadF32(ptr<void>(weights), a, weightsDtype);
    int64_t global = firstToken + t;
    std::memcpy(r + record.xBytes + record.doutBytes, &w, 4);
    std::memcpy(r + record.xBytes + record.doutBytes + 4, &global, 8);
  }
  // What arrives: from each group rank s, for each expert I own, kept(s, e) rows.
  std::vector<int64_t> owned; // local indices of the experts I own, ascending
  for (int64_t le = 0; le < local; ++le)
    if (ownerOf(mySlice * local + le) == myIndex)
      owned.push_back(le);
  std::vector<std::vector<int64_t>> rowsOf(local);
  const int64_t received = planArrivals(counts, group, mySlice * local, owned, recordBytes, rowsOf, recvBytes);
  std::vector<char> recv(static_cast<size_t>(received * recordBytes));
  if (moe_status_t s = comm->allToAllV(group, send.data(), sendBytes, recv.data(), recvBytes,
                                       "experts backward (dispatch all_to_all)")) {
    failCurrentCall(s);
    return;
  }

  // 3. The backward of the experts I own on the rows they received.
  const Experts ex{d, f, kind, xDtype, wDtype, w0, w1, w2};
  ExpertGradAccumulators acc(ex, local, dw0, dw1, dw2);
  std::vector<char> back(static_cast<size_t>(received * backBytes));
  auto one = [&](int64_t le, bool serial) {
    const std::vector<int64_t> &rows = rowsOf[le];
    const int64_t m = static_cast<int64_t>(rows.size());
    ExpertGradRows in;
    in.x.resize(static_cast<size_t>(m * d));
    in.dout.resize(static_cast<size_t>(m * d));
    in.weight.resize(static_cast<size_t>(m));
    in.token.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      const char *r = recv.data() + rows[i] * recordBytes;
      loadRow(r, 0, d, xDtype, in.x.data() + i * d);
      loadRow(r + record.xBytes, 0, d, doutDtype, in.dout.data() + i * d);
      std::memcpy(&in.weight[i], r + record.xBytes + record.doutBytes, 4);
      std::memcpy(&in.token[i], r + record.xBytes + record.doutBytes + 4, 8);
    }
    std::vector<float> dxe(static_cast<size_t>(m * d)), dwe(static_cast<size_t>(m));
    backwardExpert(ex, le, in, dxe.data(), dwe.data(), acc.dW, serial);
    for (int64_t i = 0; i < m; ++i) {
      char *b = back.data() + rows[i] * backBytes;
      std::memcpy(b, dxe.data() + i * d, d * 4);
      std::memcpy(b + d * 4, &dwe[i], 4);
    }
  };
  const int64_t nOwned = static_cast<int64_t>(owned.size());
  if (manySmallExperts(nOwned, received))
    parallelFor(nOwned, [&](int64_t i) { one(owned[i], true); });
  else
    for (int64_t le : owned)
      one(le, false);
  acc.store();
  // Replicas: each owner's cotangents to its expert's other holders.
  if (replicas > 1 && kind != MOE_FFN_IDENTITY) {
    const int64_t nWeights = kind == MOE_FFN_SWIGLU || kind == MOE_FFN_GEGLU ? 3 : 2;
    const int64_t bytes = d * f * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(wDtype)));
    const int64_t out[3] = {dw0, dw1, dw2};
    std::vector<Transfer> sends, receives;
    for (int64_t le = 0; le < local; ++le) {
      const int64_t owner = ownerOf(mySlice * local + le);
      for (int64_t w = 0; w < nWeights; ++w) {
        char *slice = ptr<char>(out[w]) + le * bytes;
        if (owner == myIndex) {
          for (int64_t q = 0; q < replicas; ++q)
            if (q != myReplica)
              sends.push_back({group[q * slices + mySlice], slice, bytes});
        } else {
          receives.push_back({group[owner], slice, bytes});
        }
      }
    }
    if (moe_status_t s = comm->exchange(sends, receives, "experts backward (to the replicas)")) {
      failCurrentCall(s);
      return;
    }
  }

  // 4. Combine: the cotangents back to their tokens' ranks, then slots in order.
  std::vector<int64_t> backSend(shards), backRecv(shards);
  for (int64_t s = 0; s < shards; ++s) {
    backSend[s] = recvBytes[s] / recordBytes * backBytes;
    backRecv[s] = sendBytes[s] / recordBytes * backBytes;
  }
  std::vector<char> returned(order.size() * backBytes);
  if (moe_status_t s = comm->allToAllV(group, back.data(), backSend, returned.data(), backRecv,
                                       "experts backward (combine all_to_all)")) {
    failCurrentCall(s);
    return;
  }
  std::vector<float> dxRows(static_cast<size_t>(assignments * d), 0.0f), dw(assignments, 0.0f);
  for (size_t i = 0; i < order.size(); ++i) {
    const char *b = returned.data() + i * backBytes;
    std::memcpy(dxRows.data() + order[i] * d, b, d * 4);
    std::memcpy(&dw[order[i]], b + d * 4, 4);
  }
  sumSlotGradients(dxRows, keptMask, dw, dx, xDtype, dweights, weightsDtype, tokens, d, k);
}
