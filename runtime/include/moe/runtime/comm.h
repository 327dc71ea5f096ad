// comm.h - communicators: how the ranks of a mesh exchange bytes.
//
// One interface, several engines: the world of one (no launcher), MPI
// between CPU processes and hosts (mpirun), NCCL between GPUs (loaded with
// dlopen). Every collective is built on one primitive, exchange(): a set of
// sends and receives with peers that completes as a whole or fails after the
// time limit (MOE_COLLECTIVE_TIMEOUT seconds, default 300) with a message
// naming the collective and the ranks it heard nothing from. Sums over
// ranks are formed in rank order by the caller, never by the engine, so no
// result depends on the engine's reduction tree.
#ifndef MOE_RUNTIME_COMM_H
#define MOE_RUNTIME_COMM_H

#include "moe/runtime/mesh.h"
#include "moe/runtime/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe::runtime {

/// One message of an exchange: `bytes` at `data` to or from world rank `peer`.
struct Transfer {
  int64_t peer = 0;
  void *data = nullptr;
  int64_t bytes = 0;
};

class Communicator {
public:
  virtual ~Communicator() = default;
  int64_t rank() const { return rank_; }
  int64_t world() const { return world_; }
  /// "local", "mpi", "tcp" or "nccl".
  virtual const char *engine() const = 0;

  /// Posts every receive and send, then waits for all of them, at most the
  /// time limit. `what` names the collective in messages. A self transfer
  /// (peer == rank) is a copy from the send of the same index order.
  moe_status_t exchange(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives, const char *what);

  /// Every rank of `group` (world ranks, increasing, including this one)
  /// sends sendBytes[i] bytes (consecutive in `send`) to group[i] and
  /// receives recvBytes[i] bytes (consecutive in `recv`) from it.
  moe_status_t allToAllV(const std::vector<int64_t> &group, const void *send, const std::vector<int64_t> &sendBytes,
                         void *recv, const std::vector<int64_t> &recvBytes, const char *what);
  /// Concatenates every group rank's `bytes[i]` bytes into `recv`, in group order.
  moe_status_t allGatherV(const std::vector<int64_t> &group, const void *send, void *recv,
                          const std::vector<int64_t> &bytes, const char *what);
  /// Each rank's `bytes` gathered in group order (equal sizes).
  moe_status_t allGather(const std::vector<int64_t> &group, const void *send, void *recv, int64_t bytes,
                         const char *what);

  /// Ends every rank of the job (after a failed collective: the peers may be
  /// blocked in one that will never complete). Does not return.
  [[noreturn]] virtual void abort(int code) = 0;

  /// Seconds spent inside exchange() since the last reset (for --bench).
  double collectiveSeconds() const { return collectiveSeconds_; }
  void resetCollectiveSeconds() { collectiveSeconds_ = 0; }
  /// The time limit of one collective, from MOE_COLLECTIVE_TIMEOUT.
  double timeoutSeconds() const { return timeout_; }

protected:
  Communicator(int64_t rank, int64_t world);
  /// Whether exchange() copies self transfers with memmove (host memory), or
  /// hands them to the engine (NCCL: device memory, sent to itself).
  virtual bool copiesSelfTransfers() const { return true; }
  /// Waits for whatever produces the buffers (NCCL: the work queued on the
  /// GPU), before the exchange's clock starts: that wait is not collective time.
  virtual moe_status_t waitForProducers() { return MOE_OK; }
  /// The engine's part of exchange(): no self transfers; `deadline` is a
  /// steady-clock time in seconds. On timeout, fills `missing` with the peers
  /// whose receives did not complete and returns MOE_UNAVAILABLE.
  virtual moe_status_t exchangeWithPeers(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives,
                                         double deadline, std::vector<int64_t> &missing, std::string &error) = 0;

  int64_t rank_ = 0, world_ = 1;
  double timeout_ = 300;
  double collectiveSeconds_ = 0;
  uint64_t sequence_ = 0; ///< collectives so far, for messages
};

/// How the process was launched: world size, rank, and the engine.
struct Launch {
  int64_t rank = 0, world = 1, localRank = 0;
  std::string launcher; ///< "none", "mpirun", "torchrun"
};
/// Reads the launcher's environment (Open MPI's OMPI_COMM_WORLD_*, PMI_*,
/// torchrun's RANK / WORLD_SIZE / LOCAL_RANK) without starting anything.
Launch detectLaunch();

/// Opens the communicator the launch calls for: the world of one without a
/// launcher, MPI under mpirun, TCP under torchrun (its RANK, WORLD_SIZE,
/// MASTER_ADDR and MASTER_PORT). `gpu`: NCCL between the GPUs (torchrun,
/// mpirun, or none: a world of one). A launch this build cannot serve is
/// refused with a message.
moe_status_t openCommunicator(bool gpu, std::unique_ptr<Communicator> &out);

/// NCCL between GPUs (libnccl.so.2 loaded with dlopen): the GPU of
/// `launch.localRank`, the unique id through MPI under mpirun, else through
/// MASTER_ADDR:(MASTER_PORT + 1). Its exchange() takes device addresses.
/// MOE_UNAVAILABLE, with the reason, without a GPU or NCCL.
moe_status_t openNcclCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out);

/// The world of one: every transfer is a copy.
std::unique_ptr<Communicator> localCommunicator();

/// The communicator the compiled code's collectives use during a call
/// (Layer::run sets it; null outside a call and for one device).
Communicator *currentCommunicator();
struct CallCommunicator {
  CallCommunicator(Communicator *comm, const Mesh &mesh);
  ~CallCommunicator();
  /// The first collective failure of the call (its status), if any.
  static moe_status_t status();
  static const Mesh &mesh();
};
/// Records a failed collective of the current call: later collectives of the
/// call do nothing, and Layer::run returns the error.
void failCurrentCall(moe_status_t status);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMM_H
