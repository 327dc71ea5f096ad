//===- GraphBuilder.h - build moe layers from C++ ---------------*- C++ -*-===//
//
// The C++ embedded DSL: a Graph records a layer as the frontend's own
// language, operation by operation, so a layer built here compiles through
// exactly the same parser, checks and Sema as a .moe file, and yields the same
// moe IR. Errors point at the generated line, which names the C++ call site.
//
//   moe::builder::Graph g("Tiny");
//   auto x = g.input("x", "f32", {"tokens", 64});
//   auto router = g.dense("router", 64, 8);
//   auto experts = g.experts("experts", 8, moe::builder::Ffn::swiglu(64, 128));
//   auto [w, e] = topk(softmax(router(x), 2), 2);
//   g.returns({combine(experts(dispatch(x, e)), w / sum(w, 2))});
//
// Operators are elementwise with Julia broadcasting (`a * b` is `a .* b`;
// use matmul for products); `dims` are 1-based, as in the language.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BUILDER_GRAPHBUILDER_H
#define MOE_BUILDER_GRAPHBUILDER_H

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moe::builder {

/// The C++ call site of an operation, recorded in the generated source.
struct Site {
  const char *file;
  int line;
  static Site current(const char *file = __builtin_FILE(), int line = __builtin_LINE()) { return {file, line}; }
};

/// A dimension: a size (`64`) or a symbol bound at call time (`"tokens"`).
struct Dim {
  Dim(int64_t size) : text(std::to_string(size)) {}
  Dim(int size) : text(std::to_string(size)) {}
  Dim(const char *symbol) : text(symbol) {}
  Dim(std::string symbol) : text(std::move(symbol)) {}
  std::string text;
};

class Graph;

/// A value of the layer being built (a tensor, an index tensor or a routed value).
class Tensor {
public:
  Tensor() = default;
  const std::string &var() const { return name; }
  Graph *graph() const { return owner; }

private:
  friend class Graph;
  Tensor(Graph *owner, std::string name) : owner(owner), name(std::move(name)) {}
  Graph *owner = nullptr;
  std::string name;
};

/// A layer field; calling it applies it (`router(x)`, `experts(routed)`).
class Field {
public:
  Tensor operator()(const Tensor &x, Site site = Site::current()) const;

private:
  friend class Graph;
  Field(Graph *owner, std::string name) : owner(owner), name(std::move(name)) {}
  Graph *owner;
  std::string name;
};

/// An expert (or shared) feed-forward network.
struct Ffn {
  static Ffn swiglu(int64_t d, int64_t f) { return {"SwiGLU(" + sz(d) + " => " + sz(f) + ")"}; }
  static Ffn geglu(int64_t d, int64_t f) { return {"GeGLU(" + sz(d) + " => " + sz(f) + ")"}; }
  /// act: "relu", "gelu" or "silu".
  static Ffn mlp(int64_t d, int64_t f, const std::string &act) {
    return {"MLP(" + sz(d) + " => " + sz(f) + ", " + act + ")"};
  }
  std::string constructor;

private:
  static std::string sz(int64_t v) { return std::to_string(v); }
};

class Graph {
public:
  /// `elementType` ("f32", "bf16", "f16") is the layer's type parameter T:
  /// the element type of fields built without an explicit one.
  explicit Graph(std::string layerName, std::string elementType = "f32", std::string description = "");

  /// A forward-method argument: `input("x", "bf16", {"tokens", 4096})`.
  Tensor input(const std::string &name, const std::string &dtype, std::vector<Dim> dims, Site site = Site::current());
  /// A parameter tensor; init is "normal", "zeros" or "ones".
  Tensor param(const std::string &name, const std::string &dtype, std::vector<int64_t> shape,
               const std::string &init = "normal", bool trainable = true, Site site = Site::current());
  Field dense(const std::string &name, int64_t in, int64_t out, bool bias = false, Site site = Site::current());
  Field experts(const std::string &name, int64_t n, const Ffn &ffn, Site site = Site::current());
  Field ffn(const std::string &name, const Ffn &ffn, Site site = Site::current());
  Field rmsnorm(const std::string &name, int64_t d, double eps = 1e-6, Site site = Site::current());

  /// Ends the forward method with these results.
  void returns(std::initializer_list<Tensor> results, Site site = Site::current());

  /// The layer in the .moe language.
  std::string source() const;
  const std::string &layerName() const { return name; }

  /// Appends `var = expression` and returns the new value (used by the builtins).
  Tensor emit(const std::string &expression, Site site);
  /// Appends `a, b = expression` for a builtin returning two values.
  std::pair<Tensor, Tensor> emitPair(const std::string &expression, Site site);

private:
  std::string name, elementType, description;
  std::vector<std::string> fields, arguments, body;
  int next = 0;
  bool finished = false;
};

// Elementwise operators with broadcasting (the language's dotted operators).
Tensor operator+(const Tensor &a, const Tensor &b);
Tensor operator-(const Tensor &a, const Tensor &b);
Tensor operator*(const Tensor &a, const Tensor &b);
Tensor operator/(const Tensor &a, const Tensor &b);
Tensor operator+(const Tensor &a, double b);
Tensor operator*(const Tensor &a, double b);
Tensor operator*(double a, const Tensor &b);
Tensor operator/(const Tensor &a, double b);
Tensor operator-(const Tensor &a);

// The spec's builtins (dims are 1-based).
Tensor matmul(const Tensor &a, const Tensor &b, Site site = Site::current());
Tensor softmax(const Tensor &x, int dims, Site site = Site::current());
Tensor logsoftmax(const Tensor &x, int dims, Site site = Site::current());
Tensor sum(const Tensor &x, int dims, Site site = Site::current());
Tensor mean(const Tensor &x, int dims, Site site = Site::current());
Tensor maximum(const Tensor &x, int dims, Site site = Site::current());
Tensor sigmoid(const Tensor &x, Site site = Site::current());
Tensor silu(const Tensor &x, Site site = Site::current());
Tensor gelu(const Tensor &x, Site site = Site::current());
Tensor relu(const Tensor &x, Site site = Site::current());
Tensor exp(const Tensor &x, Site site = Site::current());
Tensor log(const Tensor &x, Site site = Site::current());
Tensor sqrt(const Tensor &x, Site site = Site::current());
Tensor tanh(const Tensor &x, Site site = Site::current());
Tensor abs(const Tensor &x, Site site = Site::current());
Tensor max(const Tensor &a, const Tensor &b, Site site = Site::current());
Tensor min(const Tensor &a, const Tensor &b, Site site = Site::current());
/// (values, 1-based expert indices)
std::pair<Tensor, Tensor> topk(const Tensor &x, int64_t k, Site site = Site::current());
Tensor group_topk(const Tensor &s, int64_t k, int64_t groups, int64_t topGroups, Site site = Site::current());
Tensor gather(const Tensor &x, const Tensor &indices, Site site = Site::current());
/// capacity <= 0: dropless.
Tensor dispatch(const Tensor &x, const Tensor &indices, double capacity = 0, Site site = Site::current());
Tensor combine(const Tensor &routed, const Tensor &weights, Site site = Site::current());
Tensor load_balance_loss(const Tensor &probs, const Tensor &indices, Site site = Site::current());
Tensor z_loss(const Tensor &logits, Site site = Site::current());
Tensor rmsnorm(const Tensor &x, const Tensor &weight, double eps = 1e-6, Site site = Site::current());

} // namespace moe::builder

#endif // MOE_BUILDER_GRAPHBUILDER_H
