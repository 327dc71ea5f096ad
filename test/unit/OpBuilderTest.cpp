// OpBuilderTest.cpp - the C++ builders of the moe ops: inferred types, the
// verifiers they feed, and the routing canonicalisations on built IR.
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace moe;

namespace {

class OpBuilderTest : public ::testing::Test {
protected:
  OpBuilderTest() : builder(&context) {
    context.loadDialect<MoEDialect, func::FuncDialect, arith::ArithDialect>();
    loc = builder.getUnknownLoc();
    module = ModuleOp::create(loc);
  }

  /// Starts a function with the given argument types; the builder is left
  /// inside its body.
  func::FuncOp beginFunc(StringRef name, TypeRange args) {
    builder.setInsertionPointToEnd(module->getBody());
    auto func = func::FuncOp::create(builder, loc, name, builder.getFunctionType(args, {}));
    builder.setInsertionPointToStart(func.addEntryBlock());
    return func;
  }

  /// Verifies `op` and returns the diagnostics it produced, joined.
  std::string verifyMessages(Operation *op) {
    std::string messages;
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      messages += d.str();
      return success();
    });
    (void)mlir::verify(op);
    return messages;
  }

  RankedTensorType tensor(ArrayRef<int64_t> shape, Type elt) { return RankedTensorType::get(shape, elt); }

  MLIRContext context;
  OpBuilder builder;
  Location loc = UnknownLoc::get(&context);
  OwningOpRef<ModuleOp> module;
  const int64_t dyn = ShapedType::kDynamic;
};

TEST_F(OpBuilderTest, MixtralLayerBuildsAndVerifies) {
  Type bf16 = builder.getBF16Type(), f32 = builder.getF32Type();
  auto func = beginFunc("mixtral", {tensor({dyn, 64}, bf16), tensor({64, 8}, bf16), tensor({8, 64, 128}, bf16),
                                    tensor({8, 64, 128}, bf16), tensor({8, 128, 64}, bf16)});
  auto args = func.getArguments();
  Value logits = DenseOp::create(builder, loc, args[0], args[1], Value(), f32);
  auto topk = TopKOp::create(builder, loc, logits, 2, ScoreFn::softmax, true);
  Value routed = DispatchOp::create(builder, loc, args[0], topk.getIndices(), 8);
  Value y =
      ExpertFfnOp::create(builder, loc, FfnKind::swiglu, routed, ValueRange{args[2], args[3], args[4]}).getResult();
  Value out = CombineOp::create(builder, loc, y, topk.getValues());
  func::ReturnOp::create(builder, loc, out);
  func.setType(builder.getFunctionType(func.getArgumentTypes(), {out.getType()}));

  ASSERT_TRUE(succeeded(mlir::verify(*module))) << verifyMessages(*module);
  EXPECT_EQ(topk.getValues().getType(), tensor({dyn, 2}, f32));
  EXPECT_EQ(topk.getIndices().getType(), tensor({dyn, 2}, builder.getI32Type()));
  auto routedTy = cast<RoutedType>(routed.getType());
  EXPECT_EQ(routedTy.getExperts(), 8);
  EXPECT_EQ(routedTy.getK(), 2);
  EXPECT_TRUE(routedTy.isDropless());
  EXPECT_EQ(out.getType(), tensor({dyn, 64}, bf16));
}

TEST_F(OpBuilderTest, TopKWithTooLargeKIsRejected) {
  beginFunc("bad", {tensor({16, 4}, builder.getF32Type())});
  Value logits = builder.getBlock()->getArgument(0);
  auto topk = TopKOp::create(builder, loc, logits, 8);
  EXPECT_NE(verifyMessages(topk).find("expects k (8) to be at most the number of experts (4)"), std::string::npos);
}

TEST_F(OpBuilderTest, ExpertFfnChecksWeightCountAndShapes) {
  Type f32 = builder.getF32Type();
  beginFunc("ffn", {tensor({dyn, 16}, f32), tensor({dyn, 1}, builder.getI32Type()), tensor({4, 16, 32}, f32),
                    tensor({4, 32, 16}, f32)});
  Block *body = builder.getBlock();
  Value routed = DispatchOp::create(builder, loc, body->getArgument(0), body->getArgument(1), 4, 1.25);
  EXPECT_FALSE(cast<RoutedType>(routed.getType()).isDropless());

  auto mlp = ExpertFfnOp::create(builder, loc, FfnKind::mlp, routed,
                                 ValueRange{body->getArgument(2), body->getArgument(3)}, Activation::gelu);
  EXPECT_EQ(verifyMessages(mlp), "");

  auto glu = ExpertFfnOp::create(builder, loc, FfnKind::swiglu, routed,
                                 ValueRange{body->getArgument(2), body->getArgument(3)});
  EXPECT_NE(verifyMessages(glu).find("expects 3 weights for swiglu, got 2"), std::string::npos);
}

TEST_F(OpBuilderTest, BinaryInfersTheBroadcastShape) {
  Type f32 = builder.getF32Type();
  beginFunc("bcast", {tensor({dyn, 2}, f32), tensor({dyn, 1}, f32), tensor({}, f32)});
  Block *body = builder.getBlock();
  auto div = BinaryOp::create(builder, loc, BinaryFn::div, body->getArgument(0), body->getArgument(1));
  EXPECT_EQ(div.getType(), tensor({dyn, 2}, f32));
  auto scaled = BinaryOp::create(builder, loc, BinaryFn::mul, body->getArgument(2), div.getResult());
  EXPECT_EQ(scaled.getType(), tensor({dyn, 2}, f32));
  EXPECT_TRUE(failed(broadcastShapes({4, 2}, {4, 3})));
  EXPECT_TRUE(failed(broadcastShapes({4, 2}, {2})));
}

TEST_F(OpBuilderTest, CanonicalizeFoldsRenormalizationIntoTopK) {
  Type f32 = builder.getF32Type();
  auto func = beginFunc("route", {tensor({dyn, 8}, f32)});
  Value p = SoftmaxOp::create(builder, loc, tensor({dyn, 8}, f32), func.getArgument(0), 1, false);
  auto topk = TopKOp::create(builder, loc, p, 2);
  Value sum = ReduceOp::create(builder, loc, ReduceFn::sum, topk.getValues(), 1);
  Value w = BinaryOp::create(builder, loc, BinaryFn::div, topk.getValues(), sum);
  func::ReturnOp::create(builder, loc, ValueRange{w, topk.getIndices()});
  func.setType(builder.getFunctionType(func.getArgumentTypes(), {w.getType(), topk.getIndices().getType()}));
  ASSERT_TRUE(succeeded(mlir::verify(*module)));

  PassManager pm(&context);
  pm.addPass(createCanonicalizerPass());
  ASSERT_TRUE(succeeded(pm.run(*module)));

  int topks = 0, others = 0;
  func.walk([&](Operation *op) {
    if (auto t = dyn_cast<TopKOp>(op)) {
      ++topks;
      EXPECT_EQ(t.getScore(), ScoreFn::softmax);
      EXPECT_TRUE(t.getRenormalize());
      EXPECT_EQ(t.getLogits(), func.getArgument(0));
    } else if (isa<SoftmaxOp, ReduceOp, BinaryOp>(op)) {
      ++others;
    }
  });
  EXPECT_EQ(topks, 1);
  EXPECT_EQ(others, 0);
}

} // namespace
