// tcp.cc - the TCP engine: CPU processes under torchrun (or any launcher
// that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), no MPI needed.
//
// Start-up: rank 0 listens on MASTER_ADDR:(MASTER_PORT + 2) (torchrun's store
// holds MASTER_PORT, NCCL's unique id MASTER_PORT + 1). Every other rank
// opens a listening socket of its own, connects to rank 0 and sends its rank
// and port; rank 0 answers with every rank's address and port. Rank j then
// connects to each rank 0 < i < j: one stream socket for each pair of ranks,
// rank 0's being the start-up connections.
//
// exchange(): the sends to a peer go out in order on its socket and the
// receives from it are read in order (a pair's collectives are issued in the
// same order on both sides, as MPI's non-overtaking messages assume), all
// sockets polled together until everything completed or the deadline
// passed. A peer that dies closes its sockets: the exchange fails at once
// naming it, without waiting for the time limit.
#include "engines.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace moe::runtime {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// Blocking reads and writes of whole buffers during start-up.
bool sendAll(int fd, const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0 && errno != EINTR)
      return false;
    if (n > 0)
      p += n, size -= static_cast<size_t>(n);
  }
  return true;
}

bool recvAll(int fd, void *data, size_t size) {
  char *p = static_cast<char *>(data);
  while (size > 0) {
    ssize_t n = ::recv(fd, p, size, 0);
    if (n == 0 || (n < 0 && errno != EINTR))
      return false;
    if (n > 0)
      p += n, size -= static_cast<size_t>(n);
  }
  return true;
}

void tune(int fd) {
  int yes = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
}

/// Where a rank listens, as rank 0 saw it.
struct Endpoint {
  uint32_t address = 0; ///< IPv4, network order
  uint16_t port = 0;    ///< network order
  uint16_t unused = 0;
};

class TcpCommunicator final : public Communicator {
public:
  TcpCommunicator(int64_t rank, int64_t world) : Communicator(rank, world), peers_(static_cast<size_t>(world), -1) {}
  ~TcpCommunicator() override {
    for (int fd : peers_)
      if (fd >= 0)
        ::close(fd);
  }
  const char *engine() const override { return "tcp"; }
  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    // Closed sockets end the peers' exchanges with a message naming this rank.
    for (int fd : peers_)
      if (fd >= 0)
        ::shutdown(fd, SHUT_RDWR);
    std::_Exit(code);
  }

  moe_status_t connect(double timeout);

protected:
  moe_status_t exchangeWithPeers(const std::vector<Transfer> &sends, const std::vector<Transfer> &receives,
                                 double deadline, std::vector<int64_t> &missing, std::string &error) override;

private:
  std::vector<int> peers_; ///< the socket to each rank (-1: this rank)
};

