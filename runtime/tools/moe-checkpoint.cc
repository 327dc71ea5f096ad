// moe-checkpoint.cc - looks into training checkpoints (docs/checkpoint.md)
// and exports one as a single-device weights file.
//
//   moe-checkpoint info C              the newest complete checkpoint: step, tensors
//   moe-checkpoint export C W.safetensors   its weights, the moe-run --weights format
//   mpirun -n N moe-checkpoint reshard C D --mesh M   C saved again as mesh M's ranks save it
#include "moe/runtime/checkpoint.h"
#include "moe/runtime/comm.h"
#include "moe/runtime/mesh.h"
#include "moe/runtime/safetensors.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

namespace {

const char *kUsage =
    "usage: moe-checkpoint info CHECKPOINT_DIR\n"
    "       moe-checkpoint export CHECKPOINT_DIR OUT.safetensors [--with-optimizer]\n"
    "       [mpirun -n N] moe-checkpoint reshard CHECKPOINT_DIR OUT_DIR --mesh rep=R,dp=D,ep=E\n"
    "       moe-checkpoint bench DIR EXPERTS D_MODEL D_FF [--async]\n"
    "Reads the newest complete checkpoint under CHECKPOINT_DIR (moe-run --checkpoint-dir), checking\n"
    "every chunk's checksum; export writes its weights (and, --with-optimizer, AdamW's state under\n"
    "its checkpoint names) as one safetensors file (moe-run --weights). reshard runs as the N = R*D*E\n"
    "ranks of a mesh: each reads only its shard of every tensor and they save it again, in parallel,\n"
    "as that mesh's training would.\n"
    "bench times a save and a load of a DeepSeek-V3-shaped layer's training state (bf16 experts\n"
    "[E, D, F] x 2 and [E, F, D], an f32 router [D, E], f32 masters and moments) under DIR; under mpirun -n N\n"
    "each rank holds and saves E/N experts (expert parallel) and reads its own back.\n";

int failed() {
  std::fprintf(stderr, "moe-checkpoint: error: %s\n", moe_last_error());
  return 1;
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// A rank's part of the training state of a DeepSeek-V3-shaped layer, laid
/// out as expert-parallel training over `world` ranks holds it (each rank
/// its experts / world of every expert tensor, the router on every rank and
/// saved by rank 0): weights filled with a cheap pattern (the bytes' values
/// do not matter to a save), and AdamW state. `bytes`: the rank's share of
/// what is saved.
moe::runtime::TrainingState benchState(int64_t experts, int64_t d, int64_t f, int64_t rank, int64_t world,
                                       uint64_t &bytes) {
  using moe::runtime::Placement;
  using moe::runtime::Tensor;
  moe::runtime::TrainingState state;
  state.step = state.optimizerSteps = 1;
  moe::runtime::Mesh mesh;
  mesh.ep = world;
  struct Spec {
    const char *name;
    moe_dtype_t dtype;
    std::vector<int64_t> global;
    Placement placement;
  };
  const Spec specs[] = {{"router.weight", MOE_F32, {d, experts}, Placement::Replicated},
                        {"experts.w_gate", MOE_BF16, {experts, d, f}, Placement::Experts},
                        {"experts.w_up", MOE_BF16, {experts, d, f}, Placement::Experts},
                        {"experts.w_down", MOE_BF16, {experts, f, d}, Placement::Experts}};
  bytes = 0;
  for (const Spec &spec : specs) {
    moe::runtime::TensorExtent e = moe::runtime::meshExtent(mesh, rank, spec.placement, spec.global);
    Tensor t = Tensor::zeros(spec.name, spec.dtype, e.localShape);
    for (size_t i = 0; i < t.data.size(); ++i)
      t.data[i] = static_cast<uint8_t>(i * 131 + 7);
    moe::runtime::AdamW::State s;
    s.master.assign(static_cast<size_t>(t.numElements()), 0.5f);
    s.m.assign(s.master.size(), 0.25f);
    s.v.assign(s.master.size(), 0.125f);
    if (e.writes)
      bytes += t.data.size() + 3 * s.master.size() * sizeof(float);
    state.optimizer[t.name] = std::move(s);
    if (world > 1)
      state.extents[t.name] = e;
    state.params.push_back(std::move(t));
  }
  return state;
}

/// The slowest rank's seconds, and the sum of the ranks' bytes.
void slowest(moe::runtime::Communicator &comm, double &seconds, uint64_t &bytes) {
  if (comm.world() == 1)
    return;
  std::vector<int64_t> group;
  for (int64_t r = 0; r < comm.world(); ++r)
    group.push_back(r);
  std::vector<double> times(static_cast<size_t>(comm.world()));
  std::vector<uint64_t> sizes(times.size());
  (void)comm.allGather(group, &seconds, times.data(), sizeof seconds, "bench (times)");
  (void)comm.allGather(group, &bytes, sizes.data(), sizeof bytes, "bench (bytes)");
  seconds = *std::max_element(times.begin(), times.end());
  bytes = 0;
  for (uint64_t b : sizes)
    bytes += b;
}

int bench(const std::string &dir, int64_t experts, int64_t d, int64_t f, bool async) {
  std::unique_ptr<moe::runtime::Communicator> comm;
  if (moe::runtime::openCommunicator(false, comm) != MOE_OK)
    return failed();
  const int64_t world = comm->world(), rank = comm->rank();
  if (experts % world != 0) {
    std::fprintf(stderr, "moe-checkpoint: error: bench: %lld ranks do not divide %lld experts\n",
                 static_cast<long long>(world), static_cast<long long>(experts));
    return 1;
  }
  const std::string mesh = world > 1 ? "ep=" + std::to_string(world) : "";
  moe::runtime::Communicator *savers = world > 1 ? comm.get() : nullptr;
  uint64_t bytes = 0;
  moe::runtime::TrainingState state = benchState(experts, d, f, rank, world, bytes);
  const uint64_t mine = bytes;
  auto t0 = std::chrono::steady_clock::now();
  std::string path;
  double blocked = 0, saveSeconds = 0;
  if (async) {
    moe::runtime::BackgroundCheckpoint background;
    moe::runtime::TrainingState snapshot = state; // what the trainer hands over
    if (background.start(dir, std::move(snapshot), "moe-checkpoint bench", savers, mesh) != MOE_OK)
      return failed();
    blocked = since(t0);
    if (background.finish() != MOE_OK)
      return failed();
    saveSeconds = since(t0);
  } else {
    if (moe::runtime::saveCheckpoint(dir, state, "moe-checkpoint bench", path, savers, mesh) != MOE_OK)
      return failed();
    saveSeconds = blocked = since(t0);
  }
  // Each rank reads back its own shards (the whole state on one process).
  std::map<std::string, moe::runtime::TensorExtent> wanted = state.extents;
  state = {};
  auto t1 = std::chrono::steady_clock::now();
  if (moe::runtime::loadCheckpoint(dir, state, path, world > 1 ? &wanted : nullptr) != MOE_OK)
    return failed();
  double loadSeconds = since(t1);
  uint64_t total = bytes, loadedTotal = 0;
  for (const moe::runtime::Tensor &t : state.params)
    loadedTotal += t.data.size() + 3 * static_cast<uint64_t>(t.numElements()) * sizeof(float);
  uint64_t loaded = loadedTotal;
  slowest(*comm, saveSeconds, total);
  slowest(*comm, blocked, bytes);
  slowest(*comm, loadSeconds, loadedTotal);
  if (rank != 0)
    return 0;
  double gb = static_cast<double>(total) / 1e9, loadGb = static_cast<double>(loadedTotal) / 1e9;
  std::printf("{\"engine\": \"moec\", \"ranks\": %lld, \"experts\": %lld, \"d\": %lld, \"f\": %lld, \"gb\": %.3f, "
              "\"save_s\": %.3f, \"save_gb_s\": %.2f, \"save_gb_s_per_rank\": %.2f, \"blocked_s\": %.3f, "
              "\"load_s\": %.3f, \"load_gb_s\": %.2f, \"load_gb_s_per_rank\": %.2f, \"async\": %s}\n",
              static_cast<long long>(world), static_cast<long long>(experts), static_cast<long long>(d),
              static_cast<long long>(f), gb, saveSeconds, gb / saveSeconds,
              static_cast<double>(mine) / 1e9 / saveSeconds, blocked, loadSeconds, loadGb / loadSeconds,
              static_cast<double>(loaded) / 1e9 / loadSeconds, async ? "true" : "false");
  return 0;
}

/// Every rank of `mesh` loads its shards of the newest checkpoint under
/// `from` (the placements its index records) and saves them under `to`.
int reshard(const std::string &from, const std::string &to, const std::string &meshText) {
  std::string error;
  std::optional<moe::runtime::Mesh> mesh = moe::runtime::parseMesh(meshText, error);
  if (!mesh) {
    std::fprintf(stderr, "moe-checkpoint: error: --mesh %s: %s\n", meshText.c_str(), error.c_str());
    return 1;
  }
  std::unique_ptr<moe::runtime::Communicator> comm;
  if (moe::runtime::openCommunicator(false, comm) != MOE_OK)
    return failed();
  auto stop = [&]() {
    int status = failed();
    if (comm->world() > 1)
      comm->abort(status);
    return status;
  };
  if (comm->world() != mesh->world()) {
    moe::runtime::fail(MOE_INVALID_ARGUMENT, "mesh " + mesh->toString() + " has " + std::to_string(mesh->world()) +
                                                 " ranks; the launch has " + std::to_string(comm->world()));
    return stop();
  }
  std::map<std::string, moe::runtime::TensorExtent> layout, wanted;
  if (moe::runtime::checkpointLayout(from, layout) != MOE_OK)
    return stop();
  for (const auto &[name, whole] : layout) {
    if (name.rfind("optimizer.", 0) == 0)
      continue; // loaded with its weight, as its weight is placed
    std::optional<moe::runtime::Placement> placement = moe::runtime::parsePlacement(whole.placement);
    if (!placement) {
      moe::runtime::fail(MOE_INVALID_FORMAT, "\"" + name + "\" has an unknown placement \"" + whole.placement + "\"");
      return stop();
    }
    if (*placement == moe::runtime::Placement::Experts &&
        (whole.globalShape.empty() || whole.globalShape[0] % mesh->ep != 0)) {
      moe::runtime::fail(MOE_INVALID_ARGUMENT, "mesh " + mesh->toString() + ": ep = " + std::to_string(mesh->ep) +
                                                   " does not divide the experts of \"" + name + "\" " +
                                                   moe::runtime::shapeString(whole.globalShape));
      return stop();
    }
    wanted[name] = moe::runtime::meshExtent(*mesh, comm->rank(), *placement, whole.globalShape);
  }
  moe::runtime::TrainingState state;
  std::string path;
  if (moe::runtime::loadCheckpoint(from, state, path, &wanted) != MOE_OK)
    return stop();
  std::string saved;
  if (moe::runtime::saveCheckpoint(to, state, "moe-checkpoint reshard of " + path, saved, comm.get(),
                                   mesh->toString()) != MOE_OK)
    return stop();
  if (comm->rank() == 0)
    std::printf("resharded %s (step %lld) onto mesh %s: %s\n", path.c_str(), static_cast<long long>(state.step),
                mesh->toString().c_str(), saved.c_str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc == 6 && std::strcmp(argv[1], "reshard") == 0 && std::strcmp(argv[4], "--mesh") == 0)
    return reshard(argv[2], argv[3], argv[5]);
  if (argc >= 6 && std::strcmp(argv[1], "bench") == 0) {
    bool async = argc == 7 && std::strcmp(argv[6], "--async") == 0;
    char *end = nullptr;
    long long values[3];
    for (int i = 0; i < 3; ++i) {
      values[i] = std::strtoll(argv[3 + i], &end, 10);
      if (*end || values[i] <= 0) {
        std::fprintf(stderr, "moe-checkpoint: error: bench needs positive EXPERTS D_MODEL D_FF, got '%s'\n",
                     argv[3 + i]);
        return 1;
      }
    }
    return bench(argv[2], values[0], values[1], values[2], async);
  }
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  bool info = argc == 3 && std::strcmp(argv[1], "info") == 0;
  bool withOptimizer = argc == 5 && std::strcmp(argv[4], "--with-optimizer") == 0;
  bool exporting = (argc == 4 || withOptimizer) && std::strcmp(argv[1], "export") == 0;
  if (!info && !exporting) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  moe::runtime::TrainingState state;
  std::string path;
  if (moe::runtime::loadCheckpoint(argv[2], state, path) != MOE_OK)
    return failed();
  if (exporting) {
    std::vector<moe::runtime::Tensor> tensors = state.params;
    if (withOptimizer)
      for (const auto &[name, st] : state.optimizer)
        for (auto [part, values] : {std::pair{"master", &st.master}, {"exp_avg", &st.m}, {"exp_avg_sq", &st.v}}) {
          const moe::runtime::Tensor *param = nullptr;
          for (const moe::runtime::Tensor &p : state.params)
            if (p.name == name)
              param = &p;
          moe::runtime::Tensor t = moe::runtime::Tensor::zeros("optimizer." + name + "." + part, MOE_F32, param->shape);
          std::memcpy(t.data.data(), values->data(), values->size() * sizeof(float));
          tensors.push_back(std::move(t));
        }
    if (moe::runtime::writeSafetensors(argv[3], tensors) != MOE_OK)
      return failed();
    std::printf("wrote the %zu weights of %s (step %lld) to %s\n", state.params.size(), path.c_str(),
                static_cast<long long>(state.step), argv[3]);
    return 0;
  }
  std::printf("%s: step %lld, AdamW step %lld, %zu weights, optimizer state for %zu\n", path.c_str(),
              static_cast<long long>(state.step), static_cast<long long>(state.optimizerSteps), state.params.size(),
              state.optimizer.size());
  if (!state.writtenBy.empty())
    std::printf("  written by %s\n", state.writtenBy.c_str());
  for (const moe::runtime::Tensor &t : state.params)
    std::printf("  %s %s %s\n", t.name.c_str(), moe::runtime::shapeString(t.shape).c_str(), moe_dtype_name(t.dtype));
  return 0;
}
