// GradientTest.cpp - the reference evaluator's reverse mode against central
// finite differences of its exact (float64, unrounded) forward, on fresh
// random inputs: every op's rule on small layers, then every example; and
// the backward moe-differentiate builds, run by the evaluator, against it.
// L = sum_i <c_i, y_i> with random cotangents c_i; each sampled element of
// each floating-point argument is nudged by +-h. A nudge that changes a
// routing choice (an index output) is at a tie and is skipped, since the
// gradient is the forward's selection's.
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Reference/Evaluator.h"
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/SourceMgr.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

using namespace mlir;
using moe::reference::Tensor;

namespace {

bool isIndexTensor(Type t) { return isa<IntegerType>(cast<ShapedType>(t).getElementType()); }

/// Checks reference::gradient of `fn` at `args` against finite differences.
/// `sampled` elements of each floating-point argument are checked (all when
/// the argument is smaller).
void checkAgainstFiniteDifferences(func::FuncOp fn, std::vector<Tensor> args, std::mt19937 &rng, int sampled = 12) {
  std::normal_distribution<double> normal;
  std::string error;
  auto out = moe::reference::evaluateExact(fn, args, error);
  ASSERT_TRUE(succeeded(out)) << error;
  auto resultTypes = fn.getFunctionType().getResults();
  std::vector<Tensor> cotangents;
  for (auto [t, type] : llvm::zip(*out, resultTypes)) {
    Tensor c{t.shape, std::vector<double>(t.data.size(), 0.0)};
    if (!isIndexTensor(type))
      for (double &v : c.data)
        v = normal(rng);
    cotangents.push_back(c);
  }
  auto loss = [&](const std::vector<Tensor> &at, std::vector<Tensor> &results) {
    auto r = moe::reference::evaluateExact(fn, at, error);
    EXPECT_TRUE(succeeded(r)) << error;
    results = *r;
    double l = 0;
    for (size_t i = 0; i < results.size(); ++i)
      for (size_t j = 0; j < results[i].data.size(); ++j)
        l += cotangents[i].data[j] * results[i].data[j];
    return l;
  };
  std::vector<Tensor> forward;
  auto grads = moe::reference::gradient(fn, args, cotangents, &forward, error);
  ASSERT_TRUE(succeeded(grads)) << error;
  ASSERT_EQ(grads->size(), args.size());
  int checked = 0, ties = 0;
  for (size_t a = 0; a < args.size(); ++a) {
    if (isIndexTensor(fn.getArgumentTypes()[a]))
      continue;
    int64_t n = args[a].numElements();
    std::vector<int64_t> picks(n);
    std::iota(picks.begin(), picks.end(), 0);
    std::shuffle(picks.begin(), picks.end(), rng);
    picks.resize(std::min<int64_t>(n, sampled));
    for (int64_t i : picks) {
      double x = args[a].data[i], h = 1e-6 * std::max(1.0, std::fabs(x));
      std::vector<Tensor> plus = args, minus = args, rp, rm;
      plus[a].data[i] = x + h;
      minus[a].data[i] = x - h;
      double lp = loss(plus, rp), lm = loss(minus, rm);
      bool sameRouting = true;
      for (size_t r = 0; r < forward.size(); ++r)
        if (isIndexTensor(resultTypes[r]) && (rp[r].data != forward[r].data || rm[r].data != forward[r].data))
          sameRouting = false;
      // A routing index inside the layer is not an output: a jump in L
      // (far larger than any slope) says a nudge crossed a tie.
      double fd = (lp - lm) / (2 * h), g = (*grads)[a].data[i];
      if (!sameRouting || std::fabs(fd) > 1e6) {
        ++ties;
        continue;
      }
      double tol = 1e-6 * (std::fabs(fd) + std::fabs(g)) + 1e-7;
      EXPECT_NEAR(g, fd, tol) << "d L / d arg" << a << "[" << i << "] of " << fn.getName().str();
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no element was checked";
  EXPECT_LE(ties, checked / 4 + 1) << "too many nudges crossed a routing tie";
}

/// Random tensors for `fn`'s arguments with `tokens` rows where dynamic;
/// index arguments get experts in [0, experts).
std::vector<Tensor> randomArgs(func::FuncOp fn, int64_t tokens, std::mt19937 &rng, int64_t experts = 0) {
  std::normal_distribution<double> normal;
  std::vector<Tensor> args;
  for (Type t : fn.getArgumentTypes()) {
    auto type = cast<RankedTensorType>(t);
    Tensor x;
    for (int64_t d : type.getShape())
      x.shape.push_back(ShapedType::isDynamic(d) ? tokens : d);
    x.data.resize(x.numElements());
    for (double &v : x.data)
      v = isIndexTensor(type) ? static_cast<double>(rng() % experts) : normal(rng) * 0.7;
    args.push_back(x);
  }
  return args;
}

class Gradient : public ::testing::Test {
protected:
  Gradient() { context.loadDialect<moe::MoEDialect, func::FuncDialect, arith::ArithDialect, tensor::TensorDialect>(); }

  func::FuncOp parse(const std::string &ir) {
    module = parseSourceString<ModuleOp>(ir, &context);
    EXPECT_TRUE(module);
    return *module->getOps<func::FuncOp>().begin();
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::mt19937 rng{20261202};
};

TEST_F(Gradient, UnaryFunctions) {
  // Inputs kept positive for log and sqrt, through exp.
  for (const char *fn : {"neg", "exp", "tanh", "abs", "sigmoid", "silu", "gelu", "relu"}) {
    func::FuncOp f = parse(std::string("func.func @f(%x: tensor<?x5xf32>) -> tensor<?x5xf32> {\n  %y = moe.unary ") +
                           fn + " %x : tensor<?x5xf32>\n  return %y : tensor<?x5xf32>\n}");
    checkAgainstFiniteDifferences(f, randomArgs(f, 3, rng), rng);
  }
  for (const char *fn : {"log", "sqrt"}) {
    func::FuncOp f = parse(std::string("func.func @f(%x: tensor<?x5xf32>) -> tensor<?x5xf32> {\n"
                                       "  %p = moe.unary exp %x : tensor<?x5xf32>\n  %y = moe.unary ") +
                           fn + " %p : tensor<?x5xf32>\n  return %y : tensor<?x5xf32>\n}");
    checkAgainstFiniteDifferences(f, randomArgs(f, 3, rng), rng);
  }
}

TEST_F(Gradient, BroadcastingBinaryFunctions) {
  for (const char *fn : {"add", "sub", "mul", "div", "max", "min"}) {
    func::FuncOp f = parse(std::string("func.func @f(%x: tensor<?x4xf32>, %b: tensor<1x4xf32>) -> tensor<?x4xf32> {\n"
                                       "  %y = moe.binary ") +
                           fn +
                           " %x, %b : tensor<?x4xf32>, tensor<1x4xf32> -> tensor<?x4xf32>\n"
                           "  return %y : tensor<?x4xf32>\n}");
    checkAgainstFiniteDifferences(f, randomArgs(f, 3, rng), rng);
  }
  func::FuncOp pow = parse("func.func @f(%x: tensor<?x4xf32>, %b: tensor<1x4xf32>) -> tensor<?x4xf32> {\n"
                           "  %p = moe.unary exp %x : tensor<?x4xf32>\n"
                           "  %y = moe.binary pow %p, %b : tensor<?x4xf32>, tensor<1x4xf32> -> tensor<?x4xf32>\n"
                           "  return %y : tensor<?x4xf32>\n}");
  checkAgainstFiniteDifferences(pow, randomArgs(pow, 3, rng), rng);
}

TEST_F(Gradient, ReductionsAndSoftmax) {
  for (const char *fn : {"sum", "mean", "max"})
    for (int dim : {0, 1}) {
      std::string out = dim == 0 ? "tensor<1x4xf32>" : "tensor<3x1xf32>";
      func::FuncOp f =
          parse(std::string("func.func @f(%x: tensor<3x4xf32>) -> ") + out + " {\n  %y = moe.reduce " + fn +
                " %x dim = " + std::to_string(dim) + " : tensor<3x4xf32> -> " + out + "\n  return %y : " + out + "\n}");
      checkAgainstFiniteDifferences(f, randomArgs(f, 3, rng), rng);
    }
  for (const char *log : {"", " log"}) {
    func::FuncOp f = parse(std::string("func.func @f(%x: tensor<?x6xf32>) -> tensor<?x6xf32> {\n"
                                       "  %y = moe.softmax %x dim = 1") +
                           log + " : tensor<?x6xf32> -> tensor<?x6xf32>\n  return %y : tensor<?x6xf32>\n}");
    checkAgainstFiniteDifferences(f, randomArgs(f, 4, rng), rng);
  }
}

TEST_F(Gradient, DenseWithBiasAndRMSNorm) {
  func::FuncOp f = parse(R"(
    func.func @f(%x: tensor<?x6xf32>, %g: tensor<6xf32>, %w: tensor<6x5xf32>, %b: tensor<5xf32>) -> tensor<?x5xf32> {
      %n = moe.rmsnorm %x, %g eps = 1.0e-6 : tensor<?x6xf32>, tensor<6xf32> -> tensor<?x6xf32>
      %y = moe.dense %n, %w bias %b : tensor<?x6xf32>, tensor<6x5xf32>, tensor<5xf32> -> tensor<?x5xf32>
      return %y : tensor<?x5xf32>
    })");
  checkAgainstFiniteDifferences(f, randomArgs(f, 4, rng), rng, 30);
}

TEST_F(Gradient, TopKThroughEveryScoreFunction) {
  for (const char *score : {"score = softmax renormalize", "score = sigmoid scale = 2.5", "score = softmax",
                            "scale = 3.0", "score = sigmoid renormalize scale = 1.5"}) {
    func::FuncOp f = parse(std::string("func.func @f(%x: tensor<?x8xf32>) -> (tensor<?x3xf32>, tensor<?x3xi32>) {\n"
                                       "  %v, %e = moe.topk %x k = 3 ") +
                           score +
                           " : tensor<?x8xf32> -> tensor<?x3xf32>, tensor<?x3xi32>\n"
                           "  return %v, %e : tensor<?x3xf32>, tensor<?x3xi32>\n}");
    checkAgainstFiniteDifferences(f, randomArgs(f, 5, rng), rng, 40);
  }
}

TEST_F(Gradient, GroupLimitedRoutingAndGather) {
  // DeepSeek-V3's shape: selection on biased scores, weights gathered from the unbiased ones.
  func::FuncOp f = parse(R"(
    func.func @f(%l: tensor<?x8xf32>, %bias: tensor<1x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
      %s = moe.unary sigmoid %l : tensor<?x8xf32>
      %b = moe.binary add %s, %bias : tensor<?x8xf32>, tensor<1x8xf32> -> tensor<?x8xf32>
      %e = moe.group_topk %b k = 2 groups = 4 top_groups = 2 : tensor<?x8xf32> -> tensor<?x2xi32>
      %w = moe.gather %s, %e : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x2xf32>
      return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
    })");
  std::vector<Tensor> args = randomArgs(f, 6, rng);
  checkAgainstFiniteDifferences(f, args, rng, 40);
  // The selection's bias gets no gradient: it only chooses.
  std::string error;
  auto out = moe::reference::evaluateExact(f, args, error);
  std::vector<Tensor> cot{Tensor{(*out)[0].shape, std::vector<double>((*out)[0].data.size(), 1.0)},
                          Tensor{(*out)[1].shape, std::vector<double>((*out)[1].data.size(), 0.0)}};
  auto grads = moe::reference::gradient(f, args, cot, nullptr, error);
  ASSERT_TRUE(succeeded(grads)) << error;
  for (double g : (*grads)[1].data)
    EXPECT_EQ(g, 0.0);
}

TEST_F(Gradient, ExpertsOfEveryKindWithAndWithoutCapacity) {
  struct Kind {
    const char *ffn;
    int weights;
  };
  for (Kind kind :
       {Kind{"swiglu", 3}, Kind{"geglu", 3}, Kind{"mlp(relu)", 2}, Kind{"mlp(gelu)", 2}, Kind{"mlp(silu)", 2}})
    for (const char *capacity : {"", ", capacity = 0.75"}) {
      std::string routed = std::string("!moe.routed<tensor<?x6xf32>, experts = 4, k = 2") + capacity + ">";
      std::string up = "tensor<4x6x5xf32>", down = "tensor<4x5x6xf32>";
      std::string weightArgs =
          kind.weights == 3 ? "%a: " + up + ", %b: " + up + ", %c: " + down : "%a: " + up + ", %c: " + down;
      std::string weightUses = kind.weights == 3 ? "%a, %b, %c" : "%a, %c";
      std::string weightTypes = kind.weights == 3 ? up + ", " + up + ", " + down : up + ", " + down;
      func::FuncOp f =
          parse("func.func @f(%x: tensor<?x6xf32>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>, " + weightArgs +
                ") -> tensor<?x6xf32> {\n  %r = moe.dispatch %x, %e : tensor<?x6xf32>, " + "tensor<?x2xi32> -> " +
                routed + "\n  %y = moe.expert_ffn " + kind.ffn + " %r, " + weightUses + " : " + routed + ", " +
                weightTypes + "\n  %o = moe.combine %y, %w : " + routed +
                ", tensor<?x2xf32> -> tensor<?x6xf32>\n  return %o : tensor<?x6xf32>\n}");
      std::vector<Tensor> args = randomArgs(f, 7, rng, 4);
      // Distinct experts per token (top-k never repeats one).
      for (int64_t t = 0; t < 7; ++t)
        if (args[1].data[2 * t] == args[1].data[2 * t + 1])
          args[1].data[2 * t + 1] = std::fmod(args[1].data[2 * t] + 1, 4);
      checkAgainstFiniteDifferences(f, args, rng, 25);
    }
}

TEST_F(Gradient, DroppedAssignmentsGetZero) {
  // Every token on expert 0 with room for one: only token 0's slot is kept.
  func::FuncOp f = parse(R"(
    func.func @f(%x: tensor<?x2xf32>, %e: tensor<?x1xi32>, %w: tensor<?x1xf32>) -> tensor<?x2xf32> {
      %r = moe.dispatch %x, %e : tensor<?x2xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x2xf32>, experts = 4, k = 1, capacity = 1.0>
      %o = moe.combine %r, %w : !moe.routed<tensor<?x2xf32>, experts = 4, k = 1, capacity = 1.0>, tensor<?x1xf32> -> tensor<?x2xf32>
      return %o : tensor<?x2xf32>
    })");
  std::vector<Tensor> args{Tensor{{4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}}, Tensor{{4, 1}, {0, 0, 0, 0}},
                           Tensor{{4, 1}, {0.5, 0.25, 2, 3}}};
  std::vector<Tensor> cot{Tensor{{4, 2}, std::vector<double>(8, 1.0)}};
  std::string error;
  auto grads = moe::reference::gradient(f, args, cot, nullptr, error);
  ASSERT_TRUE(succeeded(grads)) << error;
  EXPECT_EQ((*grads)[0].data, (std::vector<double>{0.5, 0.5, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ((*grads)[2].data, (std::vector<double>{3, 0, 0, 0}));
}

TEST_F(Gradient, AuxiliaryLosses) {
  func::FuncOp f = parse(R"(
    func.func @f(%l: tensor<?x4xf32>, %e: tensor<?x1xi32>) -> (tensor<f32>, tensor<f32>) {
      %p = moe.softmax %l dim = 1 : tensor<?x4xf32> -> tensor<?x4xf32>
      %lb = moe.load_balance_loss %p, %e : tensor<?x4xf32>, tensor<?x1xi32> -> tensor<f32>
      %z = moe.z_loss %l : tensor<?x4xf32> -> tensor<f32>
      return %lb, %z : tensor<f32>, tensor<f32>
    })");
  checkAgainstFiniteDifferences(f, randomArgs(f, 9, rng, 4), rng, 36);
}

/// An example layer as IR, at small sizes.
OwningOpRef<ModuleOp> elaborateExample(MLIRContext &context, const std::string &name,
                                       std::vector<std::pair<std::string, std::string>> set) {
  std::ifstream file(std::string(MOE_SOURCE_DIR) + "/examples/" + name + ".moe");
  std::stringstream text;
  text << file.rdbuf();
  llvm::SourceMgr sm;
  unsigned buffer = sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text.str(), name), llvm::SMLoc());
  moe::frontend::Diagnostics diags(sm);
  moe::frontend::Program program = moe::frontend::parseSource(diags, buffer);
  moe::frontend::ElaborationOptions options;
  options.overrides = std::move(set);
  return moe::frontend::elaborate(program, diags, context, options);
}

TEST_F(Gradient, EveryExample) {
  const std::vector<std::pair<std::string, std::string>> small{{"d_model", "8"}, {"d_ff", "6"}, {"T", "f32"}};
  for (const char *name : {"mixtral", "deepseek_v3", "qwen3_30b_a3b", "switch"}) {
    OwningOpRef<ModuleOp> example = elaborateExample(context, name, small);
    ASSERT_TRUE(example) << name;
    func::FuncOp f = *example->getOps<func::FuncOp>().begin();
    for (int64_t tokens : {1, 7}) {
      SCOPED_TRACE(std::string(name) + " at " + std::to_string(tokens) + " tokens");
      checkAgainstFiniteDifferences(f, randomArgs(f, tokens, rng), rng, 10);
    }
  }
}

/// moe-differentiate's @<layer>_backward, run by the evaluator on the
/// arguments and cotangents, must give reference::gradient's gradients.
/// With `keepUpProducts`, the backward takes the residuals @<layer>_train
/// returned on the same arguments.
void checkDifferentiatePass(ModuleOp module, func::FuncOp layer, std::vector<Tensor> args, std::mt19937 &rng,
                            bool keepUpProducts = false, bool keepTensors = false) {
  std::string name = layer.getName().str();
  const bool hasExperts = !layer.getBody().front().getOps<moe::ExpertFfnOp>().empty();
  PassManager pm(module.getContext());
  moe::MoEDifferentiateOptions options;
  options.keepUpProducts = keepUpProducts;
  options.keepTensors = keepTensors;
  pm.addPass(moe::createMoEDifferentiate(options));
  ASSERT_TRUE(succeeded(pm.run(module))) << "moe-differentiate failed on @" << name;
  auto backward = module.lookupSymbol<func::FuncOp>(name + "_backward");
  ASSERT_TRUE(backward);
  layer = module.lookupSymbol<func::FuncOp>(name);
  auto train = module.lookupSymbol<func::FuncOp>(name + "_train");
  if (!keepTensors)
    ASSERT_EQ(static_cast<bool>(train), keepUpProducts && hasExperts) << "@" << name << "_train";
  else
    ASSERT_TRUE(train) << "@" << name << "_train";
  std::string error;
  auto out = moe::reference::evaluateExact(train ? train : layer, args, error);
  ASSERT_TRUE(succeeded(out)) << error;
  std::normal_distribution<double> normal;
  std::vector<Tensor> cotangents, backwardArgs = args;
  for (auto [t, type] : llvm::zip(*out, layer.getFunctionType().getResults())) {
    Tensor c{t.shape, std::vector<double>(t.data.size(), 0.0)};
    if (!isIndexTensor(type))
      for (double &v : c.data)
        v = normal(rng);
    cotangents.push_back(c);
    backwardArgs.push_back(c);
  }
  // The residuals, after the forward's results.
  for (size_t r = layer.getNumResults(); r < out->size(); ++r)
    backwardArgs.push_back((*out)[r]);
  auto want = moe::reference::gradient(layer, args, cotangents, nullptr, error);
  ASSERT_TRUE(succeeded(want)) << error;
  auto got = moe::reference::evaluateExact(backward, backwardArgs, error);
  ASSERT_TRUE(succeeded(got)) << error;
  size_t result = 0;
  for (size_t a = 0; a < args.size(); ++a) {
    if (isIndexTensor(layer.getArgumentTypes()[a]))
      continue;
    ASSERT_LT(result, got->size());
    const Tensor &g = (*got)[result++], &w = (*want)[a];
    ASSERT_EQ(g.data.size(), w.data.size());
    for (size_t i = 0; i < g.data.size(); ++i)
      EXPECT_NEAR(g.data[i], w.data[i], 1e-12 * (1 + std::fabs(w.data[i])))
          << "@" << name << " arg" << a << "[" << i << "]";
  }
  // Then a balance bias's expert load: whole counts, tokens x k in all.
  for (unsigned r = result; r < backward.getNumResults(); ++r) {
    ASSERT_TRUE(backward.getResultAttr(r, moe::MoEDialect::getLoadAttrName())) << "result #" << r;
    ASSERT_LT(r, got->size());
    double sum = 0, tokens = static_cast<double>(args[0].shape[0]);
    for (double v : (*got)[r].data) {
      EXPECT_EQ(v, std::floor(v));
      EXPECT_GE(v, 0);
      sum += v;
    }
    EXPECT_GT(sum, 0);
    EXPECT_EQ(std::fmod(sum, tokens), 0) << "@" << name << " load sum " << sum << " over " << tokens << " tokens";
    ++result;
  }
  EXPECT_EQ(result, got->size());
  // The backward reads the residuals: doubled, they change its gradients.
  if (train) {
    std::vector<Tensor> doubled = backwardArgs;
    for (size_t r = args.size() + layer.getNumResults(); r < doubled.size(); ++r)
      if (!isIndexTensor(backward.getArgumentTypes()[r])) // the routing's indices stay valid
        for (double &v : doubled[r].data)
          v *= 2;
    auto changed = moe::reference::evaluateExact(backward, doubled, error);
    ASSERT_TRUE(succeeded(changed)) << error;
    double difference = 0;
    for (size_t r = 0; r < got->size(); ++r)
      for (size_t i = 0; i < (*got)[r].data.size(); ++i)
        difference = std::max(difference, std::fabs((*got)[r].data[i] - (*changed)[r].data[i]));
    EXPECT_GT(difference, 1e-6) << "@" << name << "_backward ignores its residuals";
  }
}

TEST_F(Gradient, DifferentiatePassOnEveryOp) {
  const char *layers[] = {
      R"(func.func @f(%x: tensor<?x6xf32>, %g: tensor<6xf32>, %w: tensor<6x5xf32>, %b: tensor<5xf32>) -> tensor<?x5xf32> {
           %n = moe.rmsnorm %x, %g eps = 1.0e-6 : tensor<?x6xf32>, tensor<6xf32> -> tensor<?x6xf32>
           %y = moe.dense %n, %w bias %b : tensor<?x6xf32>, tensor<6x5xf32>, tensor<5xf32> -> tensor<?x5xf32>
           %s = moe.unary gelu %y : tensor<?x5xf32>
           %m = moe.reduce max %s dim = 1 : tensor<?x5xf32> -> tensor<?x1xf32>
           %d = moe.binary div %s, %m : tensor<?x5xf32>, tensor<?x1xf32> -> tensor<?x5xf32>
           %p = moe.softmax %d dim = 1 log : tensor<?x5xf32> -> tensor<?x5xf32>
           %q = moe.binary mul %p, %y : tensor<?x5xf32>, tensor<?x5xf32> -> tensor<?x5xf32>
           return %q : tensor<?x5xf32>
         })",
      R"(func.func @f(%l: tensor<?x8xf32>, %bias: tensor<1x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
           %s = moe.unary sigmoid %l : tensor<?x8xf32>
           %b = moe.binary add %s, %bias : tensor<?x8xf32>, tensor<1x8xf32> -> tensor<?x8xf32>
           %e = moe.group_topk %b k = 2 groups = 4 top_groups = 2 : tensor<?x8xf32> -> tensor<?x2xi32>
           %w = moe.gather %s, %e : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<?x2xf32>
           return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
         })",
      R"(func.func @f(%l: tensor<?x4xf32>, %e: tensor<?x1xi32>) -> (tensor<f32>, tensor<f32>) {
           %p = moe.softmax %l dim = 1 : tensor<?x4xf32> -> tensor<?x4xf32>
           %lb = moe.load_balance_loss %p, %e : tensor<?x4xf32>, tensor<?x1xi32> -> tensor<f32>
           %z = moe.z_loss %l : tensor<?x4xf32> -> tensor<f32>
           return %lb, %z : tensor<f32>, tensor<f32>
         })",
      R"(func.func @f(%x: tensor<?x6xf32>, %r: tensor<6x4xf32>, %a: tensor<4x6x5xf32>, %c: tensor<4x5x6xf32>) -> tensor<?x6xf32> {
           %l = moe.dense %x, %r : tensor<?x6xf32>, tensor<6x4xf32> -> tensor<?x4xf32>
           %v, %e = moe.topk %l k = 2 score = softmax renormalize : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
           %d = moe.dispatch %x, %e : tensor<?x6xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x6xf32>, experts = 4, k = 2, capacity = 0.75>
           %y = moe.expert_ffn mlp(silu) %d, %a, %c : !moe.routed<tensor<?x6xf32>, experts = 4, k = 2, capacity = 0.75>, tensor<4x6x5xf32>, tensor<4x5x6xf32>
           %o = moe.combine %y, %v : !moe.routed<tensor<?x6xf32>, experts = 4, k = 2, capacity = 0.75>, tensor<?x2xf32> -> tensor<?x6xf32>
           %s = moe.binary add %o, %x : tensor<?x6xf32>, tensor<?x6xf32> -> tensor<?x6xf32>
           return %s : tensor<?x6xf32>
         })"};
  for (const char *ir : layers) {
    func::FuncOp f = parse(ir);
    checkDifferentiatePass(*module, f, randomArgs(f, 7, rng, 4), rng);
  }
}