moe_status_t TcpCommunicator::connect(double timeout) {
  const char *addr = std::getenv("MASTER_ADDR"), *portText = std::getenv("MASTER_PORT");
  if (!addr || !portText || std::atoi(portText) <= 0)
    return fail(MOE_INVALID_ARGUMENT, "a CPU job of " + std::to_string(world_) +
                                          " ranks without mpirun needs MASTER_ADDR and MASTER_PORT (torchrun sets "
                                          "them)");
  const std::string service = std::to_string(std::atoi(portText) + 2);
  const double deadline = now() + timeout;
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = rank_ == 0 ? AI_PASSIVE : 0;
  if (getaddrinfo(rank_ == 0 ? nullptr : addr, service.c_str(), &hints, &found) != 0 || !found)
    return fail(MOE_UNAVAILABLE, std::string("cannot resolve MASTER_ADDR '") + addr + "'");
  std::vector<Endpoint> table(static_cast<size_t>(world_));
  moe_status_t status = MOE_OK;
  if (rank_ == 0) {
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (server < 0 || bind(server, found->ai_addr, found->ai_addrlen) != 0 || listen(server, 128) != 0) {
      status = fail(MOE_UNAVAILABLE,
                    "rank 0 cannot listen on port " + service + " (MASTER_PORT + 2): " + std::strerror(errno));
    }
    for (int64_t joined = 1; status == MOE_OK && joined < world_; ++joined) {
      pollfd p{server, POLLIN, 0};
      int left = static_cast<int>((deadline - now()) * 1000);
      if (left <= 0 || ::poll(&p, 1, left) <= 0) {
        status =
            fail(MOE_UNAVAILABLE, "rank 0: only " + std::to_string(joined - 1) + " of " + std::to_string(world_ - 1) +
                                      " ranks connected within the time limit "
                                      "(MOE_COLLECTIVE_TIMEOUT)");
        break;
      }
      sockaddr_in from{};
      socklen_t length = sizeof from;
      int fd = ::accept(server, reinterpret_cast<sockaddr *>(&from), &length);
      int64_t hello[2] = {-1, 0}; // rank, port
      if (fd < 0 || !recvAll(fd, hello, sizeof hello) || hello[0] <= 0 || hello[0] >= world_ || peers_[hello[0]] >= 0) {
        status =
            fail(MOE_UNAVAILABLE, "rank 0: a bad start-up message from a peer (another job on port " + service + "?)");
        if (fd >= 0)
          ::close(fd);
        break;
      }
      tune(fd);
      peers_[hello[0]] = fd;
      table[hello[0]] = {from.sin_addr.s_addr, htons(static_cast<uint16_t>(hello[1])), 0};
    }
    if (server >= 0)
      ::close(server);
    for (int64_t r = 1; status == MOE_OK && r < world_; ++r)
      if (!sendAll(peers_[r], table.data(), table.size() * sizeof(Endpoint)))
        status = fail(MOE_UNAVAILABLE, "rank 0 could not send the ranks' addresses to rank " + std::to_string(r));
    freeaddrinfo(found);
    return status;
  }
  // A listening socket of this rank's own, for the ranks above it.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof any;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr *>(&any), sizeof any) != 0 ||
      listen(listener, 128) != 0 || getsockname(listener, reinterpret_cast<sockaddr *>(&any), &length) != 0) {
    freeaddrinfo(found);
    return fail(MOE_UNAVAILABLE, "rank " + std::to_string(rank_) + " cannot listen: " + std::strerror(errno));
  }
  int64_t hello[2] = {rank_, ntohs(any.sin_port)};
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
      if (sendAll(fd, hello, sizeof hello) && recvAll(fd, table.data(), table.size() * sizeof(Endpoint))) {
        tune(fd);
        peers_[0] = fd;
        break;
      }
      ::close(fd);
      status = fail(MOE_UNAVAILABLE, "rank " + std::to_string(rank_) + " lost its start-up connection to rank 0");
      break;
    }
    if (fd >= 0)
      ::close(fd);
    if (now() > deadline) {
      status = fail(MOE_UNAVAILABLE, "rank " + std::to_string(rank_) + " could not reach rank 0 at " + addr + ":" +
                                         service + " within the time limit (MOE_COLLECTIVE_TIMEOUT)");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  freeaddrinfo(found);
  // Connect to every rank below (but 0), accept every rank above.
  for (int64_t i = 1; status == MOE_OK && i < rank_; ++i) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = table[i].address;
    to.sin_port = table[i].port;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0 ||
        !sendAll(fd, &rank_, sizeof rank_)) {
      status = fail(MOE_UNAVAILABLE, "rank " + std::to_string(rank_) + " cannot connect to rank " + std::to_string(i) +
                                         ": " + std::strerror(errno));
      if (fd >= 0)
        ::close(fd);
      break;
    }
    tune(fd);
    peers_[i] = fd;
  }
  for (int64_t accepted = rank_ + 1; status == MOE_OK && accepted < world_; ++accepted) {
    pollfd p{listener, POLLIN, 0};
    int left = static_cast<int>((deadline - now()) * 1000);
    int64_t from = -1;
    int fd = left > 0 && ::poll(&p, 1, left) > 0 ? ::accept(listener, nullptr, nullptr) : -1;
    if (fd < 0 || !recvAll(fd, &from, sizeof from) || from <= rank_ || from >= world_ || peers_[from] >= 0) {
      status = fail(MOE_UNAVAILABLE, "rank " + std::to_string(rank_) +
                                         ": the ranks above it did not all connect "
                                         "within the time limit");
      if (fd >= 0)
        ::close(fd);
      break;
    }
    tune(fd);
    peers_[from] = fd;
  }
  ::close(listener);
  return status;
}

