// FormatsTest.cpp - the untrusted-input parsers of the runtime: JSON,
// safetensors and .moeb artifacts. Every malformed input is rejected with a
// message, and well-formed ones round-trip.
#include "moe/runtime/artifact.h"
#include "moe/runtime/json.h"
#include "moe/runtime/kernel_abi.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/target.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

using namespace moe::runtime;

namespace {

std::vector<uint8_t> safetensorsImage(const std::string &header, size_t dataBytes) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < dataBytes; ++i)
    out.push_back(static_cast<uint8_t>(i));
  return out;
}

std::string parseError(const std::vector<uint8_t> &image) {
  std::vector<Tensor> tensors;
  EXPECT_EQ(parseSafetensors(image.data(), image.size(), tensors), MOE_INVALID_FORMAT);
  return moe_last_error();
}

TEST(Json, ParsesAndRejects) {
  json::Value v;
  std::string error;
  ASSERT_TRUE(json::parse(R"({"a": [1, -2.5e3, true, null, "x\u00e9\n"], "b": {}})", v, error)) << error;
  EXPECT_EQ(v.find("a")->array[0].integer, 1);
  EXPECT_EQ(v.find("a")->array[1].number, -2500.0);
  EXPECT_EQ(v.find("a")->array[4].string, "x\xc3\xa9\n");
  for (const char *bad : {"{\"a\": 1, \"a\": 2}", "[1, 2", "{\"a\" 1}", "01", "\"\\q\"", "[1] x", "\"\\ud800\"",
                          "1e999", "{\"a\": \"\x01\"}"}) {
    EXPECT_FALSE(json::parse(bad, v, error)) << bad;
    EXPECT_NE(error.find("at byte"), std::string::npos) << error;
  }
  std::string deep(100, '[');
  EXPECT_FALSE(json::parse(deep, v, error));
  EXPECT_NE(error.find("nested deeper"), std::string::npos);
}

TEST(Safetensors, RoundTripsEveryDtype) {
  std::vector<Tensor> tensors;
  for (moe_dtype_t d : {MOE_F32, MOE_F16, MOE_BF16, MOE_I32}) {
    Tensor t = Tensor::zeros(std::string("t") + moe_dtype_name(d), d, {2, 3});
    for (size_t i = 0; i < t.data.size(); ++i)
      t.data[i] = static_cast<uint8_t>(i * 7 + d);
    tensors.push_back(t);
  }
  std::string path = ::testing::TempDir() + "roundtrip.safetensors";
  ASSERT_EQ(writeSafetensors(path, tensors), MOE_OK) << moe_last_error();
  std::vector<Tensor> back;
  ASSERT_EQ(readSafetensors(path, back), MOE_OK) << moe_last_error();
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].name, tensors[i].name);
    EXPECT_EQ(back[i].dtype, tensors[i].dtype);
    EXPECT_EQ(back[i].shape, tensors[i].shape);
    EXPECT_EQ(back[i].data, tensors[i].data);
  }
}

