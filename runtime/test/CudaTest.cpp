// CudaTest.cpp - the CUDA backend on a real GPU: device, memory pool, PTX
// modules, launches, graph capture and replay, and its errors. Without a GPU
// (or driver) every test reports SKIPPED with the reason; ctest shows them as
// skipped (label "gpu"), never as passed.
#include "moe/runtime/cuda.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

using namespace moe::runtime;

namespace {

// y[i] = a * x[i] + y[i] for i < n, one thread per element.
const char *kSaxpyPtx = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry saxpy(.param .u64 p_x, .param .u64 p_y, .param .f32 p_a, .param .u32 p_n)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .f32 %f<5>;
  .reg .b64 %rd<8>;
  ld.param.u64 %rd1, [p_x];
  ld.param.u64 %rd2, [p_y];
  ld.param.f32 %f1, [p_a];
  ld.param.u32 %r1, [p_n];
  mov.u32 %r2, %ctaid.x;
  mov.u32 %r3, %ntid.x;
  mov.u32 %r4, %tid.x;
  mad.lo.s32 %r5, %r2, %r3, %r4;
  setp.ge.u32 %p1, %r5, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd3, %rd1;
  cvta.to.global.u64 %rd4, %rd2;
  mul.wide.u32 %rd5, %r5, 4;
  add.s64 %rd6, %rd3, %rd5;
  add.s64 %rd7, %rd4, %rd5;
  ld.global.f32 %f2, [%rd6];
  ld.global.f32 %f3, [%rd7];
  fma.rn.f32 %f4, %f1, %f2, %f3;
  st.global.f32 [%rd7], %f4;
DONE:
  ret;
}
)";

#define OPEN_OR_SKIP(gpu)                                                                                              \
  std::unique_ptr<CudaDevice> gpu;                                                                                     \
  if (moe_status_t s = CudaDevice::open(0, gpu)) {                                                                     \
    ASSERT_EQ(s, MOE_UNAVAILABLE) << moe_last_error();                                                                 \
    GTEST_SKIP() << "no GPU: " << moe_last_error();                                                                    \
  }

