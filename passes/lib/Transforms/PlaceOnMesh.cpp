//===- PlaceOnMesh.cpp - moe-place-on-mesh ----------------------*- C++ -*-===//
//
// A single-device layer to the per-rank (SPMD) program of a device mesh:
// expert weights split over ep with an all-to-all on each side of the
// experts, FSDP chunks gathered before use, the auxiliary losses' rows
// gathered over the mesh. The placement rules are the runtime's (mesh.h).
//
//===----------------------------------------------------------------------===//
#include "moe/Support/MLIR.h"
#include "moe/Transforms/Passes.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"
#include "moe/runtime/mesh.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

#define DEBUG_TYPE "moe-place-on-mesh"

namespace moe {
#define GEN_PASS_DEF_MOEPLACEONMESH
#include "moe/Transforms/Passes.h.inc"
} // namespace moe

using namespace mlir;
using namespace moe;
namespace rt = ::moe::runtime;

namespace {

constexpr StringLiteral kMeshName = "mesh";

/// The axis names of a MeshAxes mask, in mesh order.
ArrayAttr axesAttr(Builder &b, int32_t axes) {
  SmallVector<Attribute> names;
  if (axes & rt::kAxisRep)
    names.push_back(b.getStringAttr("rep"));
  if (axes & rt::kAxisDp)
    names.push_back(b.getStringAttr("dp"));
  if (axes & rt::kAxisEp)
    names.push_back(b.getStringAttr("ep"));
  return b.getArrayAttr(names);
}

/// A tensor type with its first dimension dynamic (a gather over uneven rows).
RankedTensorType withDynamicRows(RankedTensorType t) {
  SmallVector<int64_t> shape(t.getShape());
  shape[0] = ShapedType::kDynamic;
  return RankedTensorType::get(shape, t.getElementType());
}

struct PlaceOnMeshPass : moe::impl::MoEPlaceOnMeshBase<PlaceOnMeshPass> {
  using MoEPlaceOnMeshBase::MoEPlaceOnMeshBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::string error;
    std::optional<rt::Mesh> parsed = rt::parseMesh(mesh, error);
    if (!parsed) {
      module.emitError() << error;
      return signalPassFailure();
    }
    placed = *parsed;
    if (!placed.isPlaced())
      return;
    if (module.lookupSymbol(kMeshName)) {
      module.emitError() << "the module already declares @" << kMeshName << "; it is placed on a mesh already";
      return signalPassFailure();
    }
    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointToStart(module.getBody());
    MeshOp::create(b, module.getLoc(), kMeshName, b.getStrArrayAttr({"rep", "dp", "ep"}),
                   b.getDenseI64ArrayAttr({placed.rep, placed.dp, placed.ep}));
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isDeclaration() && failed(placeLayer(fn)))
        return signalPassFailure();
  }

  LogicalResult placeLayer(func::FuncOp fn) {
    const bool backward = isBackward(fn);
    if (failed(checkTokens(fn, backward)))
      return failure();
    // Which arguments are stacked expert weights.
    llvm::DenseSet<unsigned> expertArgs;
    WalkResult walk = fn.walk([&](ExpertFfnOp ffn) {
      for (Value w : ffn.getWeights()) {
        auto arg = dyn_cast<BlockArgument>(w);
        if (!arg || arg.getOwner() != &fn.getBody().front()) {
          ffn.emitError() << "on a mesh, expert weights must be layer parameters (function arguments)";
          return WalkResult::interrupt();
        }
        int64_t n = cast<RankedTensorType>(w.getType()).getDimSize(0);
        if (n % placed.ep != 0) {
          ffn.emitError() << "mesh " << placed.toString() << ": ep = " << placed.ep << " does not divide the " << n
                          << " experts";
          return WalkResult::interrupt();
        }
        expertArgs.insert(arg.getArgNumber());
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    // Experts split over ep exchange rows; so does a capacity on any mesh:
    // which rows an expert keeps depends on the counts of every rank before.
    // A mesh of one keeps the exchange too, so that a world of one runs (and
    // measures) every collective of the sharded program.
    fn.walk([&](ExpertFfnOp ffn) {
      if (placed.ep > 1 || placed.isSingleDevice() || !cast<RoutedType>(ffn.getRouted().getType()).isDropless())
        exchangeAroundExperts(ffn);
    });
    fn.walk([&](ExpertFfnGradOp grad) {
      if (placed.ep > 1 || placed.rep > 1 || placed.dp > 1 || placed.isSingleDevice() ||
          !cast<RoutedType>(grad.getRouted().getType()).isDropless())
        exchangeAroundExpertGrads(grad);
    });
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      if (fn.getArgAttr(i, MoEDialect::getParamAttrName()) &&
          failed(placeParameter(fn, i, expertArgs.contains(i) ? rt::Placement::Experts : rt::Placement::Replicated)))
        return failure();
    gatherLossRows(fn);
    if (backward) {
      // The experts' weight cotangents are the rank's slices, as the weights.
      fn.walk([&](ExpertFfnGradOp grad) {
        for (auto [w, g] : llvm::zip(grad.getWeights(), grad.getWeightsGrad()))
          g.setType(w.getType());
      });
      gatherTokenSums(fn);
      gatherLossGradientRows(fn);
      scatterShardedGradients(fn);
      auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
      fn.setType(FunctionType::get(fn.getContext(), fn.getBody().getArgumentTypes(), ret.getOperandTypes()));
    }
    return success();
  }

  /// moe-differentiate's backward: it takes the outputs' cotangents.
  static bool isBackward(func::FuncOp fn) {
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      if (fn.getArgAttr(i, MoEDialect::getCotangentAttrName()))
        return true;
    return false;
  }

  /// Inputs are sliced by rows: their first dimension must be the (dynamic)
  /// token count, and nothing may reduce over it but the auxiliary losses.
  /// (A backward's sums over the tokens are gathered instead: gatherTokenSums.)
  LogicalResult checkTokens(func::FuncOp fn, bool backward) {
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      auto input = fn.getArgAttrOfType<StringAttr>(i, MoEDialect::getInputAttrName());
      auto type = dyn_cast<RankedTensorType>(fn.getArgumentTypes()[i]);
      if (input && type && (type.getRank() == 0 || !type.isDynamicDim(0)))
        return fn.emitError() << "input '" << input.getValue() << "' has type " << type
                              << "; on a mesh every input's first dimension is the dynamic token count";
    }
    if (backward)
      return success();
    WalkResult walk = fn.walk([&](Operation *op) {
      int64_t dim = -1;
      Value input;
      if (auto r = dyn_cast<ReduceOp>(op))
        dim = r.getDim(), input = r.getInput();
      else if (auto s = dyn_cast<SoftmaxOp>(op))
        dim = s.getDim(), input = s.getInput();
      auto type = input ? dyn_cast<RankedTensorType>(input.getType()) : nullptr;
      if (dim == 0 && type && type.isDynamicDim(0)) {
        op->emitError() << "reduces over the token dimension, which a mesh splits over its ranks; only the "
                           "auxiliary losses may (mesh "
                        << placed.toString() << ")";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    return failure(walk.wasInterrupted());
  }

  /// dispatch -> all_to_all -> expert_ffn -> all_to_all -> combine (over ep;
  /// with ep = 1, each rank keeps its rows and the counts are still shared).
  void exchangeAroundExperts(ExpertFfnOp ffn) {
    OpBuilder b(ffn);
    Location loc = ffn.getLoc();
    auto routed = cast<RoutedType>(ffn.getRouted().getType());
    auto sharded = routed.withExpertShards(placed.ep);
    ArrayAttr ep = axesAttr(b, rt::kAxisEp);
    auto meshRef = FlatSymbolRefAttr::get(b.getContext(), kMeshName);
    Value there = AllToAllOp::create(b, loc, sharded, ffn.getRouted(), meshRef, ep, IntegerAttr(), IntegerAttr());
    ffn.getRoutedMutable().assign(there);
    ffn.getResult().setType(sharded);
    b.setInsertionPointAfter(ffn);
    auto back = AllToAllOp::create(b, loc, routed, ffn.getResult(), meshRef, ep, IntegerAttr(), IntegerAttr());
    ffn.getResult().replaceAllUsesExcept(back.getResult(), back);
  }

  /// The backward of the experts between exchanges: the rows and their
  /// cotangents to the experts' ranks (the rows through the forward's
  /// exchange when there is one), the rows' cotangents back. A weight's
  /// cotangent is over the global batch: with replicas the lowering's kernel
  /// gives each expert to one of its holders, which takes every replica's
  /// rows (moe_ffn_ep_grad.cc), so the exchange is inserted for rep > 1 too.
  void exchangeAroundExpertGrads(ExpertFfnGradOp grad) {
    OpBuilder b(grad);
    Location loc = grad.getLoc();
    auto routed = cast<RoutedType>(grad.getRouted().getType());
    auto sharded = routed.withExpertShards(placed.ep);
    ArrayAttr ep = axesAttr(b, rt::kAxisEp);
    auto meshRef = FlatSymbolRefAttr::get(b.getContext(), kMeshName);
    Value rows;
    for (Operation *user : grad.getRouted().getUsers())
      if (auto exchange = dyn_cast<AllToAllOp>(user); exchange && exchange.getResult().getType() == sharded)
        rows = exchange.getResult();
    if (!rows)
      rows = AllToAllOp::create(b, loc, sharded, grad.getRouted(), meshRef, ep, IntegerAttr(), IntegerAttr());
    Value cotangents = AllToAllOp::create(b, loc, sharded, grad.getGrad(), meshRef, ep, IntegerAttr(), IntegerAttr());
    grad.getRoutedMutable().assign(rows);
    grad.getGradMutable().assign(cotangents);
    grad.getRoutedGrad().setType(sharded);
    b.setInsertionPointAfter(grad);
    auto back = AllToAllOp::create(b, loc, routed, grad.getRoutedGrad(), meshRef, ep, IntegerAttr(), IntegerAttr());
    grad.getRoutedGrad().replaceAllUsesExcept(back.getResult(), back);
  }

  /// A backward's sums over the tokens (a parameter's cotangent: dense,
  /// rmsnorm, a broadcast operand's; the experts' loads) run on the rows
  /// gathered over the mesh in rank order, the global batch, so that they add
  /// in the single-device order whatever the mesh: the result is the same
  /// bits on every rank and every mesh. The op's per-token cotangents stay
  /// with the rank's own rows (a copy of the op over the gathered rows gives
  /// the sums; the lowering skips what each copy does not need).
  void gatherTokenSums(func::FuncOp fn) {
    auto hasTokens = [](Type t) {
      auto type = dyn_cast<RankedTensorType>(t);
      return type && type.getRank() > 0 && type.isDynamicDim(0);
    };
    llvm::DenseMap<Value, Value> gathered;
    auto gatherOnce = [&](Value rows) {
      auto [it, fresh] = gathered.try_emplace(rows, Value());
      if (!fresh)
        return it->second;
      OpBuilder b(fn.getContext());
      if (Operation *def = rows.getDefiningOp())
        b.setInsertionPointAfter(def);
      else
        b.setInsertionPointToStart(&fn.getBody().front());
      it->second =
          AllGatherOp::create(b, rows.getLoc(), rows.getType(), rows, FlatSymbolRefAttr::get(b.getContext(), kMeshName),
                              axesAttr(b, rt::kAllAxes), b.getI64IntegerAttr(0))
              .getResult();
      return it->second;
    };
    SmallVector<Operation *> sums;
    fn.walk([&](Operation *op) {
      if (!isa<DenseGradOp, RMSNormGradOp, BinaryGradOp, ReduceOp>(op))
        return;
      bool fromTokens = llvm::any_of(op->getOperandTypes(), hasTokens);
      bool summed = llvm::any_of(op->getResults(), [&](Value r) { return !hasTokens(r.getType()) && !r.use_empty(); });
      if (fromTokens && summed)
        sums.push_back(op);
    });
    for (Operation *op : sums) {
      bool perToken = llvm::any_of(op->getResultTypes(), hasTokens);
      Operation *global = op;
      if (perToken) {
        OpBuilder b(op);
        b.setInsertionPointAfter(op);
        global = b.clone(*op);
      }
      for (OpOperand &operand : global->getOpOperands())
        if (hasTokens(operand.get().getType()))
          operand.set(gatherOnce(operand.get()));
      if (perToken)
        for (auto [local, whole] : llvm::zip(op->getResults(), global->getResults()))
          if (!hasTokens(local.getType()))
            local.replaceAllUsesWith(whole);
    }
  }

  /// An auxiliary loss's cotangent of its token rows (load_balance_loss_grad,
  /// z_loss_grad) depends on the whole batch (its counts, its size): the op
  /// runs on the rows gathered over the mesh, as the loss itself does, and
  /// each rank takes back its own rows of the result (moe.row_offset).
  void gatherLossGradientRows(func::FuncOp fn) {
    auto meshRef = FlatSymbolRefAttr::get(fn.getContext(), kMeshName);
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) {
      if (isa<LoadBalanceLossGradOp, ZLossGradOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      Value rows = op->getOperand(0); // probs or logits: the rank's rows, shaped as the result
      for (OpOperand &operand : op->getOpOperands()) {
        auto type = dyn_cast<RankedTensorType>(operand.get().getType());
        if (type && type.getRank() > 0 && type.isDynamicDim(0))
          operand.set(AllGatherOp::create(b, loc, withDynamicRows(type), operand.get(), meshRef,
                                          axesAttr(b, rt::kAllAxes), b.getI64IntegerAttr(0)));
      }
      b.setInsertionPointAfter(op);
      Value global = op->getResult(0);
      auto type = cast<RankedTensorType>(global.getType());
      Value offset = RowOffsetOp::create(b, loc, rows, meshRef, axesAttr(b, rt::kAllAxes));
      Value count = tensor::DimOp::create(b, loc, rows, 0);
      SmallVector<OpFoldResult> offsets{offset}, sizes{count}, strides{b.getIndexAttr(1)};
      for (int64_t d = 1; d < type.getRank(); ++d) {
        offsets.push_back(b.getIndexAttr(0));
        sizes.push_back(b.getIndexAttr(type.getDimSize(d)));
        strides.push_back(b.getIndexAttr(1));
      }
      auto mine = tensor::ExtractSliceOp::create(b, loc, type, global, offsets, sizes, strides);
      global.replaceAllUsesExcept(mine.getResult(), mine);
    }
  }

  /// FSDP: a parameter held as a chunk gets its gradient as that chunk. The
  /// backward forms the whole (gathered) gradient with the same bits on every
  /// rank of the chunk's group: the replicated weights' from the gathered
  /// rows, the experts' on their owners and sent to every holder
  /// (moe_ffn_ep_grad.cc). So a reduce-scatter that takes the max of those
  /// equal copies leaves each rank its chunk exactly (a scatter that moved
  /// only the chunks would move less; the copies are the price of one op).
  void scatterShardedGradients(func::FuncOp fn) {
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    OpBuilder b(ret);
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      auto name = fn.getResultAttrOfType<StringAttr>(i, MoEDialect::getGradientAttrName());
      if (!name)
        continue;
      std::optional<unsigned> param;
      for (unsigned a = 0; a < fn.getNumArguments(); ++a)
        if (auto p = fn.getArgAttrOfType<StringAttr>(a, MoEDialect::getParamAttrName()); p && p == name)
          param = a;
      if (!param)
        continue;
      auto placement = fn.getArgAttrOfType<StringAttr>(*param, MoEDialect::getPlacementAttrName());
      auto global = fn.getArgAttrOfType<DenseI64ArrayAttr>(*param, MoEDialect::getGlobalShapeAttrName());
      if (!placement || !global)
        continue;
      std::vector<int64_t> shape(global.asArrayRef().begin(), global.asArrayRef().end());
      rt::ParamShard shard = rt::paramShard(placed, 0, *rt::parsePlacement(placement.getValue()), shape);
      if (!shard.fsdpAxes || shape.empty())
        continue;
      Location loc = ret.getLoc();
      Value grad = ret.getOperand(i);
      auto type = cast<RankedTensorType>(grad.getType());
      int64_t count = type.getNumElements(), padded = shard.stored * shard.fsdpSize;
      Type element = type.getElementType();
      Value flat = grad;
      if (type.getRank() > 1) {
        ReassociationIndices all;
        for (int64_t d = 0; d < type.getRank(); ++d)
          all.push_back(d);
        flat = tensor::CollapseShapeOp::create(b, loc, RankedTensorType::get({count}, element), grad,
                                               ArrayRef<ReassociationIndices>{all});
      }
      if (padded > count) { // the last chunk's padding: zeros, as the weights' is
        Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
        Value zeros = tensor::SplatOp::create(b, loc, RankedTensorType::get({padded}, element), zero);
        flat = tensor::InsertSliceOp::create(b, loc, flat, zeros, ValueRange{}, ValueRange{}, ValueRange{},
                                             ArrayRef<int64_t>{0}, ArrayRef<int64_t>{count}, ArrayRef<int64_t>{1});
      }
      Value chunk = ReduceScatterOp::create(b, loc, RankedTensorType::get({shard.stored}, element), flat,
                                            FlatSymbolRefAttr::get(b.getContext(), kMeshName),
                                            axesAttr(b, shard.fsdpAxes), b.getI64IntegerAttr(0),
                                            CollectiveReductionAttr::get(b.getContext(), CollectiveReduction::max));
      ret.setOperand(i, chunk);
    }
  }

  /// The argument becomes the rank's shard; with FSDP, the whole local slice
  /// is gathered back just before its first use.
  LogicalResult placeParameter(func::FuncOp fn, unsigned i, rt::Placement placement) {
    auto type = cast<RankedTensorType>(fn.getArgumentTypes()[i]);
    std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
    rt::ParamShard shard = rt::paramShard(placed, 0, placement, shape);
    Builder attrs(fn.getContext());
    fn.setArgAttr(i, MoEDialect::getPlacementAttrName(), attrs.getStringAttr(rt::placementName(placement)));
    fn.setArgAttr(i, MoEDialect::getGlobalShapeAttrName(), attrs.getDenseI64ArrayAttr(type.getShape()));
    BlockArgument arg = fn.getArgument(i);
    auto local = RankedTensorType::get(shard.localShape, type.getElementType());
    if (!shard.fsdpAxes) {
      arg.setType(local);
      fn.setType(FunctionType::get(fn.getContext(), fn.getBody().getArgumentTypes(), fn.getResultTypes()));
      return success();
    }
    if (type.getRank() == 0)
      return fn.emitError() << "parameter #" << i << " is a scalar; FSDP (dp = " << placed.dp
                            << ") shards tensors of rank 1 or more";
    if (arg.use_empty()) {
      arg.setType(local);
      fn.setType(FunctionType::get(fn.getContext(), fn.getBody().getArgumentTypes(), fn.getResultTypes()));
      return success();
    }
    // Before the first use, in the function's block.
    Operation *first = nullptr;
    for (Operation *user : arg.getUsers()) {
      Operation *inBlock = fn.getBody().front().findAncestorOpInBlock(*user);
      if (inBlock && (!first || inBlock->isBeforeInBlock(first)))
        first = inBlock;
    }
    OpBuilder b(first);
    Location loc = arg.getLoc();
    SmallVector<Operation *> users(arg.getUsers().begin(), arg.getUsers().end());
    arg.setType(local);
    fn.setType(FunctionType::get(fn.getContext(), fn.getBody().getArgumentTypes(), fn.getResultTypes()));
    int64_t count = 1;
    for (int64_t d : shard.gatheredShape)
      count *= d;
    auto gatheredType = RankedTensorType::get({shard.stored * shard.fsdpSize}, type.getElementType());
    Value gathered = AllGatherOp::create(b, loc, gatheredType, arg, FlatSymbolRefAttr::get(b.getContext(), kMeshName),
                                         axesAttr(b, shard.fsdpAxes), b.getI64IntegerAttr(0));
    Value flat = tensor::ExtractSliceOp::create(b, loc, RankedTensorType::get({count}, type.getElementType()), gathered,
                                                ValueRange{}, ValueRange{}, ValueRange{}, ArrayRef<int64_t>{0},
                                                ArrayRef<int64_t>{count}, ArrayRef<int64_t>{1});
    auto sliceType = RankedTensorType::get(shard.gatheredShape, type.getElementType());
    Value whole = flat;
    if (sliceType.getRank() > 1) {
      ReassociationIndices all;
      for (int64_t d = 0; d < sliceType.getRank(); ++d)
        all.push_back(d);
      whole = tensor::ExpandShapeOp::create(b, loc, sliceType, flat, ArrayRef<ReassociationIndices>{all});
    }
    for (Operation *user : users)
      user->replaceUsesOfWith(arg, whole);
    return success();
  }

  /// The auxiliary losses are over the global batch: their token rows are
  /// gathered over the mesh (in rank order, so the loss sums in the
  /// single-device order), not their partial sums reduced.
  void gatherLossRows(func::FuncOp fn) {
    auto gatherRows = [&](OpBuilder &b, Location loc, Value rows) {
      auto type = cast<RankedTensorType>(rows.getType());
      return AllGatherOp::create(b, loc, withDynamicRows(type), rows, FlatSymbolRefAttr::get(b.getContext(), kMeshName),
                                 axesAttr(b, rt::kAllAxes), b.getI64IntegerAttr(0))
          .getResult();
    };
    fn.walk([&](Operation *op) {
      if (!isa<LoadBalanceLossOp, ZLossOp>(op))
        return;
      OpBuilder b(op);
      for (OpOperand &operand : op->getOpOperands())
        operand.set(gatherRows(b, op->getLoc(), operand.get()));
    });
  }

  rt::Mesh placed;
};

} // namespace
