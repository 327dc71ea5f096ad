//===- Fields.cpp - layer fields: constructors, parameters, calls -*- C++ -*-===//
//
// A field constructor (`Dense(d => n)`) is evaluated to a FieldSpec, then
// materialised as the layer function's parameter arguments, named by the
// spec's checkpoint paths (`router.weight`, `experts.w_gate`). Calling a
// field emits its computation: a dense layer, an FFN expanded into dense
// ops, an RMSNorm, or `moe.expert_ffn` for Experts on a routed value.
//
//===----------------------------------------------------------------------===//
#include "Elaborator.h"

using namespace moe::frontend;
using namespace moe::frontend::sema;
using llvm::SMLoc;
using moe::BinaryFn;
using moe::UnaryFn;

namespace {
/// `in => out` with two positive integers.
std::optional<std::pair<int64_t, int64_t>> expectSizePair(Elaborator &e, const Val &v, SMLoc at, llvm::StringRef ctor) {
  if (v.kind != Val::Kind::Pair || v.elements[0].kind != Val::Kind::Int || v.elements[1].kind != Val::Kind::Int ||
      v.elements[0].i <= 0 || v.elements[1].i <= 0) {
    e.error(at, "'" + ctor + "' expects 'in => out' with two positive integers, got " + describe(v));
    return std::nullopt;
  }
  return std::make_pair(v.elements[0].i, v.elements[1].i);
}
} // namespace