std::vector<float> randomFloats(size_t n, std::mt19937 &rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

TEST(Cuda, OpensTheDevice) {
  OPEN_OR_SKIP(gpu);
  EXPECT_FALSE(gpu->name().empty());
  EXPECT_GE(gpu->computeCapability(), 50);
  std::printf("GPU 0: %s, sm_%d\n", gpu->name().c_str(), gpu->computeCapability());
}

TEST(Cuda, SaxpyMatchesTheCpuBitForBit) {
  OPEN_OR_SKIP(gpu);
  CudaModule module;
  ASSERT_EQ(gpu->loadModule(kSaxpyPtx, module), MOE_OK) << moe_last_error();
  void *saxpy;
  ASSERT_EQ(module.function("saxpy", saxpy), MOE_OK) << moe_last_error();
  std::mt19937 rng(std::random_device{}());
  const uint32_t n = (1u << 20) + 3; // not a multiple of the block size
  std::vector<float> x = randomFloats(n, rng), y = randomFloats(n, rng);
  float a = 1.5f;
  DeviceBuffer dx, dy;
  ASSERT_EQ(gpu->allocate(n * 4, dx), MOE_OK);
  ASSERT_EQ(gpu->allocate(n * 4, dy), MOE_OK);
  ASSERT_EQ(gpu->upload(dx, x.data(), n * 4), MOE_OK);
  ASSERT_EQ(gpu->upload(dy, y.data(), n * 4), MOE_OK);
  uint64_t px = dx.address(), py = dy.address();
  ASSERT_EQ(gpu->launch(saxpy, {(n + 255) / 256, 1, 1}, {256, 1, 1}, {&px, &py, &a, const_cast<uint32_t *>(&n)}),
            MOE_OK)
      << moe_last_error();
  std::vector<float> got(n);
  ASSERT_EQ(gpu->download(got.data(), dy, n * 4), MOE_OK) << moe_last_error();
  for (uint32_t i = 0; i < n; ++i)
    ASSERT_EQ(got[i], std::fma(a, x[i], y[i])) << "element " << i;
}

TEST(Cuda, PoolReusesBuffers) {
  OPEN_OR_SKIP(gpu);
  {
    DeviceBuffer b;
    ASSERT_EQ(gpu->allocate(1000, b), MOE_OK);
    EXPECT_EQ(b.size(), 1000u);
  }
  DeviceBuffer again;
  ASSERT_EQ(gpu->allocate(900, again), MOE_OK); // same 1024-byte class
  EXPECT_EQ(gpu->allocations(), 1u);
  EXPECT_EQ(gpu->reuses(), 1u);
}

TEST(Cuda, TensorMapsAreMadeOnceAndCheckTheirTensor) {
  OPEN_OR_SKIP(gpu);
  if (gpu->computeCapability() < 90)
    GTEST_SKIP() << "TMA needs sm_90; this GPU is sm_" << gpu->computeCapability();
  DeviceBuffer weights;
  ASSERT_EQ(gpu->allocate(8 * 64 * 128 * 2, weights), MOE_OK);
  uint64_t first = 0, again = 0, other = 0;
  ASSERT_EQ(gpu->tensorMap(weights.address(), true, {128, 64, 8}, {64, 64}, first), MOE_OK) << moe_last_error();
  EXPECT_NE(first, 0u);
  ASSERT_EQ(gpu->tensorMap(weights.address(), true, {128, 64, 8}, {64, 64}, again), MOE_OK);
  EXPECT_EQ(again, first);
  ASSERT_EQ(gpu->tensorMap(weights.address(), false, {128, 64, 8}, {64, 64}, other), MOE_OK);
  EXPECT_NE(other, first);
  // TMA needs 16-byte aligned tensors.
  EXPECT_NE(gpu->tensorMap(weights.address() + 2, true, {128, 64, 8}, {64, 64}, other), MOE_OK);
  EXPECT_NE(std::string(moe_last_error()).find("TMA descriptor"), std::string::npos) << moe_last_error();
  ASSERT_EQ(gpu->synchronize(), MOE_OK) << moe_last_error();
}

TEST(Cuda, GraphReplaysTheCapturedLaunches) {
  OPEN_OR_SKIP(gpu);
  CudaModule module;
  ASSERT_EQ(gpu->loadModule(kSaxpyPtx, module), MOE_OK) << moe_last_error();
  void *saxpy;
  ASSERT_EQ(module.function("saxpy", saxpy), MOE_OK);
  std::mt19937 rng(std::random_device{}());
  const uint32_t n = 4096;
  std::vector<float> x = randomFloats(n, rng), y = randomFloats(n, rng);
  float a = 0.25f;
  DeviceBuffer dx, dy;
  ASSERT_EQ(gpu->allocate(n * 4, dx), MOE_OK);
  ASSERT_EQ(gpu->allocate(n * 4, dy), MOE_OK);
  ASSERT_EQ(gpu->upload(dx, x.data(), n * 4), MOE_OK);
  ASSERT_EQ(gpu->upload(dy, y.data(), n * 4), MOE_OK);
  ASSERT_EQ(gpu->synchronize(), MOE_OK);
  uint64_t px = dx.address(), py = dy.address();
  uint32_t count = n;
  CudaGraph graph;
  ASSERT_EQ(gpu->capture(
                [&] {
                  for (int i = 0; i < 3; ++i)
                    if (moe_status_t s = gpu->launch(saxpy, {n / 256, 1, 1}, {256, 1, 1}, {&px, &py, &a, &count}))
                      return s;
                  return MOE_OK;
                },
                graph),
            MOE_OK)
      << moe_last_error();
  // Capturing runs nothing; each replay runs the three launches.
  ASSERT_EQ(gpu->replay(graph), MOE_OK) << moe_last_error();
  ASSERT_EQ(gpu->replay(graph), MOE_OK) << moe_last_error();
  std::vector<float> got(n);
  ASSERT_EQ(gpu->download(got.data(), dy, n * 4), MOE_OK);
  for (uint32_t i = 0; i < n; ++i) {
    float want = y[i];
    for (int r = 0; r < 6; ++r)
      want = std::fma(a, x[i], want);
    ASSERT_EQ(got[i], want) << "element " << i;
  }
}

TEST(Cuda, KernelProfileTimesPlainLaunchesOnly) {
  // MOE_KERNEL_PROFILE=1: the device times each launch made outside a graph
  // capture and prints the table when it closes.
  setenv("MOE_KERNEL_PROFILE", "1", 1);
  std::unique_ptr<CudaDevice> gpu;
  moe_status_t opened = CudaDevice::open(0, gpu);
  unsetenv("MOE_KERNEL_PROFILE");
  if (opened) {
    ASSERT_EQ(opened, MOE_UNAVAILABLE) << moe_last_error();
    GTEST_SKIP() << "no GPU: " << moe_last_error();
  }
  {
    CudaModule module;
    ASSERT_EQ(gpu->loadModule(kSaxpyPtx, module), MOE_OK) << moe_last_error();
    void *saxpy;
    ASSERT_EQ(module.function("saxpy", saxpy), MOE_OK);
    const uint32_t n = 1 << 20;
    DeviceBuffer dx, dy;
    ASSERT_EQ(gpu->allocate(n * 4, dx), MOE_OK);
    ASSERT_EQ(gpu->allocate(n * 4, dy), MOE_OK);
    uint64_t px = dx.address(), py = dy.address();
    float a = 0.5f;
    uint32_t count = n;
    for (int i = 0; i < 2; ++i)
      ASSERT_EQ(gpu->launch(saxpy, {n / 256, 1, 1}, {256, 1, 1}, {&px, &py, &a, &count}), MOE_OK);
    CudaGraph graph; // captured launches run later, untimed
    ASSERT_EQ(
        gpu->capture([&] { return gpu->launch(saxpy, {n / 256, 1, 1}, {256, 1, 1}, {&px, &py, &a, &count}); }, graph),
        MOE_OK)
        << moe_last_error();
    ASSERT_EQ(gpu->replay(graph), MOE_OK);
  } // the module, buffers and graph go before the device
  testing::internal::CaptureStderr();
  gpu.reset();
  std::string table = testing::internal::GetCapturedStderr();
  EXPECT_NE(table.find("kernel profile: 2 launches"), std::string::npos) << table;
  EXPECT_NE(table.find("saxpy"), std::string::npos) << table;
}

TEST(Cuda, RejectsBadCodeAndUnknownKernels) {
  OPEN_OR_SKIP(gpu);
  CudaModule module;
  EXPECT_EQ(gpu->loadModule(".version 8.0\n.target sm_80\nthis is not ptx", module), MOE_INVALID_FORMAT);
  EXPECT_NE(std::string(moe_last_error()).find("the GPU code does not load"), std::string::npos) << moe_last_error();
  ASSERT_EQ(gpu->loadModule(kSaxpyPtx, module), MOE_OK);
  void *fn;
  EXPECT_EQ(module.function("nope", fn), MOE_NOT_FOUND);
  DeviceBuffer b;
  ASSERT_EQ(gpu->allocate(16, b), MOE_OK);
  float big[8] = {};
  EXPECT_EQ(gpu->upload(b, big, sizeof big * 4), MOE_INVALID_ARGUMENT);
}

} // namespace
