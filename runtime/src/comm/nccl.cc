// nccl.cc - the NCCL engine: one process per GPU, libnccl.so.2 loaded with
// dlopen (like the CUDA driver), so the runtime builds and runs without NCCL.
//
// exchange() takes device addresses, and host addresses too (small values:
// row counts, the artifact hash, the outputs gathered to rank 0), which it
// stages through device memory. It first waits for the work already queued
// in the context (a layer's kernels that wrote the buffers, on the layer's
// stream); then every transfer (self included) is an ncclSend / ncclRecv in
// one group on the engine's stream, polled (cuStreamQuery,
// ncclCommGetAsyncError) until the deadline; at the deadline the
// communicator is aborted (ncclCommAbort) and the peers of the exchange are
// named. Zero-byte transfers are left out (both sides know the sizes).
//
// The unique id travels through MPI when the job runs under mpirun and this
// build has MPI, else through a TCP rendezvous: rank 0 listens on
// MASTER_ADDR:(MASTER_PORT + 1) (torchrun's own store holds MASTER_PORT) and
// sends the id to every rank that connects.
#include "engines.h"

#include "../cuda/driver.h"

#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <netdb.h>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace moe::runtime {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// NCCL's C ABI (nccl.h), declared here: no NCCL header is needed to build.
using ncclComm_t = struct ncclComm *;
constexpr int kNcclSuccess = 0, kNcclInProgress = 7, kNcclUint8 = 1;
struct NcclUniqueId {
  char internal[128];
};
struct Nccl {
  int (*getUniqueId)(NcclUniqueId *);
  int (*commInitRank)(ncclComm_t *, int, NcclUniqueId, int);
  int (*commDestroy)(ncclComm_t);
  int (*commAbort)(ncclComm_t);
  int (*commGetAsyncError)(ncclComm_t, int *);
  int (*groupStart)();
  int (*groupEnd)();
  int (*send)(const void *, size_t, int, int, ncclComm_t, cuda::CUstream);
  int (*recv)(void *, size_t, int, int, ncclComm_t, cuda::CUstream);
  const char *(*getErrorString)(int);
};

template <typename Fn> bool resolve(void *library, Fn &slot, const char *name) {
  slot = reinterpret_cast<Fn>(dlsym(library, name));
  return slot != nullptr;
}

moe_status_t loadNccl(const Nccl *&out) {
  static Nccl nccl;
  static std::string error;
  static bool loaded = [] {
    void *library = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!library)
      library = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      error = std::string("cannot load NCCL (libnccl.so.2): ") + dlerror();
      return false;
    }
    if (!(resolve(library, nccl.getUniqueId, "ncclGetUniqueId") &&
          resolve(library, nccl.commInitRank, "ncclCommInitRank") &&
          resolve(library, nccl.commDestroy, "ncclCommDestroy") && resolve(library, nccl.commAbort, "ncclCommAbort") &&
          resolve(library, nccl.commGetAsyncError, "ncclCommGetAsyncError") &&
          resolve(library, nccl.groupStart, "ncclGroupStart") && resolve(library, nccl.groupEnd, "ncclGroupEnd") &&
          resolve(library, nccl.send, "ncclSend") && resolve(library, nccl.recv, "ncclRecv") &&
          resolve(library, nccl.getErrorString, "ncclGetErrorString"))) {
      error = "libnccl.so.2 lacks an entry point the runtime needs (NCCL 2.7 or later)";
      return false;
    }
    return true;
  }();
  if (!loaded)
    return fail(MOE_UNAVAILABLE, error);
  out = &nccl;
  return MOE_OK;
}

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(int64_t rank, int64_t world, const Nccl &nccl, const cuda::Driver &driver, ncclComm_t comm,
                   cuda::CUstream stream)
      : Communicator(rank, world), nccl(nccl), driver(driver), comm(comm), stream(stream) {}
  ~NcclCommunicator() override {
    if (comm)
      (aborted ? nccl.commAbort : nccl.commDestroy)(comm);
    if (stream)
      driver.cuStreamDestroy(stream);
  }
  const char *engine() const override { return "nccl"; }
  [[noreturn]] void abort(int code) override {
    if (comm && !aborted)
      nccl.commAbort(comm);
    aborted = true;
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(code);
  }

