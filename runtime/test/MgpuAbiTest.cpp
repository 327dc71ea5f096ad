// MgpuAbiTest.cpp - MLIR's GPU runtime ABI as the runtime implements it, for
// what needs no GPU: outside a layer call every entry point refuses quietly
// (null results, no crash), and a GPU artifact on a machine without a GPU is
// an error that says why.
#include "moe/runtime/gpu_entry_points.h"
#include "moe/runtime/layer.h"

#include <gtest/gtest.h>

extern "C" {
void *mgpuStreamCreate();
void *mgpuMemAlloc(uint64_t bytes, void *stream, bool hostShared);
void mgpuMemFree(void *ptr, void *stream);
void *mgpuModuleLoadJIT(void *ptx, int optLevel);
void *mgpuModuleGetFunction(void *module, const char *name);
void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY, intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream, void **params, void **extra, size_t paramsCount);
}

namespace {

TEST(MgpuAbi, OutsideALayerCallEveryEntryPointRefuses) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  EXPECT_EQ(mgpuMemAlloc(1024, nullptr, false), nullptr);
  mgpuMemFree(nullptr, nullptr);
  char ptx[] = ".version 8.0\n";
  EXPECT_EQ(mgpuModuleLoadJIT(ptx, 2), nullptr);
  EXPECT_EQ(mgpuModuleGetFunction(nullptr, "k"), nullptr);
  mgpuLaunchKernel(nullptr, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_EQ(moeCudaTensorMap(4096, 1, 256, 64, 8, 64, 64), 0u);
  EXPECT_EQ(moeCudaMultiprocessors(), 1);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mgpuMemAlloc called outside a layer call"), std::string::npos) << err;
  EXPECT_NE(err.find("moeCudaTensorMap called outside a layer call"), std::string::npos) << err;
  EXPECT_NE(err.find("moeCudaMultiprocessors called outside a layer call"), std::string::npos) << err;
}

TEST(MgpuAbi, AGpuArtifactNeedsAGpuOfItsArchitecture) {
  moe::runtime::Artifact artifact;
  artifact.signature.layer = "L";
  artifact.signature.target = "cuda-sm_90a";
  std::unique_ptr<moe::runtime::Layer> layer;
  moe_status_t s = moe::runtime::Layer::load(artifact, layer);
  ASSERT_NE(s, MOE_OK); // no GPU here, or a GPU and no host code in this artifact
  std::string message = moe_last_error();
  EXPECT_TRUE(message.find("CUDA") != std::string::npos || message.find("code.host.so") != std::string::npos ||
              message.find("sm_90a") != std::string::npos)
      << message;

  artifact.signature.target = "cuda-compute";
  EXPECT_NE(moe::runtime::Layer::load(artifact, layer), MOE_OK);
  EXPECT_NE(std::string(moe_last_error()).find("names no CUDA architecture"), std::string::npos) << moe_last_error();
}

} // namespace
