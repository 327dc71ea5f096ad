//===- Differentiate.cpp - moe-differentiate --------------------*- C++ -*-===//
//
// Reverse mode over a layer function: the forward recomputed, then each op's
// DifferentiableOpInterface rule, last op first, the cotangents of values
// with several uses summed. The rules live with the ops; this pass only
// walks, accumulates, and inverts the casts and reshapes the frontend emits.
//
//===----------------------------------------------------------------------===//
#include "moe/Support/MLIR.h"
#include "moe/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"

namespace moe {
#define GEN_PASS_DEF_MOEDIFFERENTIATE
#include "moe/Transforms/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;

namespace {

bool isFloatTensor(Type t) {
  auto shaped = dyn_cast<RankedTensorType>(t);
  return shaped && isa<FloatType>(shaped.getElementType());
}
bool carriesGradient(Type t) { return isFloatTensor(t) || isa<RoutedType>(t); }

/// Zeros of `type`, its dynamic sizes those of `like`.
Value zerosLike(OpBuilder &b, Location loc, RankedTensorType type, Value like) {
  Value zero = arith::ConstantOp::create(b, loc, b.getFloatAttr(type.getElementType(), 0.0));
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(tensor::DimOp::create(b, loc, like, d));
  return tensor::SplatOp::create(b, loc, type, zero, sizes);
}

/// The routing indices a balance-updated parameter chooses: those of the
/// first topk / group_topk its value reaches. Null when it reaches none.
Value indicesChosenBy(Value param) {
  SmallVector<Value> work{param};
  llvm::DenseSet<Value> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (Operation *user : v.getUsers()) {
      if (auto t = dyn_cast<TopKOp>(user))
        return t.getIndices();
      if (auto g = dyn_cast<GroupTopKOp>(user))
        return g.getIndices();
      llvm::append_range(work, user->getResults());
    }
  }
  return Value();
}

/// The load of each of `experts` experts: how many of `indices`' assignments
/// it got, as f32 [experts] (exact below 2^24): ones scattered back where
/// the indices point, summed over tokens.
Value expertLoad(OpBuilder &b, Location loc, Value indices, int64_t experts) {
  auto idxType = cast<RankedTensorType>(indices.getType());
  auto onesType = RankedTensorType::get(idxType.getShape(), b.getF32Type());
  Value one = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0f));
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < idxType.getRank(); ++d)
    if (idxType.isDynamicDim(d))
      sizes.push_back(tensor::DimOp::create(b, loc, indices, d));
  Value ones = tensor::SplatOp::create(b, loc, onesType, one, sizes);
  auto perToken = RankedTensorType::get({idxType.getDimSize(0), experts}, b.getF32Type());
  Value scattered = GatherGradOp::create(b, loc, perToken, indices, ones);
  Value sums = ReduceOp::create(b, loc, ReduceFn::sum, scattered, int64_t{0});
  return tensor::CollapseShapeOp::create(b, loc, RankedTensorType::get({experts}, b.getF32Type()), sums,
                                         ArrayRef<ReassociationIndices>{{0, 1}});
}

class Adjoints {
public:
  explicit Adjoints(OpBuilder &b) : b(b) {}

  Value get(Value v) const { return adjoints.lookup(v); }

  /// Adds `g` to `v`'s cotangent.
  void add(Location loc, Value v, Value g) {
    if (!g || !carriesGradient(v.getType()))
      return;
    Value &slot = adjoints[v];
    if (!slot) {
      slot = g;
    } else if (isa<RoutedType>(v.getType())) {
      // A routed value has one use in a chain (the verifier's rule).
      mlir::emitError(loc) << "a routed value's cotangent arrives twice";
      failed = true;
    } else {
      slot = BinaryOp::create(b, loc, BinaryFn::add, slot, g);
    }
  }

  bool failed = false;

private:
  OpBuilder &b;
  llvm::DenseMap<Value, Value> adjoints;
};

