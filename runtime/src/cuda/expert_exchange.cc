// expert_exchange.cc - the expert-parallel exchange of a cuda layer's routed
// chain (moe_gpu_ep_*, gpu_entry_points.h), on the call's NCCL communicator.
//
// The generated host code around these calls (convert-moe-to-gpu-kernels):
//   count kernel -> moe_gpu_ep_plan (world counts; counts := kept)
//   -> schedule + permute kernels (the kept rows in expert order)
//   -> pack kernel (rows and routing weights into send buffers)
//   -> moe_gpu_ep_dispatch -> schedule kernel over the local experts
//   -> the grouped GEMMs on the received rows -> moe_gpu_ep_return
//   -> combine kernel (each token sums its slots in order, on its own rank).
// Which rows go where is planExpertExchange's (comm/expert_exchange_plan.h).
#include "moe/runtime/gpu_entry_points.h"

#include "gpu_call.h"

#include "../comm/expert_exchange_plan.h"

#include <algorithm>
#include <numeric>

using namespace moe::runtime;

namespace {

/// The call, its communicator and the plan `handle`; null (nothing to do)
/// once the call has failed.
GpuCall *activeCall(const char *what) {
  GpuCall *call = currentGpuCall();
  if (!call || call->errorStatus != MOE_OK || CallCommunicator::status() != MOE_OK)
    return nullptr;
  if (!currentCommunicator()) {
    call->failWith(fail(MOE_INTERNAL, std::string(what) + " called outside a sharded layer call"));
    return nullptr;
  }
  return call;
}

ExpertExchangePlan *planOf(int64_t handle, const char *what) {
  GpuCall *call = activeCall(what);
  if (!call || handle < 0 || handle >= static_cast<int64_t>(call->exchangePlans.size()))
    return nullptr;
  return &call->exchangePlans[static_cast<size_t>(handle)];
}

/// A failed step fails the call: the collectives' record and the GPU call's,
/// so that nothing more is launched.
bool ok(moe_status_t status) {
  if (status == MOE_OK)
    return true;
  failCurrentCall(status);
  if (GpuCall *call = currentGpuCall())
    call->failWith(status);
  return false;
}

/// A small host array into device memory at `address`, on the call's stream.
bool upload(GpuCall &call, int64_t address, const void *data, size_t bytes) {
  if (!bytes)
    return true;
  DeviceBuffer staging;
  if (!ok(call.device->allocate(bytes, staging)) || !ok(call.device->upload(staging, data, bytes)))
    return false;
  bool copied = ok(call.device->copy(static_cast<uint64_t>(address), staging.address(), bytes));
  call.buffers.push_back(std::move(staging)); // kept until the copy has run
  return copied;
}

/// The transfers of `segments` over buffer `base` (`bytes` bytes a row).
void addTransfers(const std::vector<ExpertExchangePlan::Segment> &segments, int64_t base, int64_t bytes,
                  std::vector<Transfer> &out) {
  for (const auto &s : segments)
    out.push_back({s.peer, reinterpret_cast<void *>(base + s.at * bytes), s.rows * bytes});
}

} // namespace

extern "C" int64_t moe_gpu_ep_plan(int64_t counts, int64_t experts, int64_t k, double capacity, int64_t rows,
                                   int32_t axes) {
  GpuCall *call = activeCall("moe_gpu_ep_plan");
  if (!call)
    return -1;
  Communicator &comm = *currentCommunicator();
  const Mesh &mesh = CallCommunicator::mesh();
  const int64_t me = comm.rank();
  const std::vector<int64_t> group = mesh.group(me, axes);
  const int64_t myShard = std::find(group.begin(), group.end(), me) - group.begin();

  // The one read of the counts on the host (it waits for the count kernel).
  std::vector<int32_t> device(static_cast<size_t>(experts));
  if (!ok(call->device->download(device.data(), static_cast<uint64_t>(counts), device.size() * 4)))
    return -1;
  std::vector<int64_t> mine(device.begin(), device.end());
  mine.push_back(rows);
  ExpertCounts world;
  if (!ok(world.gather(comm, mesh, mine, experts, k, capacity)))
    return -1;

  ExpertExchangePlan plan = planExpertExchange(world, group, myShard, me);
  if (!upload(*call, counts, plan.keptPerExpert.data(), plan.keptPerExpert.size() * 4))
    return -1;
  call->exchangePlans.push_back(std::move(plan));
  return static_cast<int64_t>(call->exchangePlans.size()) - 1;
}

extern "C" int64_t moe_gpu_ep_sent_rows(int64_t handle) {
  ExpertExchangePlan *plan = planOf(handle, "moe_gpu_ep_sent_rows");
  return plan ? plan->sentRows : 0;
}

extern "C" int64_t moe_gpu_ep_received_rows(int64_t handle) {
  ExpertExchangePlan *plan = planOf(handle, "moe_gpu_ep_received_rows");
  return plan ? plan->receivedRows : 0;
}

extern "C" void moe_gpu_ep_dispatch(int64_t handle, int64_t sendRows, int64_t sendWeights, int64_t recvRows,
                                    int64_t recvWeights, int64_t recvCounts, int64_t recvPerm, int64_t rowBytes,
                                    int64_t weightBytes) {
  ExpertExchangePlan *plan = planOf(handle, "moe_gpu_ep_dispatch");
  if (!plan)
    return;
  GpuCall &call = *currentGpuCall();
  // Rows, then weights: the same order on both sides of every pair.
  std::vector<Transfer> sends, receives;
  addTransfers(plan->sends, sendRows, rowBytes, sends);
  addTransfers(plan->sends, sendWeights, weightBytes, sends);
  addTransfers(plan->receives, recvRows, rowBytes, receives);
  addTransfers(plan->receives, recvWeights, weightBytes, receives);
  if (!ok(currentCommunicator()->exchange(sends, receives, "experts (dispatch)")))
    return;
  std::vector<int32_t> identity(static_cast<size_t>(plan->receivedRows));
  std::iota(identity.begin(), identity.end(), 0);
  if (upload(call, recvCounts, plan->receivedPerExpert.data(), plan->receivedPerExpert.size() * 4))
    upload(call, recvPerm, identity.data(), identity.size() * 4);
}

extern "C" void moe_gpu_ep_return(int64_t handle, int64_t expertRows, int64_t keptRows, int64_t rowBytes) {
  ExpertExchangePlan *plan = planOf(handle, "moe_gpu_ep_return");
  if (!plan)
    return;
  std::vector<Transfer> sends, receives;
  addTransfers(plan->receives, expertRows, rowBytes, sends);
  addTransfers(plan->sends, keptRows, rowBytes, receives);
  ok(currentCommunicator()->exchange(sends, receives, "experts (combine)"));
}
