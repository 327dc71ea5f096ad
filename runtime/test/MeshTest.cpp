// MeshTest.cpp - the placement rules (mesh.h) both the compiler and the
// runtime follow, the row-range reader of safetensors files, and the
// collectives on the world of one.
#include "moe/runtime/mesh.h"
#include "moe/runtime/artifact.h"
#include "moe/runtime/comm.h"
#include "moe/runtime/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>
#include <set>
#include <unistd.h>

using namespace moe::runtime;

TEST(Mesh, ParsesAndRefuses) {
  std::string error;
  std::optional<Mesh> m = parseMesh("ep=4,rep=2", error);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->rep, 2);
  EXPECT_EQ(m->dp, 1);
  EXPECT_EQ(m->ep, 4);
  EXPECT_EQ(m->world(), 8);
  EXPECT_EQ(m->toString(), "rep=2,ep=4");
  EXPECT_TRUE(parseMesh("", error)->isSingleDevice());
  EXPECT_TRUE(parseMesh("1", error)->isSingleDevice());
  EXPECT_FALSE(parseMesh("tp=2", error));
  EXPECT_EQ(error, "mesh 'tp=2': expected axes rep=R,dp=D,ep=E, got 'tp=2'");
  EXPECT_FALSE(parseMesh("ep=0", error));
  EXPECT_EQ(error, "mesh 'ep=0': axis ep needs a size from 1 to 1048576, got '0'");
  EXPECT_FALSE(parseMesh("ep=2,ep=2", error));
  EXPECT_EQ(error, "mesh 'ep=2,ep=2': axis ep given twice");
  EXPECT_FALSE(parseMesh("dp=", error));
  EXPECT_FALSE(parseMesh("dp=2x", error));
}

TEST(Mesh, CoordinatesPutExpertParallelInnermost) {
  Mesh m{2, 3, 4};
  for (int64_t w = 0; w < m.world(); ++w) {
    MeshCoords c = m.coords(w);
    EXPECT_EQ(m.rankOf(c), w);
    EXPECT_EQ(c.ep, w % 4);
  }
  // rank 13 = (rep 1, dp 0, ep 1): its ep group is 12..15, its dp group
  // {13, 17, 21}, its replica group {1, 13}.
  EXPECT_EQ(m.group(13, kAxisEp), (std::vector<int64_t>{12, 13, 14, 15}));
  EXPECT_EQ(m.group(13, kAxisDp), (std::vector<int64_t>{13, 17, 21}));
  EXPECT_EQ(m.group(13, kAxisRep), (std::vector<int64_t>{1, 13}));
  EXPECT_EQ(m.group(13, kAxisDp | kAxisEp).size(), 12u);
  EXPECT_EQ(m.group(13, kAllAxes).size(), 24u);
  EXPECT_EQ(m.groupSize(kAxisDp | kAxisEp), 12);
}

TEST(Mesh, TokenSlicesCoverTheBatchInRankOrder) {
  for (int64_t world : {1, 2, 3, 4, 7})
    for (int64_t tokens : {0, 1, 5, 37, 300}) {
      int64_t next = 0;
      for (int64_t r = 0; r < world; ++r) {
        RowSlice s = tokenSlice(tokens, world, r);
        EXPECT_EQ(s.begin, next);
        EXPECT_EQ(s.count, tokens / world + (r < tokens % world ? 1 : 0));
        next += s.count;
      }
      EXPECT_EQ(next, tokens);
    }
}