moe_status_t TcpCommunicator::exchangeWithPeers(const std::vector<Transfer> &sends,
                                                const std::vector<Transfer> &receives, double deadline,
                                                std::vector<int64_t> &missing, std::string &error) {
  // Per peer: its transfers in order, and how far each direction got.
  struct Stream {
    std::vector<const Transfer *> out, in;
    size_t outAt = 0, inAt = 0;
    int64_t outDone = 0, inDone = 0;
  };
  std::vector<Stream> streams(static_cast<size_t>(world_));
  for (const Transfer &t : sends)
    if (t.bytes > 0)
      streams[t.peer].out.push_back(&t);
  for (const Transfer &t : receives)
    if (t.bytes > 0)
      streams[t.peer].in.push_back(&t);
  auto pending = [&](int64_t p, bool out) {
    const Stream &s = streams[p];
    return out ? s.outAt < s.out.size() : s.inAt < s.in.size();
  };
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<int64_t> peerOf;
    for (int64_t p = 0; p < world_; ++p) {
      short events = (pending(p, true) ? POLLOUT : 0) | (pending(p, false) ? POLLIN : 0);
      if (events) {
        fds.push_back({peers_[p], events, 0});
        peerOf.push_back(p);
      }
    }
    if (fds.empty())
      return MOE_OK;
    int left = static_cast<int>((deadline - now()) * 1000);
    if (left <= 0) {
      std::set<int64_t> peers;
      for (int64_t p = 0; p < world_; ++p)
        if (pending(p, false))
          peers.insert(p);
      if (peers.empty())
        for (int64_t p = 0; p < world_; ++p)
          if (pending(p, true))
            peers.insert(p);
      missing.assign(peers.begin(), peers.end());
      return MOE_UNAVAILABLE;
    }
    int ready = ::poll(fds.data(), fds.size(), std::min(left, 1000));
    if (ready < 0 && errno != EINTR) {
      error = std::string("poll: ") + std::strerror(errno);
      return MOE_UNAVAILABLE;
    }
    for (size_t i = 0; i < fds.size() && ready > 0; ++i) {
      Stream &s = streams[peerOf[i]];
      const int64_t p = peerOf[i];
      if ((fds[i].revents & POLLIN) && pending(p, false)) {
        const Transfer &t = *s.in[s.inAt];
        ssize_t n = ::recv(fds[i].fd, static_cast<char *>(t.data) + s.inDone, static_cast<size_t>(t.bytes - s.inDone),
                           MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          error = "rank " + std::to_string(p) + " closed its connection (it ended or died)";
          return MOE_UNAVAILABLE;
        }
        if (n > 0 && (s.inDone += n) == t.bytes)
          ++s.inAt, s.inDone = 0;
      } else if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        if (!(fds[i].revents & POLLOUT) || !pending(p, true)) {
          error = "rank " + std::to_string(p) + " closed its connection (it ended or died)";
          return MOE_UNAVAILABLE;
        }
      }
      if ((fds[i].revents & POLLOUT) && pending(p, true)) {
        const Transfer &t = *s.out[s.outAt];
        ssize_t n = ::send(fds[i].fd, static_cast<const char *>(t.data) + s.outDone,
                           static_cast<size_t>(t.bytes - s.outDone), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          error = "rank " + std::to_string(p) + " closed its connection (it ended or died)";
          return MOE_UNAVAILABLE;
        }
        if (n > 0 && (s.outDone += n) == t.bytes)
          ++s.outAt, s.outDone = 0;
      }
    }
  }
}

} // namespace

moe_status_t openTcpCommunicator(const Launch &launch, std::unique_ptr<Communicator> &out) {
  auto comm = std::make_unique<TcpCommunicator>(launch.rank, launch.world);
  if (moe_status_t s = comm->connect(comm->timeoutSeconds()))
    return s;
  out = std::move(comm);
  return MOE_OK;
}

} // namespace moe::runtime
