// NcclTest.cpp - the NCCL communicator on this machine's GPU, in a world of
// one (NCCL cannot put two ranks on one GPU): every transfer, the one to
// itself included, goes through ncclSend / ncclRecv on device memory.
// Without a GPU or libnccl.so.2 each test reports SKIPPED with the reason.
#include "moe/runtime/comm.h"
#include "moe/runtime/cuda.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

using namespace moe::runtime;

namespace {

struct NcclWorldOfOne {
  std::unique_ptr<CudaDevice> gpu;
  std::unique_ptr<Communicator> comm;
  std::string skip;
  NcclWorldOfOne() {
    if (CudaDevice::open(0, gpu) != MOE_OK) {
      skip = std::string("no GPU: ") + moe_last_error();
      return;
    }
    Launch one;
    one.launcher = "test";
    if (openNcclCommunicator(one, comm) != MOE_OK)
      skip = std::string("no NCCL: ") + moe_last_error();
  }
};

} // namespace

TEST(Nccl, SendsToItselfThroughNccl) {
  NcclWorldOfOne w;
  if (!w.skip.empty())
    GTEST_SKIP() << w.skip;
  EXPECT_STREQ(w.comm->engine(), "nccl");
  const size_t n = 1 << 20;
  std::vector<uint32_t> host(n), back(n, 0);
  for (size_t i = 0; i < n; ++i)
    host[i] = static_cast<uint32_t>(i * 2654435761u);
  DeviceBuffer send, recv;
  ASSERT_EQ(w.gpu->allocate(n * 4, send), MOE_OK);
  ASSERT_EQ(w.gpu->allocate(n * 4, recv), MOE_OK);
  ASSERT_EQ(w.gpu->upload(send, host.data(), n * 4), MOE_OK);
  ASSERT_EQ(w.gpu->synchronize(), MOE_OK); // the upload ran on the device's stream, NCCL runs on its own
  ASSERT_EQ(w.comm->allToAllV({0}, reinterpret_cast<void *>(send.address()), {int64_t(n * 4)},
                              reinterpret_cast<void *>(recv.address()), {int64_t(n * 4)}, "test all_to_all"),
            MOE_OK)
      << moe_last_error();
  ASSERT_EQ(w.gpu->download(back.data(), recv, n * 4), MOE_OK);
  EXPECT_EQ(back, host);
  EXPECT_GT(w.comm->collectiveSeconds(), 0.0);
}

TEST(Nccl, GathersAndSendsZeroBytes) {
  NcclWorldOfOne w;
  if (!w.skip.empty())
    GTEST_SKIP() << w.skip;
  DeviceBuffer a, b;
  ASSERT_EQ(w.gpu->allocate(256, a), MOE_OK);
  ASSERT_EQ(w.gpu->allocate(256, b), MOE_OK);
  std::vector<uint8_t> host(256), back(256);
  for (int i = 0; i < 256; ++i)
    host[i] = static_cast<uint8_t>(255 - i);
  ASSERT_EQ(w.gpu->upload(a, host.data(), 256), MOE_OK);
  ASSERT_EQ(w.gpu->synchronize(), MOE_OK);
  ASSERT_EQ(w.comm->allGather({0}, reinterpret_cast<void *>(a.address()), reinterpret_cast<void *>(b.address()), 256,
                              "test all_gather"),
            MOE_OK)
      << moe_last_error();
  ASSERT_EQ(w.gpu->download(back.data(), b, 256), MOE_OK);
  EXPECT_EQ(back, host);
  // A rank with nothing to send still takes part (zero-byte messages).
  ASSERT_EQ(w.comm->allToAllV({0}, reinterpret_cast<void *>(a.address()), {0}, reinterpret_cast<void *>(b.address()),
                              {0}, "test empty all_to_all"),
            MOE_OK)
      << moe_last_error();
}

TEST(Nccl, StagesHostMemoryAndWaitsForTheDevicesStream) {
  NcclWorldOfOne w;
  if (!w.skip.empty())
    GTEST_SKIP() << w.skip;
  // Host values (row counts, the artifact hash) travel through device memory.
  std::vector<int64_t> mine{7, -3, 1ll << 40}, gathered(3, 0);
  ASSERT_EQ(w.comm->allGather({0}, mine.data(), gathered.data(), 24, "test host all_gather"), MOE_OK)
      << moe_last_error();
  EXPECT_EQ(gathered, mine);
  // A device buffer written on the device's stream and sent at once, with no
  // synchronisation by the caller: the exchange waits for the upload first.
  const size_t n = 1 << 22;
  std::vector<uint32_t> host(n), back(n, 0);
  for (size_t i = 0; i < n; ++i)
    host[i] = static_cast<uint32_t>(i * 40503u + 11);
  DeviceBuffer send;
  ASSERT_EQ(w.gpu->allocate(n * 4, send), MOE_OK);
  ASSERT_EQ(w.gpu->upload(send, host.data(), n * 4), MOE_OK);
  ASSERT_EQ(w.comm->allGather({0}, reinterpret_cast<void *>(send.address()), back.data(), int64_t(n * 4),
                              "test device-to-host all_gather"),
            MOE_OK)
      << moe_last_error();
  EXPECT_EQ(back, host);
}
