//===- Signature.cpp - a layer's runtime signature --------------*- C++ -*-===//
#include "moe/Compiler/Signature.h"

#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"
#include "moe/runtime/json.h"
#include "moe/runtime/target.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace rt = ::moe::runtime;

namespace {

/// Shape of `type` with the names of its dynamic dimensions from `dims`.
LogicalResult specShape(Operation *op, RankedTensorType type, ArrayAttr dims, std::vector<rt::Dim> &out) {
  for (int64_t d = 0; d < type.getRank(); ++d) {
    rt::Dim dim;
    if (type.isDynamicDim(d)) {
      auto name = dims && d < static_cast<int64_t>(dims.size()) ? dyn_cast<StringAttr>(dims[d]) : nullptr;
      if (!name || name.getValue().empty())
        return op->emitError() << "dynamic dimension " << d << " has no name (moe.dims)";
      dim.symbol = name.getValue().str();
    } else {
      dim.size = type.getDimSize(d);
    }
    out.push_back(dim);
  }
  return success();
}

std::string jsonOf(Attribute a) {
  std::string out;
  if (auto i = dyn_cast<IntegerAttr>(a)) {
    if (i.getType().isInteger(1))
      return i.getValue().getBoolValue() ? "true" : "false";
    return std::to_string(i.getInt());
  }
  if (auto b = dyn_cast<BoolAttr>(a))
    return b.getValue() ? "true" : "false";
  if (auto f = dyn_cast<FloatAttr>(a)) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.17g", f.getValueAsDouble());
    return buffer;
  }
  std::string text;
  if (auto s = dyn_cast<StringAttr>(a))
    text = s.getValue().str();
  else if (auto t = dyn_cast<TypeAttr>(a))
    llvm::raw_string_ostream(text) << t.getValue();
  else
    llvm::raw_string_ostream(text) << a;
  rt::json::writeString(out, text);
  return out;
}

} // namespace

/// Useful FLOPs per token, the terms linear in the token count: a dense layer on
/// [tokens, k] costs 2 k n; an expert FFN 2 k (assignments per token) times its GEMMs.
static double flopsPerToken(func::FuncOp layer) {
  double flops = 0;
  layer.walk([&](Operation *op) {
    if (auto d = dyn_cast<moe::DenseOp>(op)) {
      auto in = d.getInput().getType(), w = d.getWeight().getType();
      if (in.isDynamicDim(0))
        flops += 2.0 * static_cast<double>(w.getDimSize(0)) * static_cast<double>(w.getDimSize(1));
    } else if (auto f = dyn_cast<moe::ExpertFfnOp>(op)) {
      auto routed = f.getRouted().getType();
      double gemms = f.getKind() == moe::FfnKind::mlp ? 2.0 : 3.0;
      flops += 2.0 * gemms * static_cast<double>(routed.getHidden()) * static_cast<double>(f.getInnerDim()) *
               static_cast<double>(routed.getK());
    }
  });
  return flops;
}

/// Whether each output row of `layer` depends on its own input row only: no
/// op turns a token-dynamic operand into a result without a token dimension
/// (a loss, a reduction over tokens), no softmax or reduction along the
/// tokens, no capacity (its drops depend on the other tokens), no collective
/// but a placed layer's exchange of routed rows and its gathers of FSDP
/// chunks (a placed layer is row-independent when its single-device one is).
static bool rowIndependent(func::FuncOp layer) {
  auto tokenDynamic = [](Type t) {
    auto shaped = dyn_cast<RankedTensorType>(t);
    if (auto routed = dyn_cast<moe::RoutedType>(t))
      shaped = routed.getTokens();
    return shaped && shaped.getRank() > 0 && shaped.isDynamicDim(0);
  };
  for (unsigned i = 0; i < layer.getNumArguments(); ++i)
    if (layer.getArgAttr(i, moe::MoEDialect::getInputAttrName()) && !tokenDynamic(layer.getArgumentTypes()[i]))
      return false;
  for (Type t : layer.getResultTypes())
    if (!tokenDynamic(t))
      return false;
  WalkResult coupled = layer.walk([&](Operation *op) {
    if (isa<moe::LoadBalanceLossOp, moe::ZLossOp, moe::AllReduceOp, moe::ReduceScatterOp>(op))
      return WalkResult::interrupt();
    if (auto a = dyn_cast<moe::AllToAllOp>(op); a && !isa<moe::RoutedType>(a.getInput().getType()))
      return WalkResult::interrupt();
    if (auto g = dyn_cast<moe::AllGatherOp>(op); g && tokenDynamic(g.getInput().getType()))
      return WalkResult::interrupt();
    if (auto d = dyn_cast<moe::DispatchOp>(op); d && d.getRouted().getType().getCapacity())
      return WalkResult::interrupt();
    if (auto r = dyn_cast<moe::ReduceOp>(op); r && r.getDim() == 0)
      return WalkResult::interrupt();
    if (auto s = dyn_cast<moe::SoftmaxOp>(op); s && s.getDim() == 0)
      return WalkResult::interrupt();
    // Sizes (tensor.dim) are not data; every tensor result must keep the tokens.
    bool in = llvm::any_of(op->getOperandTypes(), tokenDynamic);
    bool keeps = llvm::all_of(op->getResultTypes(),
                              [&](Type t) { return !isa<RankedTensorType, moe::RoutedType>(t) || tokenDynamic(t); });
    return in && !keeps ? WalkResult::interrupt() : WalkResult::advance();
  });
  return !coupled.wasInterrupted();
}

