//===- Builtins.cpp - calls: builtins, helpers, broadcasts ------*- C++ -*-===//
//
// Every builtin of the spec with its arity and keyword checks, its shape and
// dtype rules, and the `moe` op it becomes. Helper functions are inlined
// here: a fresh scope per call, specialised on the argument values.
//
//===----------------------------------------------------------------------===//
#include "Elaborator.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace moe::frontend;
using namespace moe::frontend::sema;
using llvm::SMLoc;
using moe::BinaryFn;
using moe::ReduceFn;
using moe::UnaryFn;

namespace {
struct BuiltinInfo {
  llvm::StringLiteral name;
  size_t minArgs, maxArgs;
  std::initializer_list<llvm::StringRef> keywords;
  bool elementwise; ///< may be used inside `f.(x)` helpers
};

const BuiltinInfo kBuiltins[] = {
    {"softmax", 1, 1, {"dims"}, false},
    {"logsoftmax", 1, 1, {"dims"}, false},
    {"sum", 1, 1, {"dims"}, false},
    {"maximum", 1, 1, {"dims"}, false},
    {"mean", 1, 1, {"dims"}, false},
    {"topk", 2, 2, {}, false},
    {"group_topk", 2, 2, {"groups", "top_groups"}, false},
    {"gather", 2, 2, {}, false},
    {"dispatch", 2, 2, {"capacity"}, false},
    {"combine", 2, 2, {}, false},
    {"load_balance_loss", 2, 2, {}, false},
    {"z_loss", 1, 1, {}, false},
    {"rmsnorm", 2, 2, {"eps"}, false},
    {"sigmoid", 1, 1, {}, true},
    {"silu", 1, 1, {}, true},
    {"gelu", 1, 1, {}, true},
    {"relu", 1, 1, {}, true},
    {"exp", 1, 1, {}, true},
    {"log", 1, 1, {}, true},
    {"sqrt", 1, 1, {}, true},
    {"tanh", 1, 1, {}, true},
    {"abs", 1, 1, {}, true},
    {"max", 2, 2, {}, true},
    {"min", 2, 2, {}, true},
    {"div", 2, 2, {}, true},
};

const BuiltinInfo *findBuiltin(llvm::StringRef name) {
  for (const BuiltinInfo &b : kBuiltins)
    if (b.name == name)
      return &b;
  return nullptr;
}

std::optional<UnaryFn> scalarFunction(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<UnaryFn>>(name)
      .Case("sigmoid", UnaryFn::sigmoid)
      .Case("silu", UnaryFn::silu)
      .Case("gelu", UnaryFn::gelu)
      .Case("relu", UnaryFn::relu)
      .Case("exp", UnaryFn::exp)
      .Case("log", UnaryFn::log)
      .Case("sqrt", UnaryFn::sqrt)
      .Case("tanh", UnaryFn::tanh)
      .Case("abs", UnaryFn::abs)
      .Default(std::nullopt);
}
} // namespace

bool moe::frontend::sema::isBuiltinFunctionName(llvm::StringRef name) { return findBuiltin(name) != nullptr; }

bool Elaborator::checkArity(llvm::StringRef name, const CallExpr &call, const Args &args, const Keywords &keywords,
                            size_t minArgs, size_t maxArgs, llvm::ArrayRef<llvm::StringRef> allowed) {
  bool ok = true;
  if (args.size() < minArgs || args.size() > maxArgs) {
    std::string want =
        minArgs == maxArgs ? std::to_string(minArgs) : std::to_string(minArgs) + " to " + std::to_string(maxArgs);
    error(call.getLoc(), "'" + name + "' takes " + want + " positional argument" + (maxArgs == 1 ? "" : "s") +
                             ", got " + std::to_string(args.size()));
    ok = false;
  }
  for (const KeywordArg &kw : call.keywords) {
    if (llvm::is_contained(allowed, kw.name))
      continue;
    std::string hint;
    for (llvm::StringRef a : allowed)
      if (a.edit_distance(kw.name) <= 2)
        hint = "; did you mean '" + a.str() + "'?";
    if (hint.empty()) {
      std::string list;
      for (llvm::StringRef a : allowed)
        list += (list.empty() ? "" : ", ") + a.str();
      hint = list.empty() ? " (it takes none)" : " (it takes: " + list + ")";
    }
    error(kw.loc, "'" + name + "' has no keyword argument '" + kw.name + "'" + hint);
    ok = false;
  }
  return ok;
}

