//===- ExpertStats.cpp - moe-example-expert-stats ---------------*- C++ -*-===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#define DEBUG_TYPE "moe-example-expert-stats"

namespace moe_example {
#define GEN_PASS_DECL
#define GEN_PASS_DEF_MOEEXAMPLEEXPERTSTATS
#include "ExamplePasses.h.inc"
} // namespace moe_example

using namespace mlir;

namespace {
struct ExpertStatsPass : moe_example::impl::MoEExampleExpertStatsBase<ExpertStatsPass> {
  void runOnOperation() override {
    Builder b(&getContext());
    getOperation().walk([&](moe::ExpertFfnOp op) {
      moe::RoutedType routed = op.getRouted().getType();
      int64_t d = routed.getHidden(), f = op.getInnerDim();
      // One multiply-add per weight element, per assignment.
      int64_t flops = 2 * routed.getK() * d * f * op.getWeights().size();
      int64_t bytes = 0;
      for (Value w : op.getWeights()) {
        auto t = cast<RankedTensorType>(w.getType());
        bytes += t.getNumElements() * t.getElementTypeBitWidth() / 8;
      }
      op->setAttr("moe_example.flops_per_token", b.getI64IntegerAttr(flops));
      op->setAttr("moe_example.weight_bytes", b.getI64IntegerAttr(bytes));
    });
  }
};
} // namespace

namespace moe_example {
void registerExamplePasses() {
  registerPass([] { return std::make_unique<ExpertStatsPass>(); });
}
} // namespace moe_example