LogicalResult moe::extractSignature(func::FuncOp layer, rt::Signature &out) {
  out = rt::Signature();
  out.layer = layer.getName().str();
  out.target = rt::Target::cpu().artifactName();
  if (auto doc = layer->getAttrOfType<StringAttr>(moe::MoEDialect::getDescriptionAttrName()))
    out.description = doc.getValue().str();
  if (auto hyper = layer->getAttrOfType<DictionaryAttr>(moe::MoEDialect::getHyperparametersAttrName())) {
    out.hyperparameters = "{";
    for (auto [i, entry] : llvm::enumerate(hyper)) {
      if (i)
        out.hyperparameters += ",";
      rt::json::writeString(out.hyperparameters, entry.getName().getValue());
      out.hyperparameters += ":" + jsonOf(entry.getValue());
    }
    out.hyperparameters += "}";
  }
  for (unsigned i = 0; i < layer.getNumArguments(); ++i) {
    auto type = dyn_cast<RankedTensorType>(layer.getArgumentTypes()[i]);
    std::optional<moe_dtype_t> dtype = type ? runtimeDType(type.getElementType()) : std::nullopt;
    if (!dtype)
      return layer.emitError() << "argument #" << i << " is not a tensor the runtime supports";
    rt::TensorSpec spec;
    spec.dtype = *dtype;
    auto dims = layer.getArgAttrOfType<ArrayAttr>(i, moe::MoEDialect::getDimsAttrName());
    // A parameter placed on a mesh: the signature has its global shape.
    if (auto global = layer.getArgAttrOfType<DenseI64ArrayAttr>(i, moe::MoEDialect::getGlobalShapeAttrName()))
      type = RankedTensorType::get(global.asArrayRef(), type.getElementType());
    if (failed(specShape(layer, type, dims, spec.shape)))
      return failure();
    if (auto input = layer.getArgAttrOfType<StringAttr>(i, moe::MoEDialect::getInputAttrName())) {
      // The entry point takes inputs, then parameters, in signature order.
      if (!out.params.empty())
        return layer.emitError() << "input '" << input.getValue() << "' (argument #" << i
                                 << ") comes after a parameter; inputs must come first";
      spec.name = input.getValue().str();
      out.inputs.push_back(spec);
    } else if (auto param = layer.getArgAttrOfType<StringAttr>(i, moe::MoEDialect::getParamAttrName())) {
      spec.name = param.getValue().str();
      if (auto init = layer.getArgAttrOfType<StringAttr>(i, moe::MoEDialect::getInitAttrName()))
        spec.init = init.getValue().str();
      if (auto trainable = layer.getArgAttrOfType<BoolAttr>(i, moe::MoEDialect::getTrainableAttrName()))
        spec.trainable = trainable.getValue();
      if (auto update = layer.getArgAttrOfType<StringAttr>(i, moe::MoEDialect::getUpdateAttrName()))
        spec.update = update.getValue().str();
      if (auto placement = layer.getArgAttrOfType<StringAttr>(i, moe::MoEDialect::getPlacementAttrName()))
        spec.placement = *rt::parsePlacement(placement.getValue()); // the dialect verified the name
      out.params.push_back(spec);
    } else {
      return layer.emitError() << "argument #" << i << " is neither a moe.input nor a moe.param";
    }
  }
  for (unsigned i = 0; i < layer.getNumResults(); ++i) {
    auto type = dyn_cast<RankedTensorType>(layer.getResultTypes()[i]);
    std::optional<moe_dtype_t> dtype = type ? runtimeDType(type.getElementType()) : std::nullopt;
    if (!dtype)
      return layer.emitError() << "result #" << i << " is not a tensor the runtime supports";
    rt::TensorSpec spec;
    spec.name = rt::outputName(i, layer.getNumResults());
    spec.dtype = *dtype;
    auto dims = dyn_cast_or_null<ArrayAttr>(layer.getResultAttr(i, moe::MoEDialect::getDimsAttrName()));
    if (!dims) {
      // Without names, a result's dynamic dimension is the first input's first one (tokens).
      SmallVector<Attribute> names;
      for (int64_t d = 0; d < type.getRank(); ++d)
        names.push_back(StringAttr::get(layer.getContext(),
                                        type.isDynamicDim(d) && !out.inputs.empty() && !out.inputs[0].shape.empty()
                                            ? out.inputs[0].shape[0].symbol
                                            : ""));
      dims = ArrayAttr::get(layer.getContext(), names);
    }
    if (failed(specShape(layer, type, dims, spec.shape)))
      return failure();
    out.outputs.push_back(spec);
  }
  if (out.inputs.empty())
    return layer.emitError() << "a layer needs at least one input";
  // The mesh moe-place-on-mesh declared, by axis name.
  if (auto module = layer->getParentOfType<ModuleOp>())
    if (auto mesh = module.lookupSymbol<moe::MeshOp>("mesh")) {
      out.mesh.placedOnOne = true;
      for (auto [name, size] : llvm::zip(mesh.getAxes().getAsValueRange<StringAttr>(), mesh.getShape())) {
        int64_t *axis = name == "rep"  ? &out.mesh.rep
                        : name == "dp" ? &out.mesh.dp
                        : name == "ep" ? &out.mesh.ep
                                       : nullptr;
        if (!axis)
          return mesh.emitError() << "the runtime's meshes have the axes rep, dp and ep, not \"" << name << "\"";
        *axis = size;
      }
    }
  out.flopsPerToken = flopsPerToken(layer);
  out.rowIndependent = rowIndependent(layer);
  return success();
}

