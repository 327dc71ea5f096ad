// mpi.cc - the MPI engine: CPU processes and hosts under mpirun.
//
// exchange() is non-blocking point-to-point (MPI_Irecv / MPI_Isend) polled
// with MPI_Testsome until everything completed or the deadline passed, so a
// dead or stuck peer is named instead of hanging this rank. Errors return
// (MPI_ERRORS_RETURN) rather than abort inside MPI.
#include "engines.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sched.h>
#include <set>
#include <thread>

namespace moe::runtime {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

// MPI counts are ints: big messages travel in pieces of at most 1 GiB.
constexpr int64_t kPiece = int64_t(1) << 30;
constexpr int kTag = 7001;

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator(int64_t rank, int64_t world) : Communicator(rank, world) {}
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
      MPI_Finalize();
  }
  const char *engine() const override { return "mpi"; }
  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

protected:
  moe_status_t exchangeWithPeers(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives,
                                 double deadline, std::vector<int64_t> &missing, std::string &error) override {
    std::vector<MPI_Request> requests;
    std::vector<int64_t> peerOf; // per request: the peer
    std::vector<char> isReceive; // per request
    auto post = [&](const Transfer &t, bool receive) -> int {
      int64_t at = 0;
      do {
        int count = static_cast<int>(std::min(kPiece, t.bytes - at));
        MPI_Request r;
        char *p = static_cast<char *>(t.data) + at;
        int rc = receive ? MPI_Irecv(p, count, MPI_BYTE, static_cast<int>(t.peer), kTag, MPI_COMM_WORLD, &r)
                         : MPI_Isend(p, count, MPI_BYTE, static_cast<int>(t.peer), kTag, MPI_COMM_WORLD, &r);
        if (rc != MPI_SUCCESS)
          return rc;
        requests.push_back(r);
        peerOf.push_back(t.peer);
        isReceive.push_back(receive);
        at += count;
      } while (at < t.bytes);
      return MPI_SUCCESS;
    };
    for (const Transfer &t : receives)
      if (int rc = post(t, true); rc != MPI_SUCCESS) {
        error = "MPI_Irecv from rank " + std::to_string(t.peer) + ": " + mpiError(rc);
        return MOE_UNAVAILABLE;
      }
    for (const Transfer &t : sends)
      if (int rc = post(t, false); rc != MPI_SUCCESS) {
        error = "MPI_Isend to rank " + std::to_string(t.peer) + ": " + mpiError(rc);
        return MOE_UNAVAILABLE;
      }
    std::vector<int> done(requests.size());
    size_t remaining = requests.size();
    unsigned idle = 0;
    while (remaining > 0) {
      int count = 0;
      int rc =
          MPI_Testsome(static_cast<int>(requests.size()), requests.data(), &count, done.data(), MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) {
        error = mpiError(rc);
        return MOE_UNAVAILABLE;
      }
      if (count == MPI_UNDEFINED)
        break;
      remaining -= static_cast<size_t>(count);
      if (remaining == 0)
        break;
      if (now() > deadline) {
        std::set<int64_t> peers;
        for (size_t i = 0; i < requests.size(); ++i)
          if (requests[i] != MPI_REQUEST_NULL && isReceive[i])
            peers.insert(peerOf[i]);
        if (peers.empty()) // only sends pending: the peer does not take them
          for (size_t i = 0; i < requests.size(); ++i)
            if (requests[i] != MPI_REQUEST_NULL)
              peers.insert(peerOf[i]);
        missing.assign(peers.begin(), peers.end());
        return MOE_UNAVAILABLE;
      }
      // Ranks may outnumber cores (mpirun --oversubscribe): yield, then sleep.
      if (count == 0 && ++idle > 64)
        std::this_thread::sleep_for(std::chrono::microseconds(idle > 4096 ? 1000 : 50));
      else
        sched_yield();
    }
    return MOE_OK;
  }
};

} // namespace

moe_status_t shareBytesOverMpi(const Launch &, void *data, size_t size) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return fail(MOE_UNAVAILABLE, "MPI_Init_thread failed");
  }
  if (MPI_Bcast(data, static_cast<int>(size), MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    return fail(MOE_UNAVAILABLE, "MPI_Bcast of NCCL's unique id failed");
  return MOE_OK;
}

moe_status_t openMpiCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return fail(MOE_UNAVAILABLE, "MPI_Init_thread failed");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (rank != launch.rank || world != launch.world)
    return fail(MOE_INVALID_ARGUMENT, "MPI says rank " + std::to_string(rank) + " of " + std::to_string(world) +
                                          ", the launcher's environment rank " + std::to_string(launch.rank) + " of " +
                                          std::to_string(launch.world));
  out = std::make_unique<MpiCommunicator>(rank, world);
  return MOE_OK;
}

} // namespace moe::runtime
