// main.cpp - moec's C++ API from outside the tree: a Mixtral-style layer
// built with the graph builder, JIT-compiled for the CPU on the first call,
// and (given an argument) an artifact from `moec build` run by the runtime.
#include <moe/Jit/Jit.h>
#include <moe/runtime/layer.h>

#include <cstdio>

using namespace moe;

int main(int argc, char **argv) {
  jit::Options options;
  options.cacheDir = "-"; // compile every time: this program shows the compile path
  jit::Function layer(
      "OutOfTree",
      [](builder::Graph &g, const std::vector<jit::InputSpec> &in) {
        const int64_t d = in[0].shape[1];
        builder::Tensor x = g.input("x", "f32", {"tokens", d});
        builder::Field router = g.dense("router", d, 4);
        builder::Field experts = g.experts("experts", 4, builder::Ffn::swiglu(d, 2 * d));
        auto [w, e] = topk(softmax(router(x), 2), 2);
        g.returns({combine(experts(dispatch(x, e)), w / sum(w, 2))});
      },
      options);
  runtime::Tensor x = runtime::Tensor::zeros("x", MOE_F32, {5, 32});
  for (int64_t i = 0; i < x.numElements(); ++i)
    reinterpret_cast<float *>(x.data.data())[i] = static_cast<float>((i * 13) % 29) / 29.0f - 0.5f;
  std::vector<runtime::Tensor> out;
  if (layer({x}, out) != MOE_OK) {
    std::fprintf(stderr, "moe-app: error: %s\n", moe_last_error());
    return 1;
  }
  std::printf("jit: %s %s, %d compilation(s)\n", out[0].name.c_str(), runtime::shapeString(out[0].shape).c_str(),
              layer.stats().compilations);
  if (argc > 1) {
    std::unique_ptr<runtime::Layer> loaded;
    if (runtime::Layer::loadFile(argv[1], loaded) != MOE_OK ||
        loaded->bindParameters(loaded->randomParameters(0)) != MOE_OK) {
      std::fprintf(stderr, "moe-app: error: %s\n", moe_last_error());
      return 1;
    }
    std::printf("artifact: layer %s with %zu parameters\n", loaded->signature().layer.c_str(),
                loaded->signature().params.size());
  }
  return 0;
}
