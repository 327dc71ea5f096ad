// JitTest.cpp - the C++ graph builder and the JIT: the builder yields the
// frontend's IR for the same layer, the JIT compiles once per signature (the
// compilation counter proves it), reuses its disk cache across processes'
// Function objects, and its results match the reference evaluator.
#include "moe/Jit/Jit.h"
#include "moe/Dialect/MoE/Reference/Evaluator.h"
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include "moe/Compiler/CudaToolkit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

using namespace moe;

namespace {

void defineMixtral(builder::Graph &g, int64_t d, int64_t f, const char *dtype) {
  builder::Tensor x = g.input("x", dtype, {"tokens", d});
  builder::Field router = g.dense("router", d, 8);
  builder::Field experts = g.experts("experts", 8, builder::Ffn::swiglu(d, f));
  auto [w, e] = topk(softmax(router(x), 2), 2);
  builder::Tensor normalised = w / sum(w, 2); // before dispatch, in the example's order
  g.returns({combine(experts(dispatch(x, e)), normalised)});
}

/// Elaborates .moe text and prints the layer's IR without attributes that
/// only describe it (name of the source, hyperparameters, docstring).
std::string elaborateToIR(const std::string &text, std::vector<std::pair<std::string, std::string>> set = {}) {
  llvm::SourceMgr sm;
  unsigned buffer = sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, "t.moe"), llvm::SMLoc());
  frontend::Diagnostics diags(sm);
  frontend::Program program = frontend::parseSource(diags, buffer);
  mlir::MLIRContext context;
  frontend::ElaborationOptions options;
  options.overrides = std::move(set);
  auto module = frontend::elaborate(program, diags, context, options);
  EXPECT_TRUE(module);
  if (!module)
    return "";
  for (auto fn : module->getOps<mlir::func::FuncOp>()) {
    fn->removeAttr("moe.hyperparameters");
    fn->removeAttr("moe.description");
    fn.setName("Layer");
  }
  std::string out;
  llvm::raw_string_ostream os(out);
  module->print(os);
  return out;
}

TEST(GraphBuilder, YieldsTheFrontendsIR) {
  builder::Graph g("Built", "bf16");
  defineMixtral(g, 64, 128, "bf16");
  std::ifstream file(std::string(MOE_SOURCE_DIR) + "/examples/mixtral.moe");
  std::stringstream example;
  example << file.rdbuf();
  std::string fromBuilder = elaborateToIR(g.source());
  std::string fromExample = elaborateToIR(example.str(), {{"d_model", "64"}, {"d_ff", "128"}});
  EXPECT_FALSE(fromBuilder.empty());
  EXPECT_EQ(fromBuilder, fromExample) << g.source();
}

TEST(Jit, CompilesOncePerSignatureAndCachesOnDisk) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-jit-test", dir));
  jit::Options options;
  options.cacheDir = dir.str().str();
  int definitions = 0;
  auto define = [&](builder::Graph &g, const std::vector<jit::InputSpec> &in) {
    ++definitions;
    defineMixtral(g, in[0].shape[1], 32, "f32");
  };
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal;
  auto input = [&](int64_t tokens, int64_t d) {
    runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {tokens, d});
    for (int64_t i = 0; i < x.numElements(); ++i)
      reinterpret_cast<float *>(x.data.data())[i] = normal(rng);
    return x;
  };
  std::vector<runtime::Tensor> out;
  jit::Function layer("JitMixtral", define, options);
  ASSERT_EQ(layer({input(5, 16)}, out), MOE_OK) << moe_last_error();
  EXPECT_EQ(layer.stats().compilations, 1);
  // Same dtypes and widths, another token count: no compilation.
  ASSERT_EQ(layer({input(9, 16)}, out), MOE_OK) << moe_last_error();
  EXPECT_EQ(layer.stats().compilations, 1);
  EXPECT_EQ(layer.stats().memoryHits, 1);
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{9, 16}));
  // A new width is a new specialisation.
  ASSERT_EQ(layer({input(3, 24)}, out), MOE_OK) << moe_last_error();
  EXPECT_EQ(layer.stats().compilations, 2);
  EXPECT_EQ(definitions, 2);
  // A fresh Function finds both on disk and compiles nothing.
  jit::Function again("JitMixtral", define, options);
  ASSERT_EQ(again({input(4, 16)}, out), MOE_OK) << moe_last_error();
  ASSERT_EQ(again({input(4, 24)}, out), MOE_OK) << moe_last_error();
  EXPECT_EQ(again.stats().compilations, 0);
  EXPECT_EQ(again.stats().diskHits, 2);
  llvm::sys::fs::remove_directories(dir);
}

