// ReferenceTest.cpp - the float64 reference evaluator against hand-computed
// values on tiny layers: routing, dispatch/experts/combine, capacity drops,
// broadcasting, reductions, losses and storage rounding.
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Reference/Evaluator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;
using moe::reference::Tensor;

namespace {

class Reference : public ::testing::Test {
protected:
  Reference() { context.loadDialect<moe::MoEDialect, func::FuncDialect, arith::ArithDialect, tensor::TensorDialect>(); }

  std::vector<Tensor> run(const char *ir, std::vector<Tensor> args) {
    module = parseSourceString<ModuleOp>(ir, &context);
    EXPECT_TRUE(module);
    auto fn = *module->getOps<func::FuncOp>().begin();
    std::string error;
    auto results = moe::reference::evaluate(fn, args, error);
    EXPECT_TRUE(succeeded(results)) << error;
    return succeeded(results) ? *results : std::vector<Tensor>{};
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
};

void expectNear(const Tensor &t, std::vector<double> want, double tol = 1e-12) {
  ASSERT_EQ(t.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(t.data[i], want[i], tol) << "element " << i;
}

TEST_F(Reference, TopKWithSoftmaxAndRenormalisation) {
  auto r = run(R"(
    func.func @f(%x: tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
      %w, %e = moe.topk %x k = 2 score = softmax renormalize : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
      return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
    })",
               {Tensor{{1, 4}, {1, 2, 3, 0}}});
  // Experts 2 and 1; renormalised softmax weights e^3/(e^3+e^2), e^2/(e^3+e^2), rounded to f32.
  expectNear(r[0], {1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(1.0))}, 1e-7);
  expectNear(r[1], {2, 1});
}

TEST_F(Reference, TopKTiesGoToTheLowerIndex) {
  auto r = run(R"(
    func.func @f(%x: tensor<?x4xf32>) -> tensor<?x2xi32> {
      %w, %e = moe.topk %x k = 2 : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
      return %e : tensor<?x2xi32>
    })",
               {Tensor{{1, 4}, {5, 7, 5, 7}}});
  expectNear(r[0], {1, 3});
}

TEST_F(Reference, GroupLimitedRoutingKeepsTheBestGroup) {
  auto r = run(R"(
    func.func @f(%s: tensor<?x4xf32>) -> tensor<?x1xi32> {
      %e = moe.group_topk %s k = 1 groups = 2 top_groups = 1 : tensor<?x4xf32> -> tensor<?x1xi32>
      return %e : tensor<?x1xi32>
    })",
               {Tensor{{2, 4}, {0.1, 0.2, 0.9, 0.0, /* group 0 sums 0.5+0.4 > 0.6 */ 0.5, 0.4, 0.6, 0.0}}});
  expectNear(r[0], {2, 0});
}

TEST_F(Reference, DispatchExpertsCombine) {
  // Two tokens, two MLP(relu) experts, d = 2, f = 1, k = 1.
  auto r = run(R"(
    func.func @f(%x: tensor<?x2xf32>, %e: tensor<?x1xi32>, %w: tensor<?x1xf32>,
                 %win: tensor<2x2x1xf32>, %wout: tensor<2x1x2xf32>) -> tensor<?x2xf32> {
      %r = moe.dispatch %x, %e : tensor<?x2xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x2xf32>, experts = 2, k = 1>
      %y = moe.expert_ffn mlp(relu) %r, %win, %wout : !moe.routed<tensor<?x2xf32>, experts = 2, k = 1>, tensor<2x2x1xf32>, tensor<2x1x2xf32>
      %o = moe.combine %y, %w : !moe.routed<tensor<?x2xf32>, experts = 2, k = 1>, tensor<?x1xf32> -> tensor<?x2xf32>
      return %o : tensor<?x2xf32>
    })",
               {Tensor{{2, 2}, {1, 2, 3, 1}}, Tensor{{2, 1}, {0, 1}}, Tensor{{2, 1}, {0.5, 2}},
                Tensor{{2, 2, 1}, {1, 1, 1, 2}}, Tensor{{2, 1, 2}, {1, 2, 3, 0}}});
  // Token 0 -> expert 0: relu(1 + 2) = 3 -> [3, 6] * 0.5; token 1 -> expert 1: relu(3 + 2) = 5 -> [15, 0] * 2.
  expectNear(r[0], {1.5, 3, 30, 0});
}