TEST_F(Gradient, DifferentiatePassKeepingUpProducts) {
  const std::vector<std::pair<std::string, std::string>> small{{"d_model", "8"}, {"d_ff", "6"}, {"T", "f32"}};
  for (const char *name : {"mixtral", "deepseek_v3", "switch"}) {
    OwningOpRef<ModuleOp> example = elaborateExample(context, name, small);
    ASSERT_TRUE(example) << name;
    func::FuncOp f = *example->getOps<func::FuncOp>().begin();
    checkDifferentiatePass(*example, f, randomArgs(f, 9, rng), rng, /*keepUpProducts=*/true);
  }
}

TEST_F(Gradient, DifferentiatePassKeepingTheForwardsTensors) {
  // The CPU's choice (the routing and the router's logits kept, the up
  // products recomputed) and the GPU's (both), on every example.
  const std::vector<std::pair<std::string, std::string>> small{{"d_model", "8"}, {"d_ff", "6"}, {"T", "f32"}};
  for (bool up : {false, true})
    for (const char *name : {"mixtral", "deepseek_v3", "qwen3_30b_a3b", "switch"}) {
      OwningOpRef<ModuleOp> example = elaborateExample(context, name, small);
      ASSERT_TRUE(example) << name;
      func::FuncOp f = *example->getOps<func::FuncOp>().begin();
      checkDifferentiatePass(*example, f, randomArgs(f, 9, rng), rng, up, /*keepTensors=*/true);
      // The routing is not recomputed: no top-k is left in the backward.
      auto backward = example->lookupSymbol<func::FuncOp>(f.getName().str() + "_backward");
      ASSERT_TRUE(backward);
      EXPECT_TRUE(backward.getBody().front().getOps<moe::TopKOp>().empty()) << name;
      EXPECT_TRUE(backward.getBody().front().getOps<moe::GroupTopKOp>().empty()) << name;
    }
}

TEST_F(Gradient, DifferentiatePassOnEveryExample) {
  const std::vector<std::pair<std::string, std::string>> small{{"d_model", "8"}, {"d_ff", "6"}, {"T", "f32"}};
  for (const char *name : {"mixtral", "deepseek_v3", "qwen3_30b_a3b", "switch"}) {
    OwningOpRef<ModuleOp> example = elaborateExample(context, name, small);
    ASSERT_TRUE(example) << name;
    func::FuncOp f = *example->getOps<func::FuncOp>().begin();
    checkDifferentiatePass(*example, f, randomArgs(f, 9, rng), rng);
  }
}

} // namespace
