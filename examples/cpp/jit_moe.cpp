// jit_moe.cpp - a Mixtral-style MoE layer built in C++ and JIT-compiled.
//
// The layer is a C++ function of the inputs' dtypes and shapes; the first
// call compiles it for the CPU (and caches the artifact on disk), later calls
// with the same dtypes and widths reuse it, whatever the token count.
//
//   build/bin/moe-jit-example
#include "moe/Jit/Jit.h"

#include <cstdio>

using namespace moe;

int main() {
  jit::Function layer("MixtralLike", [](builder::Graph &g, const std::vector<jit::InputSpec> &in) {
    const int64_t d = in[0].shape[1], f = 2 * d, experts = 8, k = 2;
    const char *dtype = in[0].dtype == MOE_BF16 ? "bf16" : "f32";
    builder::Tensor x = g.input("x", dtype, {"tokens", d});
    builder::Field router = g.dense("router", d, experts);
    builder::Field ffns = g.experts("experts", experts, builder::Ffn::swiglu(d, f));
    auto [w, e] = topk(softmax(router(x), 2), k);
    g.returns({combine(ffns(dispatch(x, e)), w / sum(w, 2))});
  });

  for (int64_t tokens : {4, 64, 64}) {
    runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {tokens, 128});
    for (int64_t i = 0; i < x.numElements(); ++i)
      reinterpret_cast<float *>(x.data.data())[i] = static_cast<float>((i * 37) % 101) / 101.0f - 0.5f;
    std::vector<runtime::Tensor> out;
    if (layer({x}, out) != MOE_OK) {
      std::fprintf(stderr, "error: %s\n", moe_last_error());
      return 1;
    }
    std::printf("tokens=%lld -> %s %s; compilations %d, disk hits %d, memory hits %d\n", static_cast<long long>(tokens),
                out[0].name.c_str(), runtime::shapeString(out[0].shape).c_str(), layer.stats().compilations,
                layer.stats().diskHits, layer.stats().memoryHits);
  }
  std::printf("--- the generated layer ---\n%s", layer.lastSource().c_str());
  return 0;
}