Val Elaborator::evalCall(const CallExpr &call) {
  Val callee = eval(*call.callee);
  Args args;
  for (const ExprPtr &a : call.args) {
    args.values.push_back(eval(*a));
    args.locs.push_back(a->getLoc());
  }
  Keywords keywords;
  for (const KeywordArg &kw : call.keywords)
    keywords[kw.name] = Keyword{kw.loc, eval(*kw.value)};
  if (callee.isPoison())
    return callee;
  for (const Val &a : args.values)
    if (a.isPoison())
      return a;
  for (const auto &kw : keywords)
    if (kw.second.value.isPoison())
      return kw.second.value;

  if (call.broadcast)
    return broadcastCall(callee, call, args, keywords);
  switch (callee.kind) {
  case Val::Kind::Builtin:
    return callBuiltin(callee.s, call, args, keywords);
  case Val::Kind::Function: {
    const FunctionDecl *method = selectMethod(callee.s, args.size(), call);
    return method ? callFunction(*method, call, args, keywords) : Val::poison();
  }
  case Val::Kind::Field:
    if (broadcastDepth > 0) {
      error(call.getLoc(), "layer fields cannot be called inside a helper broadcast with f.(x)");
      return Val::poison();
    }
    return callField(*callee.field, call, args, keywords);
  case Val::Kind::TypeName:
    return constructField(callee.s, call, callee.elements, args, keywords);
  case Val::Kind::DType:
    if (args.size() == 1 && args[0].isNumber() && keywords.empty())
      return Val::real(args[0].asDouble());
    error(call.getLoc(), "'" + name(callee.dtype) + "(x)' converts a number; use '" + name(callee.dtype) +
                             ".(x)' to convert every element of a tensor");
    return Val::poison();
  default:
    if (auto *n = llvm::dyn_cast<NameExpr>(call.callee.get()))
      error(call.getLoc(), "'" + n->name + "' is " + describe(callee) + ", not a function");
    else
      error(call.getLoc(), describe(callee) + " is not a function");
    return Val::poison();
  }
}

Val Elaborator::broadcastCall(const Val &callee, const CallExpr &call, Args &args, Keywords &keywords) {
  SMLoc at = call.getLoc();
  if (callee.kind == Val::Kind::DType) {
    if (!checkArity(name(callee.dtype), call, args, keywords, 1, 1, {}))
      return Val::poison();
    if (args[0].isNumber())
      return Val::real(args[0].asDouble());
    if (!expectFloatTensor(args[0], args.locs[0], "the operand of '" + name(callee.dtype).str() + ".'", -1))
      return Val::poison();
    if (!isFloat(callee.dtype)) {
      error(at, "tensors can only be converted to f32, f16 or bf16");
      return Val::poison();
    }
    return convert(args[0], callee.dtype, at);
  }
  if (callee.kind == Val::Kind::Function) {
    const FunctionDecl *method = selectMethod(callee.s, args.size(), call);
    if (!method)
      return Val::poison();
    ++broadcastDepth;
    Val r = callFunction(*method, call, args, keywords);
    --broadcastDepth;
    return r;
  }
  if (callee.kind == Val::Kind::Builtin) {
    const BuiltinInfo *info = findBuiltin(callee.s);
    if (!info->elementwise) {
      error(at, "'" + callee.s +
                    "' is not a scalar function and cannot be broadcast with '.('; "
                    "call it as '" +
                    callee.s + "(...)'");
      return Val::poison();
    }
    ++broadcastDepth;
    Val r = callBuiltin(callee.s, call, args, keywords);
    --broadcastDepth;
    return r;
  }
  error(at, describe(callee) + " cannot be broadcast with '.('");
  return Val::poison();
}

const FunctionDecl *Elaborator::selectMethod(llvm::StringRef name, size_t arity, const CallExpr &call) {
  const std::vector<const FunctionDecl *> &methods = functions.find(name)->second;
  for (const FunctionDecl *m : methods)
    if (m->params.size() == arity)
      return m;
  if (methods.size() == 1)
    return methods.front(); // callFunction reports the arity with the definition
  std::string signatures;
  for (const FunctionDecl *m : methods) {
    std::string params;
    for (const Parameter &p : m->params)
      params += (params.empty() ? "" : ", ") + p.name;
    signatures += (signatures.empty() ? "" : ", ") + name.str() + "(" + params + ")";
  }
  error(call.getLoc(), "no method of '" + name + "' takes " + std::to_string(arity) + " argument" +
                           (arity == 1 ? "" : "s") + " (it has: " + signatures + ")");
  return nullptr;
}