struct DifferentiatePass : moe::impl::MoEDifferentiateBase<DifferentiatePass> {
  using MoEDifferentiateBase::MoEDifferentiateBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> layers;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isDeclaration() && !fn.getName().ends_with("_backward") && !fn.getName().ends_with("_train"))
        layers.push_back(fn);
    for (func::FuncOp fn : layers)
      if (failed(differentiate(fn)))
        return signalPassFailure();
  }

  /// `@<layer>_train`: the forward with each of `kept` (its expert_ffns, in
  /// order) keeping its up products, returned after the forward's results,
  /// then `values` (values of the forward).
  LogicalResult addTrainForward(func::FuncOp forward, ArrayRef<ExpertFfnOp> kept, ArrayRef<Value> values) {
    std::string name = (forward.getName() + "_train").str();
    if (getOperation().lookupSymbol(name))
      return forward.emitError() << "the module already has a function @" << name;
    IRMapping toTrain;
    func::FuncOp train = forward.clone(toTrain);
    train.setName(name);
    OpBuilder b(forward->getContext());
    b.setInsertionPointAfter(forward);
    b.insert(train);
    SmallVector<Value> residuals;
    for (ExpertFfnOp original : kept) {
      auto ffn = cast<ExpertFfnOp>(toTrain.lookup(original.getOperation()));
      b.setInsertionPoint(ffn);
      auto keeping = ExpertFfnOp::create(b, ffn.getLoc(), ffn.getResult().getType(), ffn.getUpType(), ffn.getKindAttr(),
                                         ffn.getActivationAttr(), ffn.getRouted(), ffn.getWeights());
      ffn.getResult().replaceAllUsesWith(keeping.getResult());
      ffn.erase();
      residuals.push_back(keeping.getUp());
    }
    for (Value v : values)
      residuals.push_back(toTrain.lookup(v));
    auto ret = cast<func::ReturnOp>(train.getBody().front().getTerminator());
    const unsigned results = ret.getNumOperands();
    ret.getOperandsMutable().append(residuals);
    train.setFunctionType(b.getFunctionType(train.getArgumentTypes(), ret.getOperandTypes()));
    SmallVector<DictionaryAttr> resultAttrs;
    for (unsigned r = 0; r < results; ++r)
      resultAttrs.push_back(forward.getResultAttrDict(r));
    for (unsigned i = 0; i < residuals.size(); ++i)
      resultAttrs.push_back(
          b.getDictionaryAttr(b.getNamedAttr(MoEDialect::getResidualAttrName(), b.getI64IntegerAttr(i))));
    train.setAllResultAttrs(resultAttrs);
    return success();
  }

  /// Whether a recomputed op's tensor results the backward reads are kept
  /// instead (keep-tensors): the moe ops' but the routed chain's (dispatch
  /// and expert_ffn give routed values, which never cross a call).
  static bool keepsResults(Operation *op) {
    return isa<MoEDialect>(op->getDialect()) && !isa<DispatchOp, ExpertFfnOp>(op) &&
           llvm::all_of(op->getResultTypes(), [](Type t) { return isa<RankedTensorType>(t); });
  }

  LogicalResult differentiate(func::FuncOp forward) {
    if (!forward.getBody().hasOneBlock())
      return forward.emitError() << "moe-differentiate needs a layer of one block";
    std::string name = (forward.getName() + "_backward").str();
    ModuleOp module = getOperation();
    if (module.lookupSymbol(name))
      return forward.emitError() << "the module already has a function @" << name;
    // The residuals: each expert_ffn's up products, when kept.
    SmallVector<ExpertFfnOp> kept;
    if (keepUpProducts)
      llvm::append_range(kept, forward.getBody().front().getOps<ExpertFfnOp>());
    OpBuilder b(forward->getContext());
    b.setInsertionPointAfter(forward);
    Location loc = forward.getLoc();

    // Arguments: the forward's, a cotangent per result, then the residuals.
    FunctionType type = forward.getFunctionType();
    SmallVector<Type> argTypes(type.getInputs()), resultTypes;
    llvm::append_range(argTypes, type.getResults());
    const unsigned firstResidual = argTypes.size();
    for (ExpertFfnOp ffn : kept)
      argTypes.push_back(ffn.getUpType());
    SmallVector<unsigned> differentiable;
    for (unsigned i = 0; i < type.getNumInputs(); ++i)
      if (isFloatTensor(type.getInput(i))) {
        differentiable.push_back(i);
        resultTypes.push_back(type.getInput(i));
      }
    // A balance-updated parameter (update = :balance) gets no gradient step
    // but its experts' load: one more result, after the gradients.
    SmallVector<std::pair<unsigned, Value>> balanced; // argument, the indices it chooses
    for (unsigned i = 0; i < type.getNumInputs(); ++i) {
      if (!forward.getArgAttr(i, MoEDialect::getUpdateAttrName()))
        continue;
      Value chosen = indicesChosenBy(forward.getArgument(i));
      if (!chosen)
        return forward.emitError() << "argument #" << i
                                   << " is updated by its load (update = :balance) but chooses no topk or group_topk";
      balanced.push_back({i, chosen});
      resultTypes.push_back(type.getInput(i));
    }
    auto backward = func::FuncOp::create(b, loc, name, b.getFunctionType(argTypes, resultTypes));
    for (unsigned i = 0; i < type.getNumInputs(); ++i)
      backward.setArgAttrs(i, forward.getArgAttrDict(i));
    for (unsigned r = 0; r < type.getNumResults(); ++r)
      backward.setArgAttr(type.getNumInputs() + r, "moe.cotangent", b.getI64IntegerAttr(r));
    for (unsigned i = 0; i < kept.size(); ++i)
      backward.setArgAttr(firstResidual + i, MoEDialect::getResidualAttrName(), b.getI64IntegerAttr(i));
    for (auto [out, i] : llvm::enumerate(differentiable)) {
      auto input = forward.getArgAttrOfType<StringAttr>(i, MoEDialect::getInputAttrName());
      auto param = forward.getArgAttrOfType<StringAttr>(i, MoEDialect::getParamAttrName());
      std::string gradName = input ? input.str() : param ? param.str() : "arg" + std::to_string(i);
      backward.setResultAttr(out, "moe.gradient", b.getStringAttr(gradName));
    }
    for (auto [k, entry] : llvm::enumerate(balanced))
      backward.setResultAttr(differentiable.size() + k, MoEDialect::getLoadAttrName(),
                             forward.getArgAttr(entry.first, MoEDialect::getParamAttrName()));
    Block *body = backward.addEntryBlock();
    b.setInsertionPointToStart(body);

    // The forward, recomputed.
    IRMapping map;
    for (unsigned i = 0; i < type.getNumInputs(); ++i)
      map.map(forward.getArgument(i), body->getArgument(i));
    Block &fwd = forward.getBody().front();
    SmallVector<Operation *> ops;
    // Each kept expert_ffn's recomputed copy, with its residual argument.
    llvm::DenseMap<Operation *, Value> residualOf;
    for (Operation &op : fwd.without_terminator()) {
      ops.push_back(b.clone(op, map));
      if (auto ffn = dyn_cast<ExpertFfnOp>(op))
        if (auto at = llvm::find(kept, ffn); at != kept.end())
          residualOf[ops.back()] = body->getArgument(firstResidual + (at - kept.begin()));
    }

    // Cotangents, last op first.
    Adjoints adjoints(b);
    for (auto [r, v] : llvm::enumerate(fwd.getTerminator()->getOperands()))
      adjoints.add(loc, map.lookup(v), body->getArgument(type.getNumInputs() + r));
    for (Operation *op : llvm::reverse(ops)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value result : op->getResults()) {
        resultGrads.push_back(adjoints.get(result));
        any = any || resultGrads.back();
      }
      // Constants and sizes pass nothing on.
      bool takesGradient = llvm::any_of(op->getOperandTypes(), carriesGradient);
      if (!any || !takesGradient)
        continue;
      if (failed(rule(b, op, resultGrads, adjoints)))
        return failure();
      // A kept expert_ffn's rule reads its residual, not the recomputed up products.
      if (Value up = residualOf.lookup(op))
        if (Value routedGrad = adjoints.get(cast<ExpertFfnOp>(op).getRouted()))
          if (auto grad = routedGrad.getDefiningOp<ExpertFfnGradOp>())
            grad.getUpMutable().assign(up);
    }
    if (adjoints.failed)
      return failure();
    SmallVector<Value> grads;
    for (auto [out, i] : llvm::enumerate(differentiable)) {
      Value arg = body->getArgument(i);
      Value g = adjoints.get(arg);
      grads.push_back(g ? g : zerosLike(b, loc, cast<RankedTensorType>(arg.getType()), arg));
    }
    for (auto [arg, chosen] : balanced)
      grads.push_back(expertLoad(b, loc, map.lookup(chosen), cast<RankedTensorType>(type.getInput(arg)).getDimSize(0)));
    func::ReturnOp::create(b, loc, grads);
    // The recomputed values the backward reads, kept instead (keep-tensors):
    // last op first, so that a kept op's operands count only the uses left.
    SmallVector<Value> keptValues;
    if (keepTensors)
      for (size_t i = ops.size(); i-- > 0;) {
        Operation *copy = ops[i];
        if (!keepsResults(copy) || copy->use_empty())
          continue;
        Operation &original = *std::next(fwd.begin(), static_cast<std::ptrdiff_t>(i));
        for (auto [result, primal] : llvm::zip(copy->getResults(), original.getResults())) {
          if (result.use_empty())
            continue;
          keptValues.push_back(primal);
          const unsigned at = backward.getNumArguments();
          auto index = b.getI64IntegerAttr(static_cast<int64_t>(kept.size() + keptValues.size() - 1));
          if (failed(backward.insertArgument(
                  at, result.getType(), b.getDictionaryAttr(b.getNamedAttr(MoEDialect::getResidualAttrName(), index)),
                  result.getLoc())))
            return failure();
          result.replaceAllUsesWith(body->getArgument(at));
        }
        copy->erase();
        ops[i] = nullptr;
      }
    if ((!kept.empty() || !keptValues.empty()) && failed(addTrainForward(forward, kept, keptValues)))
      return failure();
    // What the backward did not read of the recomputed forward (its outputs, a
    // rule's unused operand) goes; walking backwards frees chains of it.
    for (Operation *op : llvm::reverse(ops))
      if (op && isOpTriviallyDead(op))
        op->erase();
    return success();
  }

  /// One op's cotangents into its operands'.
  LogicalResult rule(OpBuilder &b, Operation *op, ArrayRef<Value> resultGrads, Adjoints &adjoints) {
    Location loc = op->getLoc();
    if (auto d = dyn_cast<DifferentiableOpInterface>(op)) {
      SmallVector<Value> operandGrads;
      if (failed(d.buildGradients(b, resultGrads, operandGrads)))
        return failure();
      for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
        adjoints.add(loc, operand, g);
      return success();
    }
    // The glue the frontend emits: element type casts and reshapes.
    if (isa<arith::ExtFOp, arith::TruncFOp>(op)) {
      Value in = op->getOperand(0), g = resultGrads[0];
      auto to = cast<RankedTensorType>(in.getType());
      Value back = isa<arith::ExtFOp>(op) ? arith::TruncFOp::create(b, loc, to, g).getResult()
                                          : arith::ExtFOp::create(b, loc, to, g).getResult();
      adjoints.add(loc, in, back);
      return success();
    }
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op)) {
      adjoints.add(loc, expand.getSrc(),
                   tensor::CollapseShapeOp::create(b, loc, expand.getSrcType(), resultGrads[0],
                                                   expand.getReassociationIndices()));
      return success();
    }
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op)) {
      Value src = collapse.getSrc();
      SmallVector<OpFoldResult> sizes;
      for (int64_t d = 0; d < collapse.getSrcType().getRank(); ++d)
        sizes.push_back(collapse.getSrcType().isDynamicDim(d)
                            ? OpFoldResult(tensor::DimOp::create(b, loc, src, d).getResult())
                            : OpFoldResult(b.getIndexAttr(collapse.getSrcType().getDimSize(d))));
      adjoints.add(loc, src,
                   tensor::ExpandShapeOp::create(b, loc, collapse.getSrcType(), resultGrads[0],
                                                 collapse.getReassociationIndices(), sizes));
      return success();
    }
    return op->emitError() << "has no derivative rule (moe-differentiate)";
  }
};

} // namespace