Val Elaborator::constructField(llvm::StringRef ctor, const CallExpr &call, const std::vector<Val> &typeParams,
                               Args &args, Keywords &keywords) {
  SMLoc at = call.getLoc();
  if (ctor == "Tensor" || ctor == "Int" || ctor == "Float64" || ctor == "Float32" || ctor == "Bool") {
    error(at, "'" + ctor + "' is a type and cannot be called");
    return Val::poison();
  }
  if (!inFieldConstructor) {
    error(at, "'" + ctor +
                  "(...)' declares parameters and can only build a layer field "
                  "('name = " +
                  ctor + "(...)')");
    return Val::poison();
  }
  auto spec = std::make_shared<FieldSpec>();
  // Element type: `Dense{f32}(...)`, else the layer's first type parameter, else f32.
  spec->dtype = ElemType::F32;
  if (layer && !layer->typeParams.empty()) {
    const Val &t = layerScope[layer->typeParams.front().name];
    if (t.kind == Val::Kind::DType)
      spec->dtype = t.dtype;
  }
  if (typeParams.size() > 1) {
    error(at, "'" + ctor + "' takes one element type, got " + std::to_string(typeParams.size()));
    return Val::poison();
  }
  if (!typeParams.empty()) {
    if (ctor == "Experts") {
      error(at, "Experts takes its element type from its FFN: write Experts(n, SwiGLU{T}(...))");
      return Val::poison();
    }
    spec->dtype = typeParams.front().dtype;
  }
  auto kw = [&](llvm::StringRef k) -> const Keyword * {
    auto it = keywords.find(k);
    return it == keywords.end() ? nullptr : &it->second;
  };
  auto result = [&] {
    Val v;
    v.kind = Val::Kind::Spec;
    v.spec = spec;
    return v;
  };

  if (ctor == "Param") {
    spec->kind = FieldSpec::Kind::Param;
    if (!checkArity(ctor, call, args, keywords, 1, 8, {"init", "trainable", "update"}))
      return Val::poison();
    for (size_t i = 0; i < args.size(); ++i) {
      std::optional<int64_t> d = expectInt(args[i], args.locs[i], "a Param dimension");
      if (!d)
        return Val::poison();
      if (*d <= 0) {
        error(args.locs[i], "a Param dimension must be positive, got " + std::to_string(*d));
        return Val::poison();
      }
      spec->dims.push_back(*d);
    }
    if (const Keyword *init = kw("init")) {
      if (init->value.kind != Val::Kind::Symbol || !llvm::is_contained({"normal", "zeros", "ones"}, init->value.s)) {
        error(init->loc, "init must be :normal, :zeros or :ones, got " + describe(init->value));
        return Val::poison();
      }
      spec->init = init->value.s;
    }
    if (const Keyword *t = kw("trainable")) {
      if (t->value.kind != Val::Kind::Bool) {
        error(t->loc, "trainable must be true or false, got " + describe(t->value));
        return Val::poison();
      }
      spec->trainable = t->value.b;
    }
    if (const Keyword *u = kw("update")) {
      // DeepSeek-V3's aux-loss-free bias: moved by its experts' load after
      // each training step, never by a gradient.
      if (u->value.kind != Val::Kind::Symbol || u->value.s != "balance") {
        error(u->loc, "update must be :balance, got " + describe(u->value));
        return Val::poison();
      }
      if (spec->trainable || spec->dims.size() != 1 || spec->dtype != ElemType::F32) {
        error(u->loc, "update = :balance is for a Param{f32}(n_experts; trainable = false): the bias a load "
                      "moves, not a gradient");
        return Val::poison();
      }
      spec->update = "balance";
    }
    return result();
  }
  if (ctor == "Dense") {
    spec->kind = FieldSpec::Kind::Dense;
    if (!checkArity(ctor, call, args, keywords, 1, 1, {"bias"}))
      return Val::poison();
    auto sizes = expectSizePair(*this, args[0], args.locs[0], ctor);
    if (!sizes)
      return Val::poison();
    std::tie(spec->in, spec->out) = *sizes;
    if (const Keyword *b = kw("bias")) {
      if (b->value.kind != Val::Kind::Bool) {
        error(b->loc, "bias must be true or false, got " + describe(b->value));
        return Val::poison();
      }
      spec->bias = b->value.b;
    }
    return result();
  }
  if (ctor == "SwiGLU" || ctor == "GeGLU" || ctor == "MLP") {
    spec->kind = ctor == "SwiGLU"  ? FieldSpec::Kind::SwiGLU
                 : ctor == "GeGLU" ? FieldSpec::Kind::GeGLU
                                   : FieldSpec::Kind::MLP;
    size_t n = ctor == "MLP" ? 2 : 1;
    if (!checkArity(ctor, call, args, keywords, n, n, {}))
      return Val::poison();
    auto sizes = expectSizePair(*this, args[0], args.locs[0], ctor);
    if (!sizes)
      return Val::poison();
    std::tie(spec->in, spec->out) = *sizes;
    if (ctor == "MLP") {
      const Val &act = args[1];
      std::string name = act.kind == Val::Kind::Builtin || act.kind == Val::Kind::Symbol ? act.s : "";
      std::optional<moe::Activation> a = moe::symbolizeActivation(name);
      if (!a) {
        error(args.locs[1], "the MLP activation must be relu, gelu or silu, got " + describe(act));
        return Val::poison();
      }
      spec->activation = *a;
    }
    return result();
  }
  if (ctor == "Experts") {
    spec->kind = FieldSpec::Kind::Experts;
    if (!checkArity(ctor, call, args, keywords, 2, 2, {}))
      return Val::poison();
    std::optional<int64_t> n = expectInt(args[0], args.locs[0], "the number of experts");
    if (!n)
      return Val::poison();
    if (*n <= 0) {
      error(args.locs[0], "the number of experts must be positive, got " + std::to_string(*n));
      return Val::poison();
    }
    const Val &ffn = args[1];
    if (ffn.kind != Val::Kind::Spec ||
        (ffn.spec->kind != FieldSpec::Kind::SwiGLU && ffn.spec->kind != FieldSpec::Kind::GeGLU &&
         ffn.spec->kind != FieldSpec::Kind::MLP)) {
      error(args.locs[1], "an expert must be SwiGLU(d => f), GeGLU(d => f) or MLP(d => f, act), "
                          "got " +
                              describe(ffn));
      return Val::poison();
    }
    spec->numExperts = *n;
    spec->inner = ffn.spec;
    spec->dtype = ffn.spec->dtype;
    return result();
  }
  if (ctor == "RMSNorm") {
    spec->kind = FieldSpec::Kind::RMSNorm;
    if (!checkArity(ctor, call, args, keywords, 1, 1, {"eps"}))
      return Val::poison();
    std::optional<int64_t> d = expectInt(args[0], args.locs[0], "the RMSNorm width");
    if (!d)
      return Val::poison();
    if (*d <= 0) {
      error(args.locs[0], "the RMSNorm width must be positive, got " + std::to_string(*d));
      return Val::poison();
    }
    spec->in = *d;
    if (const Keyword *e = kw("eps")) {
      std::optional<double> eps = expectNumber(e->value, e->loc, "'eps'");
      if (!eps)
        return Val::poison();
      if (!(*eps > 0.0)) {
        error(e->loc, "eps must be positive, got " + formatNumber(*eps));
        return Val::poison();
      }
      spec->eps = *eps;
    }
    return result();
  }
  error(at, "unknown field constructor '" + ctor + "'");
  return Val::poison();
}