Val Elaborator::callFunction(const FunctionDecl &fn, const CallExpr &call, Args &args, Keywords &keywords) {
  SMLoc at = call.getLoc();
  if (expansionExceeded)
    return Val::poison();
  if (static_cast<int64_t>(frames.size()) >= options.maxCallDepth) {
    expansionExceeded = true;
    error(at, "helper calls nest more than " + std::to_string(options.maxCallDepth) + " deep at this call of '" +
                  fn.name + "'");
    return Val::poison();
  }
  if (operationCounter.count > options.maxOperations) {
    expansionExceeded = true;
    error(at, "inlining this call of '" + fn.name + "' grows the layer past " + std::to_string(options.maxOperations) +
                  " operations; helper functions are inlined at every call site, so a helper "
                  "that calls another twice doubles the code at each level");
    return Val::poison();
  }
  for (const Frame &f : frames)
    if (f.function == &fn) {
      error(at, "recursive call of '" + fn.name +
                    "': helper functions are inlined at every "
                    "call site, so recursion is not allowed");
      note(fn.loc, "'" + fn.name + "' is defined here");
      return Val::poison();
    }
  if (args.size() != fn.params.size()) {
    error(at, "'" + fn.name + "' takes " + std::to_string(fn.params.size()) + " argument" +
                  (fn.params.size() == 1 ? "" : "s") + ", got " + std::to_string(args.size()));
    note(fn.loc, "'" + fn.name + "' is defined here");
    return Val::poison();
  }
  llvm::SmallVector<llvm::StringRef> keywordNames;
  for (const Parameter &p : fn.keywordParams)
    keywordNames.push_back(p.name);
  if (!checkArity(fn.name, call, args, keywords, args.size(), args.size(), keywordNames))
    return Val::poison();

  mlir::Location callLocation = loc(at);
  llvm::StringMap<Val> scope;
  for (size_t i = 0; i < args.size(); ++i)
    scope[fn.params[i].name] = args[i];
  frames.push_back(Frame{&fn, at, callLocation});
  locals.push_back(std::move(scope));
  // Keyword defaults see the positional parameters, as in Julia.
  for (const Parameter &p : fn.keywordParams) {
    auto it = keywords.find(p.name);
    locals.back()[p.name] = it != keywords.end() ? it->second.value : eval(*p.defaultValue);
  }
  Val result = execBody(fn.body, /*isForward=*/false, fn.loc);
  locals.pop_back();
  frames.pop_back();
  return result;
}

//===----------------------------------------------------------------------===//
// Builtins
//===----------------------------------------------------------------------===//

namespace {
Val makeRouted(mlir::Value v, const Val &x, int64_t experts, int64_t k, std::optional<double> capacity) {
  Val r;
  r.kind = Val::Kind::Routed;
  r.value = v;
  r.dtype = x.dtype;
  r.shape = x.shape;
  r.experts = experts;
  r.k = k;
  r.capacity = capacity;
  return r;
}
} // namespace

bool Elaborator::expectRowsAndIndices(llvm::StringRef fname, Args &args, llvm::StringRef rowsRole,
                                      llvm::StringRef rowsName, SMLoc at) {
  // args[0]: [tokens, experts] floats; args[1]: expert indices [tokens, k] over those experts.
  const Val &rows = args[0], &idx = args[1];
  std::string rowsWhat = (rowsRole + " of '" + fname + "'").str();
  std::string indicesWhat = ("the indices of '" + fname + "'").str();
  std::string perToken = ("'" + fname + "' needs one index row per token").str();
  if (!expectFloatTensor(rows, args.locs[0], rowsWhat, 2) || !expectIndexTensor(idx, args.locs[1], indicesWhat) ||
      !sameDim(rows.shape[0], idx.shape[0], at, perToken))
    return false;
  if (rows.shape[1] != Dim{idx.indexRange, ""}) {
    error(at, "'" + fname + "' indices select among " + std::to_string(idx.indexRange) + " experts but " + rowsName +
                  " has " + rows.shape[1].str() + " columns");
    return false;
  }
  return true;
}

