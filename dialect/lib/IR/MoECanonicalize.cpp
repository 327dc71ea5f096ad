//===- MoECanonicalize.cpp - routing canonicalisations ----------*- C++ -*-===//
//
// Folds what a model author writes around `topk` into the routing op, so the
// GPU lowering can do all of routing in one kernel:
//   topk(softmax(x; last dim))          -> topk x score = softmax
//   topk(sigmoid.(x))                   -> topk x score = sigmoid
//   v ./ sum(v; dims = last)  (v=topk)  -> topk ... renormalize
//   v .* c    (c a scalar constant)     -> topk ... scale = c
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace moe;

namespace {

/// A topk without a score function whose logits are a softmax over the expert
/// dimension (or a sigmoid) takes the softmax's (sigmoid's) input instead.
struct FoldScoreFnIntoTopK : OpRewritePattern<TopKOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TopKOp op, PatternRewriter &rewriter) const override {
    // Renormalisation and scale apply after the score and the selection, so
    // they may already be folded; a second score function may not.
    if (op.getScore())
      return failure();
    Value source;
    ScoreFn score;
    if (auto softmax = op.getLogits().getDefiningOp<SoftmaxOp>()) {
      if (softmax.getLog() || softmax.getDim() != 1)
        return failure();
      source = softmax.getInput();
      score = ScoreFn::softmax;
    } else if (auto unary = op.getLogits().getDefiningOp<UnaryOp>()) {
      if (unary.getFn() != UnaryFn::sigmoid)
        return failure();
      source = unary.getInput();
      score = ScoreFn::sigmoid;
    } else {
      return failure();
    }
    rewriter.modifyOpInPlace(op, [&] {
      op.getLogitsMutable().assign(source);
      op.setScore(score);
    });
    return success();
  }
};

/// Returns the topk whose `values` result is `v`, when its values may be
/// rewritten: nothing but `allowedUsers` reads them.
static TopKOp getRewritableTopK(Value v, ArrayRef<Operation *> allowedUsers) {
  auto topk = v.getDefiningOp<TopKOp>();
  if (!topk || v != topk.getValues())
    return nullptr;
  for (Operation *user : v.getUsers())
    if (!llvm::is_contained(allowedUsers, user))
      return nullptr;
  return topk;
}

/// `v ./ sum(v; dim = 1)` on topk values becomes `topk ... renormalize`.
struct FoldRenormalizeIntoTopK : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(BinaryOp div, PatternRewriter &rewriter) const override {
    if (div.getFn() != BinaryFn::div)
      return failure();
    auto sum = div.getRhs().getDefiningOp<ReduceOp>();
    if (!sum || sum.getFn() != ReduceFn::sum || sum.getDim() != 1 || sum.getInput() != div.getLhs() ||
        !sum->hasOneUse())
      return failure();
    TopKOp topk = getRewritableTopK(div.getLhs(), {sum, div});
    // A scale applied before the renormalisation would be undone by it.
    if (!topk || topk.getRenormalize() || topk.getScale() || div.getType() != topk.getValues().getType())
      return failure();
    rewriter.modifyOpInPlace(topk, [&] { topk.setRenormalize(true); });
    rewriter.replaceOp(div, topk.getValues());
    rewriter.eraseOp(sum);
    return success();
  }
};

/// `v .* c` (or `c .* v`) with a scalar constant `c > 0` on topk values becomes
/// `topk ... scale = c` (multiplied into any existing scale).
struct FoldScaleIntoTopK : OpRewritePattern<BinaryOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(BinaryOp mul, PatternRewriter &rewriter) const override {
    if (mul.getFn() != BinaryFn::mul)
      return failure();
    for (auto [values, factor] : {std::pair(mul.getLhs(), mul.getRhs()), std::pair(mul.getRhs(), mul.getLhs())}) {
      SplatElementsAttr splat;
      if (!matchPattern(factor, m_Constant(&splat)))
        continue;
      double c = splat.getSplatValue<APFloat>().convertToDouble();
      TopKOp topk = getRewritableTopK(values, {mul});
      if (!topk || !(c > 0.0) || mul.getType() != topk.getValues().getType())
        continue;
      rewriter.modifyOpInPlace(topk, [&] { topk.setScaleAttr(rewriter.getF64FloatAttr(topk.getScaleOrOne() * c)); });
      rewriter.replaceOp(mul, topk.getValues());
      return success();
    }
    return failure();
  }
};

} // namespace

void TopKOp::getCanonicalizationPatterns(RewritePatternSet &results, MLIRContext *context) {
  results.add<FoldScoreFnIntoTopK>(context);
}

void BinaryOp::getCanonicalizationPatterns(RewritePatternSet &results, MLIRContext *context) {
  results.add<FoldRenormalizeIntoTopK, FoldScaleIntoTopK>(context);
}