TEST(Jit, MatchesTheReferenceEvaluator) {
  jit::Options options;
  options.cacheDir = "-";
  jit::Function layer(
      "JitRef",
      [](builder::Graph &g, const std::vector<jit::InputSpec> &in) { defineMixtral(g, in[0].shape[1], 24, "f32"); },
      options);
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {11, 16});
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < x.numElements(); ++i)
    reinterpret_cast<float *>(x.data.data())[i] = normal(rng);
  std::vector<runtime::Tensor> out;
  ASSERT_EQ(layer({x}, out), MOE_OK) << moe_last_error();

  // The same layer through the reference evaluator, with the same (seeded) weights.
  llvm::SourceMgr sm;
  unsigned buffer =
      sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(layer.lastSource(), "t.moe"), llvm::SMLoc());
  frontend::Diagnostics diags(sm);
  frontend::Program program = frontend::parseSource(diags, buffer);
  mlir::MLIRContext context;
  auto module = frontend::elaborate(program, diags, context, frontend::ElaborationOptions());
  ASSERT_TRUE(module);
  runtime::Artifact artifact;
  ASSERT_EQ(jit::compileSourceForCPU(layer.lastSource(), "t.moe", artifact), MOE_OK);
  std::unique_ptr<runtime::Layer> loaded;
  ASSERT_EQ(runtime::Layer::load(std::move(artifact), loaded), MOE_OK);
  std::vector<runtime::Tensor> params = loaded->randomParameters(0);
  std::vector<moe::reference::Tensor> args;
  auto toRef = [](const runtime::Tensor &t) {
    moe::reference::Tensor r{t.shape, {}};
    for (int64_t i = 0; i < t.numElements(); ++i)
      r.data.push_back(t.at(i));
    return r;
  };
  args.push_back(toRef(x));
  for (const runtime::Tensor &p : params)
    args.push_back(toRef(p));
  std::string error;
  auto want = moe::reference::evaluate(*module->getOps<mlir::func::FuncOp>().begin(), args, error);
  ASSERT_TRUE(mlir::succeeded(want)) << error;
  double maxDiff = 0, maxRef = 0;
  for (int64_t i = 0; i < out[0].numElements(); ++i) {
    maxDiff = std::max(maxDiff, std::fabs(out[0].at(i) - (*want)[0].data[i]));
    maxRef = std::max(maxRef, std::fabs((*want)[0].data[i]));
  }
  EXPECT_LE(maxDiff / maxRef, 1e-5);
}

TEST(Jit, CompilesForAGpuTarget) {
  // No GPU is needed to compile (the artifact holds host code and the PTX),
  // but the CUDA toolkit's libdevice is.
  if (moe::findLibdevice().empty())
    GTEST_SKIP() << "no CUDA toolkit (libdevice.10.bc): GPU targets cannot be compiled here";
  std::string source = std::string(R"(
layer Tiny{T = bf16}(d::Int = 64, f::Int = 128)
    router  = Dense(d => 4)
    experts = Experts(4, SwiGLU(d => f))
    function (x::Tensor{T}[tokens, d])
        w, e = topk(softmax(router(x); dims = 2), 2)
        return combine(experts(dispatch(x, e)), w ./ sum(w; dims = 2))
    end
end
)");
  runtime::Artifact artifact;
  ASSERT_EQ(jit::compileSource(source, "tiny.moe", "sm_90a", artifact), MOE_OK) << moe_last_error();
  EXPECT_EQ(artifact.signature.target, "cuda-sm_90a");
  ASSERT_NE(artifact.section("code.host.so"), nullptr);
  const std::vector<uint8_t> *ptx = artifact.section("code.ptx");
  ASSERT_NE(ptx, nullptr);
  std::string text(ptx->begin(), ptx->end());
  EXPECT_NE(text.find(".target sm_90a"), std::string::npos);
  // Hopper's warpgroup MMA: 256-column blocks for the experts, 128 for the 4-expert router.
  EXPECT_NE(text.find("wgmma.mma_async.sync.aligned.m64n256k16"), std::string::npos);
  EXPECT_NE(text.find("wgmma.mma_async.sync.aligned.m64n128k16"), std::string::npos);

  EXPECT_EQ(jit::compileSource(source, "tiny.moe", "sm_70", artifact), MOE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error()).find("unknown JIT target \"sm_70\""), std::string::npos);
}

} // namespace