TEST(Safetensors, RejectsMalformedFiles) {
  EXPECT_NE(parseError({1, 2, 3}).find("shorter than the 8-byte header length"), std::string::npos);
  auto image = safetensorsImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  image.resize(image.size() - 20); // truncated into the header
  EXPECT_NE(parseError(image).find("exceeds the file"), std::string::npos);
  EXPECT_NE(parseError(safetensorsImage("{not json", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parseError(safetensorsImage(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8))
                .find("unsupported dtype \"F64\""),
            std::string::npos);
  EXPECT_NE(parseError(safetensorsImage(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))
                .find("needs 12 bytes, data_offsets span 8"),
            std::string::npos);
  EXPECT_NE(parseError(safetensorsImage(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8))
                .find("past the data region"),
            std::string::npos);
  EXPECT_NE(
      parseError(
          safetensorsImage(
              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
              8))
          .find("overlaps"),
      std::string::npos);
  EXPECT_NE(
      parseError(
          safetensorsImage(
              R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
              8))
          .find("duplicate key \"a\""),
      std::string::npos);
  EXPECT_NE(parseError(safetensorsImage(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)).find("a hole"),
            std::string::npos);
  EXPECT_NE(parseError(safetensorsImage(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4))
                .find("not a non-negative integer"),
            std::string::npos);
}

Artifact sampleArtifact() {
  Artifact a;
  a.signature.layer = "Tiny";
  a.signature.entry = "moe_entry_Tiny";
  a.signature.target = "cpu-x86_64";
  a.signature.inputs.push_back({"x", MOE_BF16, {Dim{0, "tokens"}, Dim{16, ""}}, "normal", true});
  a.signature.params.push_back({"router.weight", MOE_BF16, {Dim{16, ""}, Dim{4, ""}}, "zeros", false});
  a.signature.outputs.push_back({"output", MOE_BF16, {Dim{0, "tokens"}, Dim{16, ""}}, "normal", true});
  a.sections.emplace_back("code.cpu.so", std::vector<uint8_t>{0x7f, 'E', 'L', 'F', 1, 2, 3});
  return a;
}

TEST(Artifact, RoundTrips) {
  std::vector<uint8_t> bytes;
  ASSERT_EQ(serializeArtifact(sampleArtifact(), bytes), MOE_OK);
  Artifact back;
  ASSERT_EQ(parseArtifact(bytes.data(), bytes.size(), back), MOE_OK) << moe_last_error();
  EXPECT_EQ(back.signature.layer, "Tiny");
  ASSERT_EQ(back.signature.inputs.size(), 1u);
  EXPECT_EQ(back.signature.inputs[0].shape[0].symbol, "tokens");
  EXPECT_EQ(back.signature.params[0].init, "zeros");
  EXPECT_FALSE(back.signature.params[0].trainable);
  ASSERT_TRUE(back.section("code.cpu.so"));
  EXPECT_EQ(back.section("code.cpu.so")->size(), 7u);
}

TEST(Artifact, RoundTripsATrainForwardAndItsResiduals) {
  Artifact a = sampleArtifact();
  a.signature.backward.emplace();
  a.signature.backward->entry = "moe_entry_Tiny_backward";
  a.signature.backward->gradients.push_back({"grad.x", MOE_BF16, {Dim{0, "tokens"}, Dim{16, ""}}, "normal", true});
  a.signature.backward->trainEntry = "moe_entry_Tiny_train";
  a.signature.backward->residuals.push_back(
      {"residual.0", MOE_BF16, {Dim{0, "rows"}, Dim{2, ""}, Dim{64, ""}}, "normal", true});
  std::string json = signatureToJson(a.signature);
  Signature back;
  ASSERT_EQ(signatureFromJson(json, back), MOE_OK) << moe_last_error();
  ASSERT_TRUE(back.backward);
  EXPECT_EQ(back.backward->trainEntry, "moe_entry_Tiny_train");
  ASSERT_EQ(back.backward->residuals.size(), 1u);
  EXPECT_EQ(back.backward->residuals[0].name, "residual.0");
  EXPECT_EQ(back.backward->residuals[0].shape[0].symbol, "rows");
  EXPECT_EQ(back.backward->residuals[0].shape[2].size, 64);
  // A train forward whose residuals are missing is refused, not half-read.
  std::string bare = json;
  const std::string list = bare.substr(bare.find(",\"residuals\":"));
  bare.erase(bare.find(",\"residuals\":"), list.find("]}]") + 3);
  EXPECT_EQ(signatureFromJson(bare, back), MOE_INVALID_FORMAT) << bare;
  EXPECT_NE(std::string(moe_last_error()).find("residuals"), std::string::npos) << moe_last_error();
}

TEST(Artifact, RefusesAParameterWhoseBytesOverflow) {
  Artifact huge = sampleArtifact();
  huge.signature.params[0].shape = {Dim{64, ""}, Dim{4000000000, ""}, Dim{4000000000, ""}};
  std::vector<uint8_t> bytes;
  ASSERT_EQ(serializeArtifact(huge, bytes), MOE_OK);
  Artifact back;
  EXPECT_EQ(parseArtifact(bytes.data(), bytes.size(), back), MOE_INVALID_FORMAT);
  EXPECT_NE(std::string(moe_last_error())
                .find("parameter \"router.weight\" is too large: its size in bytes overflows 64 bits"),
            std::string::npos)
      << moe_last_error();
  // Large but representable is the runtime's memory check's business, not a bad file.
  huge.signature.params[0].shape = {Dim{64, ""}, Dim{100000, ""}, Dim{100000, ""}};
  ASSERT_EQ(serializeArtifact(huge, bytes), MOE_OK);
  EXPECT_EQ(parseArtifact(bytes.data(), bytes.size(), back), MOE_OK) << moe_last_error();
}

TEST(Artifact, RejectsTruncatedCorruptedAndForeignFiles) {
  std::vector<uint8_t> good;
  ASSERT_EQ(serializeArtifact(sampleArtifact(), good), MOE_OK);
  Artifact out;
  auto expectError = [&](std::vector<uint8_t> bytes, moe_status_t status, const char *text) {
    EXPECT_EQ(parseArtifact(bytes.data(), bytes.size(), out), status) << text;
    EXPECT_NE(std::string(moe_last_error()).find(text), std::string::npos) << moe_last_error();
  };
  expectError({'h', 'e', 'l', 'l', 'o'}, MOE_INVALID_FORMAT, "no MOEB magic");
  auto truncated = good;
  truncated.resize(good.size() - 3);
  expectError(truncated, MOE_INVALID_FORMAT, "truncated or padded");
  auto corrupted = good;
  corrupted[corrupted.size() - 2] ^= 0xff; // inside the code section
  expectError(corrupted, MOE_INVALID_FORMAT, "is corrupted (CRC32");
  auto version = good;
  version[8] = 9;
  expectError(version, MOE_VERSION_MISMATCH, "format version 9");
  // Every truncation and every single-byte corruption is rejected or parsed, never a crash.
  std::mt19937 rng(std::random_device{}());
  for (size_t n = 0; n < good.size(); n += 7) {
    (void)parseArtifact(good.data(), n, out);
    auto flipped = good;
    flipped[rng() % flipped.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    (void)parseArtifact(flipped.data(), flipped.size(), out);
  }
}

TEST(Artifact, RefusesCodeCompiledForOtherKernels) {
  // The signature records the kernel ABI it was compiled for; another (an
  // artifact of an older moec, whose kernels' arguments or meaning changed
  // since) is refused, naming both.
  std::string json = signatureToJson(sampleArtifact().signature);
  const std::string mine = "\"kernel_abi\":" + std::to_string(MOE_KERNEL_ABI_VERSION);
  ASSERT_NE(json.find(mine), std::string::npos) << json;
  Signature sig;
  ASSERT_EQ(signatureFromJson(json, sig), MOE_OK) << moe_last_error();
  std::string older = json;
  older.replace(older.find(mine), mine.size(), "\"kernel_abi\":1");
  EXPECT_EQ(signatureFromJson(older, sig), MOE_VERSION_MISMATCH);
  EXPECT_NE(
      std::string(moe_last_error())
          .find("compiled for kernel ABI 1; this runtime's kernels are ABI " + std::to_string(MOE_KERNEL_ABI_VERSION)),
      std::string::npos)
      << moe_last_error();
  std::string unmarked = json;
  unmarked.replace(unmarked.find(mine), mine.size() + 1, ""); // and its comma
  EXPECT_EQ(signatureFromJson(unmarked, sig), MOE_VERSION_MISMATCH) << "no kernel_abi: written before it existed";
}

} // namespace

TEST(Target, ParsesBothSpellingsAndRefusesTheRest) {
  std::optional<Target> cpu = parseTarget("cpu"), cpuArtifact = parseTarget("cpu-x86_64");
  ASSERT_TRUE(cpu && cpuArtifact);
  EXPECT_FALSE(cpu->isCuda());
  EXPECT_EQ(*cpu, *cpuArtifact);
  EXPECT_EQ(cpu->artifactName(), "cpu-x86_64");
  EXPECT_EQ(cpu->flagName(), "cpu");
  std::optional<Target> hopper = parseTarget("sm_90a"), spelt = parseTarget("cuda-sm_90a");
  ASSERT_TRUE(hopper && spelt);
  EXPECT_EQ(*hopper, *spelt);
  EXPECT_TRUE(hopper->isCuda());
  EXPECT_EQ(hopper->computeCapability, 90);
  EXPECT_TRUE(hopper->archSpecific);
  EXPECT_EQ(hopper->artifactName(), "cuda-sm_90a");
  std::optional<Target> ampere = parseTarget("sm_80");
  ASSERT_TRUE(ampere);
  EXPECT_EQ(ampere->computeCapability, 80);
  EXPECT_FALSE(ampere->archSpecific);
  for (const char *bad : {"", "gpu", "sm_70", "sm_", "sm_9x", "sm_90aa", "cuda-", "cuda-cpu", "sm_123456", "cpu-arm64"})
    EXPECT_FALSE(parseTarget(bad)) << bad;
}