protected:
  bool copiesSelfTransfers() const override { return false; }

  // The buffers' producers: kernels on other streams of the context.
  moe_status_t waitForProducers() override {
    return cuda::check(driver.cuCtxSynchronize(), "waiting for the GPU before an exchange");
  }

  moe_status_t exchangeWithPeers(const std::vector<Transfer> &sendsGiven, const std::vector<Transfer> &receivesGiven,
                                 double deadline, std::vector<int64_t> &missing, std::string &error) override {
    std::vector<Transfer> sends, receives;
    StagedHostMemory staged;
    if (moe_status_t s = stage(sendsGiven, receivesGiven, sends, receives, staged, error))
      return s;
    moe_status_t status = exchangeOnDevice(sends, receives, deadline, missing, error);
    if (status == MOE_OK)
      status = staged.copyBack(driver, error);
    return status;
  }

private:
  /// Host buffers of an exchange, staged in one device buffer.
  struct StagedHostMemory {
    cuda::CUdeviceptr device = 0;
    const cuda::Driver *owner = nullptr;
    std::vector<std::pair<void *, cuda::CUdeviceptr>> receives; ///< host, device
    std::vector<int64_t> receiveBytes;
    ~StagedHostMemory() {
      if (device)
        owner->cuMemFree(device);
    }
    moe_status_t copyBack(const cuda::Driver &d, std::string &error) {
      for (size_t i = 0; i < receives.size(); ++i)
        if (cuda::CUresult r = d.cuMemcpyDtoHAsync(receives[i].first, receives[i].second,
                                                   static_cast<size_t>(receiveBytes[i]), nullptr)) {
          error = "copying a received message to the host failed (driver error " + std::to_string(r) + ")";
          return MOE_UNAVAILABLE;
        }
      if (!receives.empty())
        if (cuda::CUresult r = d.cuCtxSynchronize()) {
          error = "copying received messages to the host failed (driver error " + std::to_string(r) + ")";
          return MOE_UNAVAILABLE;
        }
      return MOE_OK;
    }
  };

  bool onDevice(const void *p) const {
    unsigned type = 0;
    return driver.cuPointerGetAttribute(&type, cuda::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                        reinterpret_cast<cuda::CUdeviceptr>(p)) == cuda::CUDA_SUCCESS &&
           type == cuda::CU_MEMORYTYPE_DEVICE;
  }

  /// The transfers NCCL sees: device addresses, host ones replaced by slots
  /// of one staging buffer (sends copied in), zero-byte ones dropped.
  moe_status_t stage(const std::vector<Transfer> &sendsGiven, const std::vector<Transfer> &receivesGiven,
                     std::vector<Transfer> &sends, std::vector<Transfer> &receives, StagedHostMemory &staged,
                     std::string &error) {
    int64_t hostBytes = 0;
    auto aligned = [](int64_t n) { return (n + 255) / 256 * 256; };
    for (const auto *list : {&sendsGiven, &receivesGiven})
      for (const Transfer &t : *list)
        if (t.bytes > 0 && !onDevice(t.data))
          hostBytes += aligned(t.bytes);
    if (hostBytes > 0) {
      if (cuda::CUresult r = driver.cuMemAlloc(&staged.device, static_cast<size_t>(hostBytes))) {
        error = "no GPU memory to stage " + std::to_string(hostBytes) + " bytes of host messages (driver error " +
                std::to_string(r) + ")";
        return MOE_UNAVAILABLE;
      }
      staged.owner = &driver;
    }
    int64_t at = 0;
    auto place = [&](const Transfer &t, bool send, std::vector<Transfer> &out) -> bool {
      if (t.bytes <= 0)
        return true;
      Transfer device = t;
      if (!onDevice(t.data)) {
        cuda::CUdeviceptr slot = staged.device + static_cast<cuda::CUdeviceptr>(at);
        at += aligned(t.bytes);
        device.data = reinterpret_cast<void *>(slot);
        if (send && driver.cuMemcpyHtoDAsync(slot, t.data, static_cast<size_t>(t.bytes), stream) != 0)
          return false;
        if (!send) {
          staged.receives.emplace_back(t.data, slot);
          staged.receiveBytes.push_back(t.bytes);
        }
      }
      out.push_back(device);
      return true;
    };
    for (const Transfer &t : sendsGiven)
      if (!place(t, true, sends)) {
        error = "copying a host message to the GPU failed";
        return MOE_UNAVAILABLE;
      }
    for (const Transfer &t : receivesGiven)
      place(t, false, receives);
    return MOE_OK;
  }

  moe_status_t exchangeOnDevice(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives,
                                double deadline, std::vector<int64_t> &missing, std::string &error) {
    if (sends.empty() && receives.empty())
      return MOE_OK;
    int rc = nccl.groupStart();
    for (const Transfer &t : receives)
      if (rc == kNcclSuccess)
        rc = nccl.recv(t.data, static_cast<size_t>(t.bytes), kNcclUint8, static_cast<int>(t.peer), comm, stream);
    for (const Transfer &t : sends)
      if (rc == kNcclSuccess)
        rc = nccl.send(t.data, static_cast<size_t>(t.bytes), kNcclUint8, static_cast<int>(t.peer), comm, stream);
    int end = nccl.groupEnd();
    if (rc == kNcclSuccess)
      rc = end;
    if (rc != kNcclSuccess && rc != kNcclInProgress) {
      error = std::string("NCCL: ") + nccl.getErrorString(rc);
      return MOE_UNAVAILABLE;
    }
    for (unsigned idle = 0;; ++idle) {
      cuda::CUresult done = driver.cuStreamQuery(stream);
      if (done == cuda::CUDA_SUCCESS)
        return MOE_OK;
      if (done != 600) { // CUDA_ERROR_NOT_READY
        error = "the CUDA stream failed (driver error " + std::to_string(done) + ")";
        return MOE_UNAVAILABLE;
      }
      int async = kNcclSuccess;
      nccl.commGetAsyncError(comm, &async);
      if (async != kNcclSuccess && async != kNcclInProgress) {
        error = std::string("NCCL: ") + nccl.getErrorString(async);
        return MOE_UNAVAILABLE;
      }
      if (now() > deadline) {
        // NCCL does not say which peer is late: name every peer of the exchange.
        std::set<int64_t> peers;
        for (const Transfer &t : receives)
          peers.insert(t.peer);
        missing.assign(peers.begin(), peers.end());
        nccl.commAbort(comm);
        comm = nullptr;
        aborted = true;
        return MOE_UNAVAILABLE;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(idle > 1000 ? 200 : 10));
    }
  }

  const Nccl &nccl;
  const cuda::Driver &driver;
  ncclComm_t comm = nullptr;
  cuda::CUstream stream = nullptr;
  bool aborted = false;
};