void Elaborator::materializeField(Field &field) {
  const FieldSpec &spec = field.spec;
  auto add = [&](llvm::StringRef suffix, llvm::ArrayRef<int64_t> dims, ElemType dtype, llvm::StringRef init,
                 bool trainable, llvm::StringRef update = "") {
    Shape shape;
    for (int64_t d : dims)
      shape.push_back(Dim{d, ""});
    // A tensor whose byte size does not fit 64 bits cannot be allocated or
    // indexed anywhere: refuse it here rather than overflow in the runtime.
    int64_t bytes = dtype == ElemType::F32 || dtype == ElemType::I32 ? 4 : 2;
    for (int64_t d : dims)
      if (__builtin_mul_overflow(bytes, d, &bytes)) {
        std::string name = suffix.empty() ? field.name : field.name + "." + suffix.str();
        error(field.loc,
              "parameter '" + name + "' " + str(shape) + " is too large: its size in bytes " + "overflows 64 bits");
        break;
      }
    mlir::Block &body = func.getBody().front();
    mlir::Value arg = body.addArgument(toTensorType(dtype, shape, &context), loc(field.loc));
    mlir::NamedAttrList attrs;
    std::string path = suffix.empty() ? field.name : field.name + "." + suffix.str();
    attrs.set(moe::MoEDialect::getParamAttrName(), builder.getStringAttr(path));
    attrs.set(moe::MoEDialect::getInitAttrName(), builder.getStringAttr(init));
    if (!trainable)
      attrs.set(moe::MoEDialect::getTrainableAttrName(), builder.getBoolAttr(false));
    if (!update.empty())
      attrs.set(moe::MoEDialect::getUpdateAttrName(), builder.getStringAttr(update));
    argAttrs.push_back(attrs);
    field.params[suffix.str()] = std::make_shared<Val>(Val::tensor(arg, dtype, shape));
  };
  // Experts stack every tensor of their FFN on a leading expert dimension.
  const FieldSpec &ffn = spec.kind == FieldSpec::Kind::Experts ? *spec.inner : spec;
  llvm::SmallVector<int64_t, 1> lead;
  if (spec.kind == FieldSpec::Kind::Experts)
    lead.push_back(spec.numExperts);
  auto dims = [&](std::initializer_list<int64_t> rest) {
    llvm::SmallVector<int64_t> d(lead.begin(), lead.end());
    d.append(rest);
    return d;
  };
  switch (ffn.kind) {
  case FieldSpec::Kind::Param:
    add("", spec.dims, spec.dtype, spec.init, spec.trainable, spec.update);
    break;
  case FieldSpec::Kind::Dense:
    add("weight", {spec.in, spec.out}, spec.dtype, "normal", true);
    if (spec.bias)
      add("bias", {spec.out}, spec.dtype, "zeros", true);
    break;
  case FieldSpec::Kind::SwiGLU:
  case FieldSpec::Kind::GeGLU:
    add("w_gate", dims({ffn.in, ffn.out}), ffn.dtype, "normal", true);
    add("w_up", dims({ffn.in, ffn.out}), ffn.dtype, "normal", true);
    add("w_down", dims({ffn.out, ffn.in}), ffn.dtype, "normal", true);
    break;
  case FieldSpec::Kind::MLP:
    add("w_in", dims({ffn.in, ffn.out}), ffn.dtype, "normal", true);
    add("w_out", dims({ffn.out, ffn.in}), ffn.dtype, "normal", true);
    break;
  case FieldSpec::Kind::RMSNorm:
    add("weight", {spec.in}, spec.dtype, "ones", true);
    break;
  case FieldSpec::Kind::Experts:
    break; // an Experts spec always wraps an FFN
  }
}

