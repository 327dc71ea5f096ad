// entry_points.cc - the collectives compiled CPU code calls
// (collective_entry_points.h), on the current call's communicator.
#include "moe/runtime/collective_entry_points.h"

#include "moe/runtime/comm.h"
#include "moe/runtime/dtype.h"
#include "moe/runtime/kernel_abi.h"

#include "../cpu/elements.h"

#include <algorithm>
#include <cstring>
#include <vector>

using namespace moe::runtime;
using moe::runtime::cpu::loadF32;
using moe::runtime::cpu::ptr;
using moe::runtime::cpu::storeF32;

namespace {

/// The call's communicator and this rank's group over `axes`; null (and the
/// call failed) when there is none or an earlier collective failed.
Communicator *groupOf(int32_t axes, std::vector<int64_t> &group, const char *what) {
  if (CallCommunicator::status() != MOE_OK)
    return nullptr;
  Communicator *comm = currentCommunicator();
  if (!comm) {
    failCurrentCall(fail(MOE_INTERNAL, std::string(what) + " called outside a layer call"));
    return nullptr;
  }
  group = CallCommunicator::mesh().group(comm->rank(), axes);
  return comm;
}

bool check(moe_status_t status) {
  if (status != MOE_OK)
    failCurrentCall(status);
  return status == MOE_OK;
}

/// Every group rank's row count, in group order.
bool rowCounts(Communicator *comm, const std::vector<int64_t> &group, int64_t rows, std::vector<int64_t> &counts,
               const char *what) {
  counts.assign(group.size(), 0);
  return check(comm->allGather(group, &rows, counts.data(), sizeof(int64_t), what));
}

double reduce(double a, double b, int32_t reduction) {
  switch (reduction) {
  case MOE_REDUCE_MAX:
    return std::max(a, b);
  case MOE_REDUCE_MIN:
    return std::min(a, b);
  default:
    return a + b;
  }
}

/// The reduction of `parts` (group order) element by element, in f64.
void reduceInOrder(const std::vector<char> &gathered, size_t parts, int64_t elements, int32_t dtype, int32_t reduction,
                   int64_t first, int64_t count, void *out) {
  size_t bytes = moe_dtype_size(static_cast<moe_dtype_t>(dtype));
  for (int64_t i = 0; i < count; ++i) {
    double acc = loadF32(gathered.data(), first + i, dtype);
    for (size_t p = 1; p < parts; ++p)
      acc = reduce(acc, loadF32(gathered.data() + p * elements * bytes, first + i, dtype), reduction);
    storeF32(out, i, dtype, static_cast<float>(acc));
  }
}

} // namespace

extern "C" void moe_comm_all_gather(int64_t in, int64_t out, int64_t bytes, int32_t axes) {
  std::vector<int64_t> group;
  if (Communicator *comm = groupOf(axes, group, "all_gather"))
    check(comm->allGather(group, ptr<void>(in), ptr<void>(out), bytes, "all_gather"));
}

extern "C" int64_t moe_comm_gathered_rows(int64_t rows, int32_t axes) {
  std::vector<int64_t> group, counts;
  Communicator *comm = groupOf(axes, group, "all_gather (row counts)");
  if (!comm || !rowCounts(comm, group, rows, counts, "all_gather (row counts)"))
    return rows;
  int64_t total = 0;
  for (int64_t c : counts)
    total += c;
  return total;
}

extern "C" int64_t moe_comm_rows_before(int64_t rows, int32_t axes) {
  std::vector<int64_t> group, counts;
  Communicator *comm = groupOf(axes, group, "row_offset (row counts)");
  if (!comm || !rowCounts(comm, group, rows, counts, "row_offset (row counts)"))
    return 0;
  int64_t before = 0;
  for (size_t i = 0; i < group.size() && group[i] != comm->rank(); ++i)
    before += counts[i];
  return before;
}

extern "C" void moe_comm_all_gather_rows(int64_t in, int64_t out, int64_t rows, int64_t rowBytes, int32_t axes) {
  std::vector<int64_t> group, counts;
  Communicator *comm = groupOf(axes, group, "all_gather (rows)");
  if (!comm || !rowCounts(comm, group, rows, counts, "all_gather (row counts)"))
    return;
  for (int64_t &c : counts)
    c *= rowBytes;
  check(comm->allGatherV(group, ptr<void>(in), ptr<void>(out), counts, "all_gather (rows)"));
}

extern "C" void moe_comm_all_reduce(int64_t in, int64_t out, int64_t elements, int32_t dtype, int32_t reduction,
                                    int32_t axes) {
  std::vector<int64_t> group;
  Communicator *comm = groupOf(axes, group, "all_reduce");
  if (!comm)
    return;
  int64_t bytes = elements * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(dtype)));
  // Gathered, then reduced in group order: the same bits on every engine.
  std::vector<char> gathered(static_cast<size_t>(bytes) * group.size());
  if (check(comm->allGather(group, ptr<void>(in), gathered.data(), bytes, "all_reduce")))
    reduceInOrder(gathered, group.size(), elements, dtype, reduction, 0, elements, ptr<void>(out));
}

extern "C" void moe_comm_reduce_scatter(int64_t in, int64_t out, int64_t chunk, int32_t dtype, int32_t reduction,
                                        int32_t axes) {
  std::vector<int64_t> group;
  Communicator *comm = groupOf(axes, group, "reduce_scatter");
  if (!comm)
    return;
  int64_t elements = chunk * static_cast<int64_t>(group.size());
  int64_t bytes = elements * static_cast<int64_t>(moe_dtype_size(static_cast<moe_dtype_t>(dtype)));
  std::vector<char> gathered(static_cast<size_t>(bytes) * group.size());
  if (!check(comm->allGather(group, ptr<void>(in), gathered.data(), bytes, "reduce_scatter")))
    return;
  int64_t index = std::find(group.begin(), group.end(), comm->rank()) - group.begin();
  reduceInOrder(gathered, group.size(), elements, dtype, reduction, index * chunk, chunk, ptr<void>(out));
}

extern "C" void moe_comm_all_to_all(int64_t in, int64_t out, int64_t chunk, int32_t axes) {
  std::vector<int64_t> group;
  if (Communicator *comm = groupOf(axes, group, "all_to_all"))
    check(comm->allToAllV(group, ptr<void>(in), std::vector<int64_t>(group.size(), chunk), ptr<void>(out),
                          std::vector<int64_t>(group.size(), chunk), "all_to_all"));
}
