// communicator.cc - the collectives every engine shares, built on exchange(),
// the world of one, the launch environment, and the call's communicator.
#include "moe/runtime/comm.h"

#include "engines.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace moe::runtime {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// MOE_COLLECTIVE_TIMEOUT: seconds, > 0; anything else keeps the default
/// (with a note, once: a typo must not silently mean 300 s).
double timeoutFromEnvironment() {
  const char *text = std::getenv("MOE_COLLECTIVE_TIMEOUT");
  if (!text || !*text)
    return 300;
  char *end = nullptr;
  double v = std::strtod(text, &end);
  if (*end || !(v > 0)) {
    std::fprintf(stderr, "moe: warning: MOE_COLLECTIVE_TIMEOUT='%s' is not a positive number of seconds; using 300\n",
                 text);
    return 300;
  }
  return v;
}

/// MOE_FAULT_INJECT=kill:R:N or stall:R:N: rank R is killed (SIGKILL) or
/// stops forever at its N-th collective: the failures the time limit and
/// the launcher must turn into an error on every rank (tests, drills).
void injectFault(int64_t rank, uint64_t sequence) {
  static const char *spec = std::getenv("MOE_FAULT_INJECT");
  if (!spec || !*spec)
    return;
  char kind[8] = {};
  long long r = -1, n = -1;
  if (std::sscanf(spec, "%7[a-z]:%lld:%lld", kind, &r, &n) != 3 || r != rank || static_cast<uint64_t>(n) != sequence)
    return;
  std::fprintf(stderr, "moe: MOE_FAULT_INJECT: rank %lld %s at collective #%lld\n", r,
               std::strcmp(kind, "kill") == 0 ? "killed" : "stalls", n);
  std::fflush(stderr);
  if (std::strcmp(kind, "kill") == 0)
    std::raise(SIGKILL);
  for (;;)
    pause();
}

std::string rankList(const std::vector<int64_t> &ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size(); ++i)
    out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

class LocalCommunicator final : public Communicator {
public:
  LocalCommunicator() : Communicator(0, 1) {}
  const char *engine() const override { return "local"; }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

protected:
  moe_status_t exchangeWithPeers(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives, double,
                                 std::vector<int64_t> &, std::string &) override {
    if (!sends.empty() || !receives.empty())
      return fail(MOE_INTERNAL, "the world of one has no peers to exchange with");
    return MOE_OK;
  }
};

int64_t envInt(const char *name, int64_t fallback) {
  const char *v = std::getenv(name);
  if (!v || !*v)
    return fallback;
  char *end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  return *end ? fallback : n;
}

} // namespace

Communicator::Communicator(int64_t rank, int64_t world)
    : rank_(rank), world_(world), timeout_(timeoutFromEnvironment()) {}

moe_status_t Communicator::exchange(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives,
                                    const char *what) {
  if (moe_status_t s = waitForProducers())
    return s;
  double start = now();
  ++sequence_;
  injectFault(rank_, sequence_);
  // Self transfers are copies, matched in order.
  std::vector<Transfer> peerSends, peerReceives, selfSends, selfReceives;
  const bool copySelf = copiesSelfTransfers();
  for (const Transfer &t : sends)
    (t.peer == rank_ && copySelf ? selfSends : peerSends).push_back(t);
  for (const Transfer &t : receives)
    (t.peer == rank_ && copySelf ? selfReceives : peerReceives).push_back(t);
  if (selfSends.size() != selfReceives.size())
    return fail(MOE_INTERNAL, std::string(what) + ": " + std::to_string(selfSends.size()) + " sends to self but " +
                                  std::to_string(selfReceives.size()) + " receives");
  for (size_t i = 0; i < selfSends.size(); ++i) {
    if (selfSends[i].bytes != selfReceives[i].bytes)
      return fail(MOE_INTERNAL, std::string(what) + ": a self transfer of " + std::to_string(selfSends[i].bytes) +
                                    " bytes into " + std::to_string(selfReceives[i].bytes));
    if (selfSends[i].bytes)
      std::memmove(selfReceives[i].data, selfSends[i].data, static_cast<size_t>(selfSends[i].bytes));
  }
  moe_status_t status = MOE_OK;
  if (!peerSends.empty() || !peerReceives.empty()) {
    std::vector<int64_t> missing;
    std::string error;
    status = exchangeWithPeers(peerSends, peerReceives, start + timeout_, missing, error);
    if (status != MOE_OK) {
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", timeout_);
      if (!missing.empty())
        error = "collective " + std::string(what) + " (#" + std::to_string(sequence_) + " of this process) on rank " +
                std::to_string(rank_) + " did not complete within " + limit +
                " s (MOE_COLLECTIVE_TIMEOUT): nothing arrived from rank " + rankList(missing) +
                " (it died, hangs, or runs another program)";
      else
        error = "collective " + std::string(what) + " (#" + std::to_string(sequence_) + ") on rank " +
                std::to_string(rank_) + " failed: " + error;
      fail(status, error);
    }
  }
  collectiveSeconds_ += now() - start;
  return status;
}