Val Elaborator::callField(const Field &field, const CallExpr &call, Args &args, Keywords &keywords) {
  SMLoc at = call.getLoc();
  const FieldSpec &spec = field.spec;
  if (!checkArity(field.name, call, args, keywords, 1, 1, {}))
    return Val::poison();
  Val x = args[0];
  auto param = [&](llvm::StringRef suffix) { return *field.params.at(suffix.str()); };
  mlir::Location l = loc(at);

  if (spec.kind == FieldSpec::Kind::Experts) {
    if (x.kind != Val::Kind::Routed) {
      error(args.locs[0], "'" + field.name + "' holds " + std::to_string(spec.numExperts) +
                              " experts and applies to a routed value from dispatch(x, e), "
                              "got " +
                              describe(x));
      return Val::poison();
    }
    if (x.experts != spec.numExperts) {
      error(args.locs[0], "the routed value was dispatched over " + std::to_string(x.experts) + " experts but '" +
                              field.name + "' holds " + std::to_string(spec.numExperts));
      note(field.loc, "'" + field.name + "' is declared here");
      return Val::poison();
    }
    if (!sameDim(x.shape[1], Dim{spec.inner->in, ""}, args.locs[0],
                 "the routed tokens' width must match the experts' input width"))
      return Val::poison();
    llvm::SmallVector<mlir::Value> weights;
    std::optional<moe::Activation> activation;
    moe::FfnKind kind;
    switch (spec.inner->kind) {
    case FieldSpec::Kind::SwiGLU:
    case FieldSpec::Kind::GeGLU:
      kind = spec.inner->kind == FieldSpec::Kind::SwiGLU ? moe::FfnKind::swiglu : moe::FfnKind::geglu;
      weights = {param("w_gate").value, param("w_up").value, param("w_down").value};
      break;
    default:
      kind = moe::FfnKind::mlp;
      activation = spec.inner->activation;
      weights = {param("w_in").value, param("w_out").value};
      break;
    }
    // Mixed element types promote (spec, "Numerics"): f32 experts on bf16
    // tokens compute and return f32. The tokens are converted before the
    // dispatch, which is re-made on them (the bf16 one folds away unused).
    ElemType wide = promote(x.dtype, param(kind == moe::FfnKind::mlp ? "w_in" : "w_gate").dtype);
    if (wide != x.dtype) {
      auto dispatch = x.value.getDefiningOp<moe::DispatchOp>();
      if (!dispatch) {
        error(args.locs[0], "internal: a routed value not made by dispatch");
        return Val::poison();
      }
      Val tokens = convert(Val::tensor(dispatch.getInput(), x.dtype, x.shape), wide, at);
      x.value = moe::DispatchOp::create(builder, l, tokens.value, dispatch.getIndices(), x.experts, x.capacity);
      x.dtype = wide;
    }
    Val r = x;
    r.value = moe::ExpertFfnOp::create(builder, l, kind, x.value, weights, activation).getResult();
    return r;
  }

  if (!expectFloatTensor(x, args.locs[0], "the input of '" + field.name + "'", 2))
    return Val::poison();
  auto dense = [&](const Val &in, const Val &w, mlir::Value bias) {
    ElemType type = promote(in.dtype, w.dtype);
    mlir::Value v = moe::DenseOp::create(builder, l, in.value, w.value, bias, toMlir(type, &context));
    return Val::tensor(v, type, {in.shape[0], w.shape[1]});
  };
  switch (spec.kind) {
  case FieldSpec::Kind::Dense:
    if (!sameDim(x.shape[1], Dim{spec.in, ""}, args.locs[0], "the input width must match '" + field.name + "'s 'in'"))
      return Val::poison();
    return dense(x, param("weight"), spec.bias ? param("bias").value : mlir::Value());
  case FieldSpec::Kind::RMSNorm: {
    if (!sameDim(x.shape[1], Dim{spec.in, ""}, args.locs[0], "the input width must match the RMSNorm width"))
      return Val::poison();
    Val w = param("weight");
    ElemType type = promote(x.dtype, w.dtype);
    mlir::Value v = moe::RMSNormOp::create(builder, l, toTensorType(type, x.shape, &context), x.value, w.value,
                                           builder.getF64FloatAttr(spec.eps));
    return Val::tensor(v, type, x.shape);
  }
  case FieldSpec::Kind::SwiGLU:
  case FieldSpec::Kind::GeGLU:
  case FieldSpec::Kind::MLP: {
    // A dense (non-expert) FFN, e.g. a shared expert: its formula in dense ops.
    if (!sameDim(x.shape[1], Dim{spec.in, ""}, args.locs[0], "the input width must match the FFN's 'd'"))
      return Val::poison();
    if (spec.kind == FieldSpec::Kind::MLP) {
      Val h = dense(x, param("w_in"), {});
      auto act = spec.activation == moe::Activation::relu   ? UnaryFn::relu
                 : spec.activation == moe::Activation::gelu ? UnaryFn::gelu
                                                            : UnaryFn::silu;
      h = applyUnary(act, h, at);
      return dense(h, param("w_out"), {});
    }
    Val gate = dense(x, param("w_gate"), {});
    Val up = dense(x, param("w_up"), {});
    gate = applyUnary(spec.kind == FieldSpec::Kind::SwiGLU ? UnaryFn::silu : UnaryFn::gelu, gate, at);
    Val h = broadcastBinary(BinaryFn::mul, gate, up, at);
    return dense(h, param("w_down"), {});
  }
  default:
    error(at, "'" + field.name + "' cannot be called");
    return Val::poison();
  }
}
