// jit_latency.cpp - the JIT's latencies, measured (a benchmark, not a test):
// a first call that compiles (CPU, and sm_90a when the CUDA toolkit is
// here), a first call served by the disk cache, and the overhead a call on an
// already specialised Function adds to the layer's own run (the in-memory
// cache hit). Medians over repeated runs.
//   build/bin/moe-jit-latency [REPEATS]      (default 7; the hit loop runs 200x that)
#include "moe/Compiler/CudaToolkit.h"
#include "moe/Jit/Jit.h"

#include "llvm/Support/FileSystem.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace moe;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void defineLayer(builder::Graph &g, const std::vector<jit::InputSpec> &in) {
  const int64_t d = in[0].shape[1];
  builder::Tensor x = g.input("x", "f32", {"tokens", d});
  builder::Field router = g.dense("router", d, 8);
  builder::Field ffns = g.experts("experts", 8, builder::Ffn::swiglu(d, 2 * d));
  auto [w, e] = topk(softmax(router(x), 2), 2);
  g.returns({combine(ffns(dispatch(x, e)), w / sum(w, 2))});
}

runtime::Tensor input(int64_t tokens) {
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {tokens, 64});
  for (int64_t i = 0; i < x.numElements(); ++i)
    reinterpret_cast<float *>(x.data.data())[i] = static_cast<float>((i * 37) % 101) / 101.0f - 0.5f;
  return x;
}

bool check(moe_status_t s) {
  if (s != MOE_OK)
    std::fprintf(stderr, "moe-jit-latency: error: %s\n", moe_last_error());
  return s == MOE_OK;
}

} // namespace

int main(int argc, char **argv) {
  int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;
  llvm::SmallString<128> dir;
  if (llvm::sys::fs::createUniqueDirectory("moe-jit-latency", dir))
    return 1;
  runtime::Tensor x = input(1);
  std::vector<runtime::Tensor> out;

  // First calls that compile (no disk cache), and first calls served by it.
  std::vector<double> cold, disk;
  for (int r = 0; r < repeats; ++r) {
    jit::Options none;
    none.cacheDir = "-";
    jit::Function f("Latency", defineLayer, none);
    auto t = Clock::now();
    if (!check(f({x}, out)))
      return 1;
    cold.push_back(msSince(t));
  }
  jit::Options cached;
  cached.cacheDir = dir.str().str();
  {
    jit::Function warm("Latency", defineLayer, cached);
    if (!check(warm({x}, out)))
      return 1;
  }
  for (int r = 0; r < repeats; ++r) {
    jit::Function f("Latency", defineLayer, cached);
    auto t = Clock::now();
    if (!check(f({x}, out)))
      return 1;
    disk.push_back(msSince(t));
  }

  // The in-memory hit: a call on a specialised Function against the same
  // layer's run() alone, both on 1 token.
  jit::Function hot("Latency", defineLayer, cached);
  if (!check(hot({x}, out)))
    return 1;
  runtime::Artifact artifact;
  std::unique_ptr<runtime::Layer> direct;
  if (!check(jit::compileSourceForCPU(hot.lastSource(), "latency.moe", artifact)) ||
      !check(runtime::Layer::load(std::move(artifact), direct)) ||
      !check(direct->bindParameters(direct->randomParameters(0))))
    return 1;
  std::vector<double> viaJit, alone;
  for (int i = 0; i < 200 * repeats; ++i) {
    auto t = Clock::now();
    (void)hot({x}, out);
    viaJit.push_back(msSince(t));
    t = Clock::now();
    (void)direct->run({x}, out);
    alone.push_back(msSince(t));
  }

  std::printf("JIT latency, medians (%d repeats; the hit loop %d calls)\n", repeats, 200 * repeats);
  std::printf("  first call, compiling for the CPU:      %8.2f ms\n", median(cold));
  if (!moe::findLibdevice().empty()) {
    // The median of up to 3 compiles of `source` for sm_90a; < 0 after an error.
    auto compileMs = [&](const std::string &source) {
      std::vector<double> times;
      for (int r = 0; r < std::min(repeats, 3); ++r) {
        runtime::Artifact a;
        auto t = Clock::now();
        if (!check(jit::compileSource(source, "latency.moe", "sm_90a", a)))
          return -1.0;
        times.push_back(msSince(t));
      }
      return median(times);
    };
    double small = compileMs(hot.lastSource());
    if (small < 0)
      return 1;
    std::printf("  compile for sm_90a (no GPU needed):     %8.2f ms\n", small);
    // The same at Mixtral's full size (4096 => 14336, 8 experts, bf16).
    builder::Graph mixtral("MixtralFull", "bf16");
    builder::Tensor mx = mixtral.input("x", "bf16", {"tokens", 4096});
    builder::Field router = mixtral.dense("router", 4096, 8);
    builder::Field ffns = mixtral.experts("experts", 8, builder::Ffn::swiglu(4096, 14336));
    auto [w, e] = topk(softmax(router(mx), 2), 2);
    mixtral.returns({combine(ffns(dispatch(mx, e)), w / sum(w, 2))});
    double full = compileMs(mixtral.source());
    if (full < 0)
      return 1;
    std::printf("  compile of full-size Mixtral for sm_90a: %7.2f ms\n", full);
  }
  std::printf("  first call, from the disk cache:        %8.2f ms\n", median(disk));
  std::printf("  call on a specialised Function:         %8.4f ms\n", median(viaJit));
  std::printf("  the layer's run() alone:                %8.4f ms\n", median(alone));
  std::printf("  in-memory hit overhead:                 %8.4f ms\n", median(viaJit) - median(alone));
  llvm::sys::fs::remove_directories(dir);
  return 0;
}