/// The backward's signature: a gradient per result of @<layer>_backward,
/// named and shaped after the input or parameter its moe.gradient names.
LogicalResult moe::extractBackward(func::FuncOp backward, const rt::Signature &forward, rt::BackwardSignature &out) {
  out.entry.clear();
  out.gradients.clear();
  for (unsigned i = 0; i < backward.getNumResults(); ++i) {
    // A balance-updated parameter's expert load (moe-differentiate).
    if (auto load = backward.getResultAttrOfType<StringAttr>(i, moe::MoEDialect::getLoadAttrName())) {
      rt::TensorSpec spec;
      spec.name = "load." + load.getValue().str();
      spec.dtype = MOE_F32;
      spec.shape.push_back({cast<RankedTensorType>(backward.getResultTypes()[i]).getDimSize(0), ""});
      out.gradients.push_back(spec);
      continue;
    }
    auto name = backward.getResultAttrOfType<StringAttr>(i, moe::MoEDialect::getGradientAttrName());
    const rt::TensorSpec *primal = nullptr;
    for (const auto *list : {&forward.inputs, &forward.params})
      for (const rt::TensorSpec &spec : *list)
        if (name && spec.name == name.getValue())
          primal = &spec;
    if (!primal)
      return backward.emitError() << "result #" << i << " of the backward names no input or parameter ("
                                  << (name ? name.getValue() : StringRef("no moe.gradient")) << ")";
    rt::TensorSpec grad = *primal;
    grad.name = "grad." + primal->name;
    out.gradients.push_back(grad);
  }
  // The residuals @<layer>_train returns after the outputs (moe-differentiate
  // keep-up-products), taken by the backward after the cotangents.
  out.trainEntry.clear();
  out.residuals.clear();
  auto module = backward->getParentOfType<ModuleOp>();
  StringRef layer = backward.getName().drop_back(StringRef("_backward").size());
  auto train = module ? module.lookupSymbol<func::FuncOp>((layer + "_train").str()) : nullptr;
  if (!train)
    return success();
  for (unsigned i = forward.outputs.size(); i < train.getNumResults(); ++i) {
    auto type = cast<RankedTensorType>(train.getResultTypes()[i]);
    std::optional<moe_dtype_t> dtype = runtimeDType(type.getElementType());
    if (!dtype || !train.getResultAttr(i, moe::MoEDialect::getResidualAttrName()))
      return train.emitError() << "result #" << i << " of the train forward is not a residual the runtime can hold";
    rt::TensorSpec spec;
    spec.name = "residual." + std::to_string(out.residuals.size());
    spec.dtype = *dtype;
    // A dynamic size is the rows of the experts' dispatch: not an input's
    // symbol, so the runtime takes it as the train forward returns it.
    SmallVector<Attribute> names;
    for (int64_t d = 0; d < type.getRank(); ++d)
      names.push_back(StringAttr::get(train.getContext(), type.isDynamicDim(d) ? "rows" : ""));
    if (failed(specShape(train, type, ArrayAttr::get(train.getContext(), names), spec.shape)))
      return failure();
    out.residuals.push_back(spec);
  }
  return success();
}