TEST(Mesh, ExpertShardsSplitByExpert) {
  Mesh m{1, 1, 4};
  std::vector<int64_t> shape{8, 3, 5};
  for (int64_t r = 0; r < 4; ++r) {
    ParamShard s = paramShard(m, r, Placement::Experts, shape);
    EXPECT_EQ(s.localShape, (std::vector<int64_t>{2, 3, 5}));
    EXPECT_EQ(s.begin, r * 30);
    EXPECT_EQ(s.count, 30);
    EXPECT_EQ(s.fsdpAxes, 0);
  }
  // Replicated without FSDP: all of it on every rank.
  ParamShard router = paramShard(m, 3, Placement::Replicated, {16, 8});
  EXPECT_EQ(router.localShape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(router.begin, 0);
  EXPECT_EQ(router.count, 128);
}

TEST(Mesh, FsdpChunksCoverEveryElementOnce) {
  // 7 elements over dp=2 x ep=2 (4 ranks): chunks of 2, the last one padded.
  Mesh m{2, 2, 2};
  for (Placement p : {Placement::Replicated, Placement::Experts}) {
    std::vector<int64_t> shape = p == Placement::Experts ? std::vector<int64_t>{4, 7} : std::vector<int64_t>{7};
    // Per replica, every element is stored by exactly one rank of each copy.
    for (int64_t rep = 0; rep < 2; ++rep) {
      std::multiset<int64_t> seen;
      for (int64_t dp = 0; dp < 2; ++dp)
        for (int64_t ep = 0; ep < 2; ++ep) {
          ParamShard s = paramShard(m, m.rankOf({rep, dp, ep}), p, shape);
          EXPECT_EQ(s.localShape.size(), 1u);
          EXPECT_EQ(s.stored, s.localShape[0]);
          EXPECT_LE(s.count, s.stored);
          EXPECT_EQ(s.fsdpSize, p == Placement::Experts ? 2 : 4);
          for (int64_t i = 0; i < s.count; ++i)
            seen.insert(s.begin + i);
        }
      int64_t total = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
      EXPECT_EQ(seen.size(), static_cast<size_t>(total));
      for (int64_t i = 0; i < total; ++i)
        EXPECT_EQ(seen.count(i), 1u) << "element " << i;
    }
  }
}

TEST(Mesh, SignatureCarriesTheMeshAndPlacements) {
  Signature s;
  s.layer = "L";
  s.entry = "e";
  s.target = "cpu-x86_64";
  s.mesh = Mesh{1, 2, 2};
  TensorSpec x{"x", MOE_F32, {{0, "tokens"}, {4, ""}}};
  TensorSpec w{"experts.w", MOE_F32, {{4, ""}, {4, ""}, {4, ""}}};
  w.placement = Placement::Experts;
  s.inputs = {x};
  s.params = {w};
  s.outputs = {x};
  Signature back;
  ASSERT_EQ(signatureFromJson(signatureToJson(s), back), MOE_OK) << moe_last_error();
  EXPECT_EQ(back.mesh, s.mesh);
  EXPECT_EQ(back.params[0].placement, Placement::Experts);
  // A split the mesh cannot make is refused when the artifact is read.
  s.mesh = Mesh{1, 1, 3};
  EXPECT_EQ(signatureFromJson(signatureToJson(s), back), MOE_INVALID_FORMAT);
  EXPECT_NE(std::string(moe_last_error()).find("does not divide by ep = 3"), std::string::npos);
}

TEST(SafetensorsFile, ReadsRangesOfOneTensor) {
  char path[] = "/tmp/moe-mesh-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  Tensor a = Tensor::zeros("a", MOE_F32, {3, 4});
  Tensor b = Tensor::zeros("b", MOE_I32, {5});
  for (int i = 0; i < 12; ++i)
    reinterpret_cast<float *>(a.data.data())[i] = static_cast<float>(i) + 0.5f;
  for (int i = 0; i < 5; ++i)
    reinterpret_cast<int32_t *>(b.data.data())[i] = 100 + i;
  ASSERT_EQ(writeSafetensors(path, {a, b}), MOE_OK);
  SafetensorsFile file;
  ASSERT_EQ(file.open(path), MOE_OK) << moe_last_error();
  ASSERT_EQ(file.entries().size(), 2u);
  const TensorEntry *ea = file.find("a"), *eb = file.find("b");
  ASSERT_TRUE(ea && eb);
  float rows[4];
  ASSERT_EQ(file.readElements(*ea, 8, 4, rows), MOE_OK);
  EXPECT_EQ(rows[0], 8.5f);
  EXPECT_EQ(rows[3], 11.5f);
  int32_t tail[2];
  ASSERT_EQ(file.readElements(*eb, 3, 2, tail), MOE_OK);
  EXPECT_EQ(tail[1], 104);
  EXPECT_EQ(file.readElements(*eb, 4, 2, tail), MOE_INTERNAL); // past the tensor
  std::remove(path);
  // A missing file and a malformed header are refused with messages.
  SafetensorsFile missing;
  EXPECT_EQ(missing.open("/nonexistent/w.safetensors"), MOE_NOT_FOUND);
}

TEST(Communicator, TheWorldOfOneCopiesToItself) {
  std::unique_ptr<Communicator> comm = localCommunicator();
  EXPECT_EQ(comm->world(), 1);
  int64_t mine = 42, got = 0;
  ASSERT_EQ(comm->allGather({0}, &mine, &got, sizeof mine, "test"), MOE_OK);
  EXPECT_EQ(got, 42);
  char send[6] = "hello", recv[6] = {};
  ASSERT_EQ(comm->allToAllV({0}, send, {6}, recv, {6}, "test"), MOE_OK);
  EXPECT_STREQ(recv, "hello");
  // Sizes that disagree are an internal error, not a silent copy.
  EXPECT_EQ(comm->allToAllV({0}, send, {6}, recv, {5}, "test"), MOE_INTERNAL);
}