moe_status_t Communicator::allToAllV(const std::vector<int64_t> &group, const void *send,
                                     const std::vector<int64_t> &sendBytes, void *recv,
                                     const std::vector<int64_t> &recvBytes, const char *what) {
  std::vector<Transfer> sends, receives;
  int64_t sendAt = 0, recvAt = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    // Zero-byte messages are sent too: every peer hears from every peer, so
    // a missing rank is named even when it had nothing to send.
    sends.push_back({group[i], const_cast<char *>(static_cast<const char *>(send)) + sendAt, sendBytes[i]});
    receives.push_back({group[i], static_cast<char *>(recv) + recvAt, recvBytes[i]});
    sendAt += sendBytes[i];
    recvAt += recvBytes[i];
  }
  return exchange(sends, receives, what);
}

moe_status_t Communicator::allGatherV(const std::vector<int64_t> &group, const void *send, void *recv,
                                      const std::vector<int64_t> &bytes, const char *what) {
  std::vector<Transfer> sends, receives;
  int64_t at = 0, mine = 0;
  for (size_t i = 0; i < group.size(); ++i)
    if (group[i] == rank_)
      mine = bytes[i];
  for (size_t i = 0; i < group.size(); ++i) {
    sends.push_back({group[i], const_cast<void *>(send), mine});
    receives.push_back({group[i], static_cast<char *>(recv) + at, bytes[i]});
    at += bytes[i];
  }
  return exchange(sends, receives, what);
}

moe_status_t Communicator::allGather(const std::vector<int64_t> &group, const void *send, void *recv, int64_t bytes,
                                     const char *what) {
  return allGatherV(group, send, recv, std::vector<int64_t>(group.size(), bytes), what);
}

std::unique_ptr<Communicator> localCommunicator() { return std::make_unique<LocalCommunicator>(); }

Launch detectLaunch() {
  Launch l;
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = "mpirun";
    l.world = envInt("OMPI_COMM_WORLD_SIZE", 1);
    l.rank = envInt("OMPI_COMM_WORLD_RANK", 0);
    l.localRank = envInt("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK")) {
    l.launcher = "mpirun";
    l.world = envInt("PMI_SIZE", 1);
    l.rank = envInt("PMI_RANK", envInt("PMIX_RANK", 0));
    l.localRank = envInt("MPI_LOCALRANKID", 0);
  } else if (std::getenv("WORLD_SIZE") && std::getenv("RANK")) {
    l.launcher = "torchrun";
    l.world = envInt("WORLD_SIZE", 1);
    l.rank = envInt("RANK", 0);
    l.localRank = envInt("LOCAL_RANK", 0);
  } else {
    l.launcher = "none";
  }
  return l;
}

moe_status_t openCommunicator(bool gpu, std::unique_ptr<Communicator> &out) {
  Launch launch = detectLaunch();
  if (launch.world < 1 || launch.rank < 0 || launch.rank >= launch.world)
    return fail(MOE_INVALID_ARGUMENT, "the " + launch.launcher + " environment gives rank " +
                                          std::to_string(launch.rank) + " of a world of " +
                                          std::to_string(launch.world));
  // A sharded cuda layer exchanges device memory: NCCL, a world of one included.
  if (gpu)
    return openNcclCommunicator(launch, out);
  if (launch.launcher == "mpirun")
    return openMpiCommunicator(launch, out);
  // torchrun (or its environment): TCP between the CPU processes.
  if (launch.world > 1)
    return openTcpCommunicator(launch, out);
  out = localCommunicator();
  return MOE_OK;
}

namespace {
thread_local Communicator *callComm = nullptr;
thread_local Mesh callMesh;
thread_local moe_status_t callStatus = MOE_OK;
} // namespace

Communicator *currentCommunicator() { return callComm; }

CallCommunicator::CallCommunicator(Communicator *comm, const Mesh &mesh) {
  callComm = comm;
  callMesh = mesh;
  callStatus = MOE_OK;
}
CallCommunicator::~CallCommunicator() {
  callComm = nullptr;
  callMesh = Mesh();
}
moe_status_t CallCommunicator::status() { return callStatus; }
const Mesh &CallCommunicator::mesh() { return callMesh; }
void failCurrentCall(moe_status_t status) {
  if (callStatus == MOE_OK)
    callStatus = status;
}

} // namespace moe::runtime