Val Elaborator::callBuiltin(llvm::StringRef fname, const CallExpr &call, Args &args, Keywords &keywords) {
  const BuiltinInfo *info = findBuiltin(fname);
  SMLoc at = call.getLoc();
  if (broadcastDepth > 0 && !info->elementwise) {
    error(at, "'" + fname +
                  "' is not elementwise and cannot be used in a helper applied with "
                  "f.(x)");
    return Val::poison();
  }
  if (!checkArity(fname, call, args, keywords, info->minArgs, info->maxArgs, info->keywords))
    return Val::poison();
  auto kw = [&](llvm::StringRef k) -> const Keyword * {
    auto it = keywords.find(k);
    return it == keywords.end() ? nullptr : &it->second;
  };
  mlir::Location l = loc(at);

  // Scalar functions: fold on numbers; elementwise inside `f.(x)`.
  if (std::optional<UnaryFn> fn = scalarFunction(fname)) {
    if (args[0].isTensor() && broadcastDepth == 0) {
      error(at, "'" + fname + "' applies to numbers; use '" + fname +
                    ".(x)' to apply it to "
                    "every element of a tensor");
      return Val::poison();
    }
    return applyUnary(*fn, args[0], at);
  }
  if (fname == "max" || fname == "min") {
    if ((args[0].isTensor() || args[1].isTensor()) && broadcastDepth == 0) {
      error(at, "'" + fname + "' of tensors: use '" + fname + ".(a, b)' for the elementwise " + fname +
                    ", or 'maximum(x; dims)' to reduce");
      return Val::poison();
    }
    return broadcastBinary(fname == "max" ? BinaryFn::max : BinaryFn::min, args[0], args[1], at);
  }
  if (fname == "div") {
    std::optional<int64_t> a = expectInt(args[0], args.locs[0], "the dividend of 'div'");
    std::optional<int64_t> b = expectInt(args[1], args.locs[1], "the divisor of 'div'");
    if (!a || !b)
      return Val::poison();
    if (*b == 0 || (*a == INT64_MIN && *b == -1)) {
      error(at, "div(" + std::to_string(*a) + ", " + std::to_string(*b) + ") is undefined");
      return Val::poison();
    }
    return Val::integer(*a / *b);
  }

  if (fname == "softmax" || fname == "logsoftmax") {
    Val x = args[0];
    if (!expectFloatTensor(x, args.locs[0], "the argument of '" + fname.str() + "'", -1))
      return Val::poison();
    if (x.rank() == 0) {
      error(args.locs[0], "'" + fname + "' needs a tensor of rank 1 or more");
      return Val::poison();
    }
    int64_t dim = 0; // NNlib's default: dims = 1
    if (const Keyword *d = kw("dims")) {
      std::optional<int64_t> parsed = expectDims(*d, x.rank());
      if (!parsed)
        return Val::poison();
      dim = *parsed;
    } else if (x.rank() > 1 && !x.shape[0].isStatic()) {
      warning(at, "'" + fname + "' without dims normalises over dims = 1 (the '" + x.shape[0].symbol +
                      "' dimension), as NNlib does; write dims = " + std::to_string(x.rank()) +
                      " to normalise each row");
    }
    auto type = toTensorType(ElemType::F32, x.shape, &context);
    mlir::Value v = moe::SoftmaxOp::create(builder, l, type, x.value, builder.getI64IntegerAttr(dim),
                                           fname == "logsoftmax" ? builder.getUnitAttr() : mlir::UnitAttr());
    return Val::tensor(v, ElemType::F32, x.shape);
  }

  if (fname == "sum" || fname == "maximum" || fname == "mean") {
    ReduceFn fn = fname == "sum" ? ReduceFn::sum : fname == "maximum" ? ReduceFn::max : ReduceFn::mean;
    Val x = args[0];
    if (!expectFloatTensor(x, args.locs[0], "the argument of '" + fname.str() + "'", -1))
      return Val::poison();
    if (x.rank() == 0) {
      error(args.locs[0], "'" + fname + "' needs a tensor of rank 1 or more");
      return Val::poison();
    }
    llvm::SmallVector<int64_t> dims;
    if (const Keyword *d = kw("dims")) {
      std::optional<int64_t> parsed = expectDims(*d, x.rank());
      if (!parsed)
        return Val::poison();
      dims.push_back(*parsed);
    } else {
      for (int64_t i = 0; i < x.rank(); ++i) // Julia: no dims reduces everything to a scalar
        dims.push_back(i);
    }
    for (int64_t d : dims) {
      x.value = moe::ReduceOp::create(builder, l, fn, x.value, d);
      x.shape[d] = Dim{1, ""};
    }
    if (!kw("dims")) {
      x.value = mlir::tensor::CollapseShapeOp::create(builder, l, toTensorType(x.dtype, {}, &context), x.value,
                                                      llvm::ArrayRef<mlir::ReassociationIndices>{});
      x.shape.clear();
    }
    return x;
  }

  if (fname == "topk") {
    Val x = args[0];
    if (!expectFloatTensor(x, args.locs[0], "the scores of 'topk'", 2))
      return Val::poison();
    std::optional<int64_t> k = expectInt(args[1], args.locs[1], "k of 'topk'");
    if (!k)
      return Val::poison();
    if (!x.shape[1].isStatic()) {
      error(args.locs[0],
            "'topk' needs a static number of experts (the last dimension), got '" + x.shape[1].symbol + "'");
      return Val::poison();
    }
    int64_t experts = x.shape[1].size;
    if (*k < 1 || *k > experts) {
      error(args.locs[1], "k = " + std::to_string(*k) +
                              " must be between 1 and the number of "
                              "experts (" +
                              std::to_string(experts) + ")");
      return Val::poison();
    }
    auto op = moe::TopKOp::create(builder, l, x.value, *k);
    Shape shape{x.shape[0], Dim{*k, ""}};
    Val values = Val::tensor(op.getValues(), ElemType::F32, shape);
    Val indices = Val::tensor(op.getIndices(), ElemType::I32, shape);
    indices.indexRange = experts;
    return Val::tuple({values, indices});
  }

  if (fname == "group_topk") {
    Val s = args[0];
    if (!expectFloatTensor(s, args.locs[0], "the scores of 'group_topk'", 2))
      return Val::poison();
    std::optional<int64_t> k = expectInt(args[1], args.locs[1], "k of 'group_topk'");
    const Keyword *g = kw("groups"), *tg = kw("top_groups");
    if (!g || !tg) {
      error(at, "'group_topk' needs the keyword arguments 'groups' and 'top_groups'");
      return Val::poison();
    }
    std::optional<int64_t> groups = expectInt(g->value, g->loc, "'groups'");
    std::optional<int64_t> topGroups = expectInt(tg->value, tg->loc, "'top_groups'");
    if (!k || !groups || !topGroups)
      return Val::poison();
    if (!s.shape[1].isStatic()) {
      error(args.locs[0], "'group_topk' needs a static number of experts, got '" + s.shape[1].symbol + "'");
      return Val::poison();
    }
    int64_t experts = s.shape[1].size;
    if (*groups < 1 || experts % *groups != 0) {
      error(g->loc, "groups = " + std::to_string(*groups) + " must divide the " + std::to_string(experts) +
                        " experts into equal groups");
      return Val::poison();
    }
    if (*topGroups < 1 || *topGroups > *groups) {
      error(tg->loc, "top_groups = " + std::to_string(*topGroups) +
                         " must be between 1 and "
                         "groups (" +
                         std::to_string(*groups) + ")");
      return Val::poison();
    }
    int64_t reachable = *topGroups * (experts / *groups);
    if (*k < 1 || *k > reachable) {
      error(args.locs[1], "k = " + std::to_string(*k) + " must be between 1 and the " + std::to_string(reachable) +
                              " experts of the " + std::to_string(*topGroups) + " kept groups");
      return Val::poison();
    }
    mlir::Value v = moe::GroupTopKOp::create(builder, l, s.value, *k, *groups, *topGroups);
    Val indices = Val::tensor(v, ElemType::I32, {s.shape[0], Dim{*k, ""}});
    indices.indexRange = experts;
    return indices;
  }

  if (fname == "gather") {
    Val x = args[0], idx = args[1];
    if (!expectRowsAndIndices(fname, args, "the first argument", "the tensor", at))
      return Val::poison();
    mlir::Value v = moe::GatherOp::create(builder, l, x.value, idx.value);
    return Val::tensor(v, x.dtype, {x.shape[0], idx.shape[1]});
  }

  if (fname == "dispatch") {
    Val x = args[0], idx = args[1];
    if (!expectFloatTensor(x, args.locs[0], "the tokens of 'dispatch'", 2) ||
        !expectIndexTensor(idx, args.locs[1], "the expert indices of 'dispatch'") ||
        !sameDim(x.shape[0], idx.shape[0], at, "'dispatch' needs one index row per token"))
      return Val::poison();
    if (!x.shape[1].isStatic()) {
      error(args.locs[0], "'dispatch' needs a static hidden dimension, got '" + x.shape[1].symbol + "'");
      return Val::poison();
    }
    std::optional<double> capacity;
    if (const Keyword *c = kw("capacity"); c && c->value.kind != Val::Kind::Nothing) {
      capacity = expectNumber(c->value, c->loc, "'capacity' (a float factor or nothing)");
      if (!capacity)
        return Val::poison();
      if (!(*capacity > 0.0)) {
        error(c->loc, "capacity = " + formatNumber(*capacity) + " must be a positive factor");
        return Val::poison();
      }
    }
    mlir::Value v = moe::DispatchOp::create(builder, l, x.value, idx.value, idx.indexRange, capacity);
    return makeRouted(v, x, idx.indexRange, idx.shape[1].size, capacity);
  }

  if (fname == "combine") {
    Val y = args[0], w = args[1];
    if (y.kind != Val::Kind::Routed) {
      error(args.locs[0], "'combine' expects the routed value of experts(dispatch(x, e)), got " + describe(y));
      return Val::poison();
    }
    if (!expectFloatTensor(w, args.locs[1], "the weights of 'combine'", 2) ||
        !sameDim(y.shape[0], w.shape[0], at, "'combine' needs one weight row per token"))
      return Val::poison();
    if (w.shape[1] != Dim{y.k, ""}) {
      error(args.locs[1], "'combine' needs k = " + std::to_string(y.k) +
                              " weights per token (one per dispatched expert), got " + str(w.shape));
      return Val::poison();
    }
    mlir::Value v = moe::CombineOp::create(builder, l, y.value, w.value);
    return Val::tensor(v, y.dtype, y.shape);
  }

  if (fname == "load_balance_loss") {
    Val p = args[0], idx = args[1];
    if (!expectRowsAndIndices(fname, args, "the probabilities", "the probabilities", at))
      return Val::poison();
    auto type = toTensorType(ElemType::F32, {}, &context);
    mlir::Value v = moe::LoadBalanceLossOp::create(builder, l, type, p.value, idx.value);
    return Val::tensor(v, ElemType::F32, {});
  }

  if (fname == "z_loss") {
    Val x = args[0];
    if (!expectFloatTensor(x, args.locs[0], "the logits of 'z_loss'", 2))
      return Val::poison();
    auto type = toTensorType(ElemType::F32, {}, &context);
    mlir::Value v = moe::ZLossOp::create(builder, l, type, x.value);
    return Val::tensor(v, ElemType::F32, {});
  }

  if (fname == "rmsnorm") {
    Val x = args[0], w = args[1];
    if (!expectFloatTensor(x, args.locs[0], "the input of 'rmsnorm'", 2) ||
        !expectFloatTensor(w, args.locs[1], "the weight of 'rmsnorm'", 1) ||
        !sameDim(x.shape[1], w.shape[0], at, "'rmsnorm' needs a weight per feature"))
      return Val::poison();
    double eps = 1e-6;
    if (const Keyword *e = kw("eps")) {
      std::optional<double> v = expectNumber(e->value, e->loc, "'eps'");
      if (!v)
        return Val::poison();
      if (!(*v > 0.0)) {
        error(e->loc, "eps must be positive, got " + formatNumber(*v));
        return Val::poison();
      }
      eps = *v;
    }
    ElemType type = promote(x.dtype, w.dtype);
    mlir::Value v = moe::RMSNormOp::create(builder, l, toTensorType(type, x.shape, &context), x.value, w.value,
                                           builder.getF64FloatAttr(eps));
    return Val::tensor(v, type, x.shape);
  }

  error(at, "builtin '" + fname + "' is not implemented");
  return Val::poison();
}