namespace {

TEST(Jit, CacheKeyNamesTheCompilerBuildAndEveryCodeOption) {
  // The identity is read off the loaded compiler: this test binary (which
  // holds the JIT) has a GNU build ID, so the identity carries a hex hash.
  const std::string &identity = jit::compilerIdentity();
  EXPECT_EQ(identity.rfind("moec ", 0), 0u) << identity;
  EXPECT_NE(identity.find("program="), std::string::npos) << identity;
  EXPECT_EQ(identity.find("program=none"), std::string::npos) << identity;
  jit::Options cpu, gpu, seeded, cubin;
  gpu.target = "sm_90a";
  cubin.target = "sm_90a";
  cubin.cubin = true;
  seeded.seed = 7; // the seed picks random weights, not code: same entry
  std::string source = "layer L\n    function (x::Tensor{f32}[tokens, 4])\n        return x .* 2\n    end\nend\n";
  EXPECT_EQ(jit::diskCacheKey(cpu, source), jit::diskCacheKey(cpu, source));
  EXPECT_EQ(jit::diskCacheKey(cpu, source), jit::diskCacheKey(seeded, source));
  EXPECT_NE(jit::diskCacheKey(cpu, source), jit::diskCacheKey(gpu, source));
  EXPECT_NE(jit::diskCacheKey(gpu, source), jit::diskCacheKey(cubin, source));
  jit::Options spelt = gpu;
  spelt.target = "cuda-sm_90a"; // the artifact's spelling of the same target: the same entry
  EXPECT_EQ(jit::diskCacheKey(gpu, source), jit::diskCacheKey(spelt, source));
  EXPECT_NE(jit::diskCacheKey(cpu, source), jit::diskCacheKey(cpu, source + "\n"));
}

TEST(Jit, AChangedTargetMissesTheDiskCache) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-jit-key", dir));
  auto define = [](builder::Graph &g, const std::vector<jit::InputSpec> &in) {
    defineMixtral(g, in[0].shape[1], 32, "f32");
  };
  jit::Options options;
  options.cacheDir = dir.str().str();
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {3, 16});
  for (int64_t i = 0; i < x.numElements(); ++i)
    reinterpret_cast<float *>(x.data.data())[i] = std::sin(0.37 * i);
  std::vector<runtime::Tensor> out;
  jit::Function first("JitKey", define, options);
  ASSERT_EQ(first({x}, out), MOE_OK) << moe_last_error();
  // The entry on disk is named by the key: another target looks elsewhere.
  std::string cpuEntry = std::string(dir) + "/JitKey-" + jit::diskCacheKey(options, first.lastSource()) + ".moeb";
  EXPECT_TRUE(llvm::sys::fs::exists(cpuEntry)) << cpuEntry;
  jit::Options gpu = options;
  gpu.target = "sm_90a";
  std::string gpuEntry = std::string(dir) + "/JitKey-" + jit::diskCacheKey(gpu, first.lastSource()) + ".moeb";
  EXPECT_NE(cpuEntry, gpuEntry);
  EXPECT_FALSE(llvm::sys::fs::exists(gpuEntry));
  llvm::sys::fs::remove_directories(dir);
}

TEST(Jit, NoDiskCacheWhenTheEnvironmentSaysDash) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-jit-dash", dir));
  llvm::SmallString<128> cwd;
  ASSERT_FALSE(llvm::sys::fs::current_path(cwd));
  ASSERT_FALSE(llvm::sys::fs::set_current_path(dir));
  ::setenv("MOE_CACHE_DIR", "-", 1);
  jit::Function layer("JitDash", [](builder::Graph &g, const std::vector<jit::InputSpec> &in) {
    defineMixtral(g, in[0].shape[1], 32, "f32");
  });
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {2, 16});
  for (int64_t i = 0; i < x.numElements(); ++i)
    reinterpret_cast<float *>(x.data.data())[i] = std::cos(0.11 * i);
  std::vector<runtime::Tensor> out;
  EXPECT_EQ(layer({x}, out), MOE_OK) << moe_last_error();
  ::unsetenv("MOE_CACHE_DIR");
  EXPECT_EQ(layer.stats().compilations, 1);
  EXPECT_FALSE(llvm::sys::fs::exists(std::string(dir) + "/-")); // no directory named '-'
  ASSERT_FALSE(llvm::sys::fs::set_current_path(cwd));
  llvm::sys::fs::remove_directories(dir);
}

TEST(Jit, RefusesAMisspeltParameterName) {
  jit::Options options;
  options.cacheDir = "-";
  jit::Function layer(
      "JitNames",
      [](builder::Graph &g, const std::vector<jit::InputSpec> &in) { defineMixtral(g, in[0].shape[1], 32, "f32"); },
      options);
  layer.setParameters({runtime::Tensor::zeros("router.weght", MOE_F32, {16, 8})});
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {2, 16});
  std::vector<runtime::Tensor> out;
  EXPECT_EQ(layer({x}, out), MOE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error())
                .find("the weights hold \"router.weght\", which layer JitNames has no "
                      "parameter of (its parameters: router.weight, experts.w_gate"),
            std::string::npos)
      << moe_last_error();
}

} // namespace