/// The unique id from rank 0 over TCP: rank 0 serves it to world - 1
/// connections on MASTER_ADDR:(MASTER_PORT + 1); the others retry until the
/// collective time limit.
moe_status_t rendezvous(const Launch &launch, NcclUniqueId &id, double timeout) {
  const char *addr = std::getenv("MASTER_ADDR"), *portText = std::getenv("MASTER_PORT");
  if (!addr || !portText)
    return fail(MOE_INVALID_ARGUMENT, "NCCL's unique id needs MPI (mpirun) or MASTER_ADDR and MASTER_PORT "
                                      "(torchrun sets them)");
  int port = std::atoi(portText) + 1;
  std::string service = std::to_string(port);
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = launch.rank == 0 ? AI_PASSIVE : 0;
  if (getaddrinfo(launch.rank == 0 ? nullptr : addr, service.c_str(), &hints, &found) != 0 || !found)
    return fail(MOE_UNAVAILABLE, std::string("cannot resolve MASTER_ADDR '") + addr + "'");
  double deadline = now() + timeout;
  moe_status_t status = MOE_OK;
  if (launch.rank == 0) {
    int server = socket(found->ai_family, found->ai_socktype, 0);
    int yes = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (server < 0 || bind(server, found->ai_addr, found->ai_addrlen) != 0 || listen(server, 64) != 0) {
      status = fail(MOE_UNAVAILABLE,
                    "rank 0 cannot listen on port " + service + " (MASTER_PORT + 1): " + std::strerror(errno));
    } else {
      for (int64_t served = 1; served < launch.world && status == MOE_OK; ++served) {
        int peer = accept(server, nullptr, nullptr);
        if (peer < 0 || write(peer, id.internal, sizeof id.internal) != static_cast<ssize_t>(sizeof id.internal))
          status = fail(MOE_UNAVAILABLE, "rank 0 could not send NCCL's unique id to a peer");
        if (peer >= 0)
          close(peer);
      }
    }
    if (server >= 0)
      close(server);
  } else {
    for (;;) {
      int fd = socket(found->ai_family, found->ai_socktype, 0);
      if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
        size_t got = 0;
        while (got < sizeof id.internal) {
          ssize_t n = read(fd, id.internal + got, sizeof id.internal - got);
          if (n <= 0)
            break;
          got += static_cast<size_t>(n);
        }
        close(fd);
        if (got == sizeof id.internal)
          break;
      } else if (fd >= 0) {
        close(fd);
      }
      if (now() > deadline) {
        status =
            fail(MOE_UNAVAILABLE, "rank " + std::to_string(launch.rank) + " got no NCCL unique id from rank 0 at " +
                                      addr + ":" + service + " within the time limit");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  freeaddrinfo(found);
  return status;
}

} // namespace

moe_status_t openNcclCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out) {
  const Nccl *nccl = nullptr;
  const cuda::Driver *driver = nullptr;
  if (moe_status_t s = loadNccl(nccl))
    return s;
  if (moe_status_t s = cuda::loadDriver(driver))
    return s;
  // The GPU of this process: LOCAL_RANK (torchrun, Open MPI's local rank).
  int devices = 0;
  if (moe_status_t s = cuda::check(driver->cuDeviceGetCount(&devices), "cuDeviceGetCount"))
    return s;
  if (launch.localRank >= devices)
    return fail(MOE_UNAVAILABLE, "local rank " + std::to_string(launch.localRank) + " has no GPU of its own (" +
                                     std::to_string(devices) + " on this host): NCCL cannot put two ranks on one GPU");
  cuda::CUdevice device;
  cuda::CUcontext context;
  if (moe_status_t s = cuda::check(driver->cuDeviceGet(&device, static_cast<int>(launch.localRank)), "cuDeviceGet"))
    return s;
  if (moe_status_t s = cuda::check(driver->cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain"))
    return s;
  if (moe_status_t s = cuda::check(driver->cuCtxSetCurrent(context), "cuCtxSetCurrent"))
    return s;
  NcclUniqueId id{};
  if (launch.rank == 0 && nccl->getUniqueId(&id) != kNcclSuccess)
    return fail(MOE_UNAVAILABLE, "ncclGetUniqueId failed");
  double timeout = 300;
  if (const char *t = std::getenv("MOE_COLLECTIVE_TIMEOUT"))
    timeout = std::max(1.0, std::atof(t));
  if (launch.world > 1) {
    // Through MPI under mpirun; else (torchrun, or a runtime without MPI) over TCP.
    moe_status_t s = MOE_UNAVAILABLE;
    if (launch.launcher == "mpirun")
      s = shareBytesOverMpi(launch, id.internal, sizeof id.internal);
    if (s != MOE_OK && (launch.launcher != "mpirun" || std::getenv("MASTER_ADDR")))
      s = rendezvous(launch, id, timeout);
    if (s)
      return s;
  }
  ncclComm_t comm = nullptr;
  if (int rc = nccl->commInitRank(&comm, static_cast<int>(launch.world), id, static_cast<int>(launch.rank)))
    return fail(MOE_UNAVAILABLE, std::string("ncclCommInitRank: ") + nccl->getErrorString(rc));
  cuda::CUstream stream = nullptr;
  if (moe_status_t s = cuda::check(driver->cuStreamCreate(&stream, cuda::CU_STREAM_NON_BLOCKING), "cuStreamCreate")) {
    nccl->commDestroy(comm);
    return s;
  }
  out = std::make_unique<NcclCommunicator>(launch.rank, launch.world, *nccl, *driver, comm, stream);
  return MOE_OK;
}

} // namespace moe::runtime