TEST_F(Reference, CapacityDropsLaterAssignments) {
  // ceil(0.5 * 4 tokens * 1 / 2 experts) = 1 row per expert: tokens 1 and 3 (expert 0) are dropped.
  auto r = run(R"(
    func.func @f(%x: tensor<?x1xf32>, %e: tensor<?x1xi32>, %w: tensor<?x1xf32>) -> tensor<?x1xf32> {
      %r = moe.dispatch %x, %e : tensor<?x1xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x1xf32>, experts = 2, k = 1, capacity = 0.5>
      %o = moe.combine %r, %w : !moe.routed<tensor<?x1xf32>, experts = 2, k = 1, capacity = 0.5>, tensor<?x1xf32> -> tensor<?x1xf32>
      return %o : tensor<?x1xf32>
    })",
               {Tensor{{4, 1}, {1, 2, 3, 4}}, Tensor{{4, 1}, {0, 0, 1, 0}}, Tensor{{4, 1}, {1, 1, 1, 1}}});
  expectNear(r[0], {1, 0, 3, 0});
}

TEST_F(Reference, BroadcastReduceSoftmax) {
  auto r = run(R"(
    func.func @f(%x: tensor<2x3xf32>, %b: tensor<1x3xf32>) -> (tensor<2x3xf32>, tensor<2x1xf32>, tensor<2x3xf32>) {
      %s = moe.binary add %x, %b : tensor<2x3xf32>, tensor<1x3xf32> -> tensor<2x3xf32>
      %m = moe.reduce mean %s dim = 1 : tensor<2x3xf32> -> tensor<2x1xf32>
      %p = moe.softmax %x dim = 0 : tensor<2x3xf32> -> tensor<2x3xf32>
      return %s, %m, %p : tensor<2x3xf32>, tensor<2x1xf32>, tensor<2x3xf32>
    })",
               {Tensor{{2, 3}, {1, 2, 3, 4, 5, 6}}, Tensor{{1, 3}, {10, 20, 30}}});
  expectNear(r[0], {11, 22, 33, 14, 25, 36});
  expectNear(r[1], {22, 25});
  double lo = 1 / (1 + std::exp(3.0)), hi = 1 / (1 + std::exp(-3.0));
  expectNear(r[2], {lo, lo, lo, hi, hi, hi}, 1e-7);
}

TEST_F(Reference, LossesAndStorageRounding) {
  auto r = run(R"(
    func.func @f(%p: tensor<2x2xf32>, %e: tensor<2x1xi32>, %z: tensor<1x2xf32>, %v: tensor<2xf32>) -> (tensor<f32>, tensor<f32>, tensor<2xbf16>) {
      %l = moe.load_balance_loss %p, %e : tensor<2x2xf32>, tensor<2x1xi32> -> tensor<f32>
      %zl = moe.z_loss %z : tensor<1x2xf32> -> tensor<f32>
      %b = arith.truncf %v : tensor<2xf32> to tensor<2xbf16>
      return %l, %zl, %b : tensor<f32>, tensor<f32>, tensor<2xbf16>
    })",
               {Tensor{{2, 2}, {0.75, 0.25, 0.25, 0.75}}, Tensor{{2, 1}, {0, 0}}, Tensor{{1, 2}, {0, 0}},
                Tensor{{2}, {1.0009765625, 3.14159}}});
  // f = [1, 0], P = [0.5, 0.5]: 2 * (1 * 0.5) = 1.
  expectNear(r[0], {1.0}, 1e-7);
  expectNear(r[1], {std::log(2.0) * std::log(2.0)}, 1e-7);
  // bf16 keeps 8 significant bits: 1 + 2^-10 rounds to 1, pi to 3.140625.
  expectNear(r[2], {1.0, 3.140625});
}

} // namespace
