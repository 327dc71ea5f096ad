//===- Elaborator.cpp - declarations, scopes, statements --------*- C++ -*-===//
#include "Elaborator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/SourceMgr.h"

using namespace moe::frontend;
using namespace moe::frontend::sema;
using llvm::SMLoc;

void moe::frontend::registerFrontendDialects(mlir::MLIRContext &context) {
  context
      .loadDialect<moe::MoEDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
}

mlir::OwningOpRef<mlir::ModuleOp> moe::frontend::elaborate(const Program &program, Diagnostics &diags,
                                                           mlir::MLIRContext &context,
                                                           const ElaborationOptions &options) {
  registerFrontendDialects(context);
  Elaborator elaborator(program, diags, context, options);
  return elaborator.run();
}

mlir::OwningOpRef<mlir::ModuleOp> moe::frontend::parseAndElaborate(Diagnostics &diags, unsigned bufferId,
                                                                   mlir::MLIRContext &context,
                                                                   const ElaborationOptions &options) {
  Program program = parseSource(diags, bufferId);
  if (diags.getNumErrors() != 0)
    return nullptr;
  return elaborate(program, diags, context, options);
}

Elaborator::Elaborator(const Program &program, Diagnostics &diags, mlir::MLIRContext &context,
                       const ElaborationOptions &options)
    : builder(&context), program(program), diags(diags), context(context), options(options) {
  builder.setListener(&operationCounter);
}

//===----------------------------------------------------------------------===//
// Diagnostics and locations
//===----------------------------------------------------------------------===//

void Elaborator::error(SMLoc at, const llvm::Twine &message) {
  diags.error(at, message);
  for (auto it = frames.rbegin(); it != frames.rend(); ++it)
    diags.note(it->callLoc, "in the call of '" + it->function->name + "' inlined here");
}

void Elaborator::warning(SMLoc at, const llvm::Twine &message) { diags.warning(at, message); }

void Elaborator::note(SMLoc at, const llvm::Twine &message) { diags.note(at, message); }

mlir::Location Elaborator::loc(SMLoc at) {
  llvm::SourceMgr &sm = diags.getSourceMgr();
  mlir::Location result = mlir::UnknownLoc::get(&context);
  if (unsigned buffer = at.isValid() ? sm.FindBufferContainingLoc(at) : 0) {
    auto [line, col] = sm.getLineAndColumn(at, buffer);
    result = mlir::FileLineColLoc::get(&context, sm.getMemoryBuffer(buffer)->getBufferIdentifier(), line, col);
  }
  if (!frames.empty())
    result = mlir::CallSiteLoc::get(result, frames.back().location);
  return result;
}

//===----------------------------------------------------------------------===//
// Globals: consts and helper functions
//===----------------------------------------------------------------------===//

static bool isReservedName(llvm::StringRef name);

void Elaborator::collectGlobals() {
  for (const auto &fn : program.functions) {
    if (isReservedName(fn->name)) {
      error(fn->loc, "function '" + fn->name + "' would hide the builtin of the same name");
      continue;
    }
    std::vector<const FunctionDecl *> &methods = functions[fn->name];
    const FunctionDecl *same = nullptr;
    for (const FunctionDecl *m : methods)
      if (m->params.size() == fn->params.size())
        same = m;
    if (same) {
      error(fn->loc, "function '" + fn->name + "' with " + std::to_string(fn->params.size()) + " argument" +
                         (fn->params.size() == 1 ? "" : "s") + " is defined twice");
      note(same->loc, "the first definition is here");
      continue;
    }
    methods.push_back(fn.get());
  }
  // Consts may use earlier consts (in source order) and fold at compile time.
  for (const ConstDecl &c : program.consts) {
    if (globals.count(c.name) || functions.count(c.name)) {
      error(c.loc, "'" + c.name + "' is defined twice");
      continue;
    }
    Val v = eval(*c.value);
    if (!v.isPoison() && v.kind != Val::Kind::Int && v.kind != Val::Kind::Float && v.kind != Val::Kind::Bool &&
        v.kind != Val::Kind::DType && v.kind != Val::Kind::Symbol) {
      error(c.value->getLoc(), "a const must be a compile-time number, boolean, symbol or "
                               "element type; got " +
                                   describe(v));
      v = Val::poison();
    }
    globals[c.name] = v;
  }
}

//===----------------------------------------------------------------------===//
// Layers
//===----------------------------------------------------------------------===//

const LayerDecl *Elaborator::selectLayer() {
  if (program.layers.empty()) {
    diags.error(SMLoc(), "the file declares no layer; declare one with 'layer Name ... end'");
    return nullptr;
  }
  if (options.layer.empty())
    return &program.layers.back();
  for (const LayerDecl &l : program.layers)
    if (l.name == options.layer)
      return &l;
  std::string known;
  for (const LayerDecl &l : program.layers)
    known += (known.empty() ? "" : ", ") + l.name;
  diags.error(SMLoc(), "no layer named '" + options.layer + "' in the file (it declares: " + known + ")");
  return nullptr;
}

mlir::OwningOpRef<mlir::ModuleOp> Elaborator::run() {
  module = mlir::ModuleOp::create(mlir::UnknownLoc::get(&context));
  builder.setInsertionPointToEnd(module->getBody());
  collectGlobals();

  // Layers become symbols of one module: their names must be unique.
  unsigned errorsBeforeLayers = diags.getNumErrors();
  llvm::StringMap<const LayerDecl *> layerNames;
  for (const LayerDecl &l : program.layers) {
    auto [it, inserted] = layerNames.try_emplace(l.name, &l);
    if (!inserted) {
      diags.error(l.loc, "layer '" + l.name + "' is declared twice");
      diags.note(it->second->loc, "the first declaration is here");
    }
  }
  if (diags.getNumErrors() != errorsBeforeLayers)
    return nullptr;

  std::vector<const LayerDecl *> layers;
  if (options.allLayers) {
    for (const LayerDecl &l : program.layers)
      layers.push_back(&l);
  } else if (const LayerDecl *l = selectLayer()) {
    layers.push_back(l);
  }
  if (!options.overrides.empty() && options.allLayers && layers.size() > 1)
    diags.error(SMLoc(), "--set needs --layer when the file declares several layers");
  for (const LayerDecl *l : layers)
    elaborateLayer(*l);

  if (diags.getNumErrors() != 0)
    return nullptr;
  // Sema checks everything the verifier does; a failure here is a compiler
  // bug, still reported at the .moe location of the op.
  if (mlir::failed(mlir::verify(*module)))
    return nullptr;
  return std::move(module);
}

std::optional<Val> Elaborator::parseOverride(const Parameter &param, llvm::StringRef text) {
  text = text.trim();
  if (auto t = parseElemType(text))
    return [&] {
      Val v;
      v.kind = Val::Kind::DType;
      v.dtype = *t;
      return v;
    }();
  if (text == "true" || text == "false")
    return Val::boolean(text == "true");
  std::string digits;
  for (char c : text)
    if (c != '_')
      digits += c;
  int64_t i;
  if (!llvm::StringRef(digits).getAsInteger(10, i))
    return Val::integer(i);
  double d;
  std::string floatText = digits;
  for (char &c : floatText)
    if (c == 'f')
      c = 'e';
  if (!llvm::StringRef(floatText).getAsDouble(d) && std::isfinite(d))
    return Val::real(d);
  diags.error(SMLoc(), "--set " + param.name + "=" + text +
                           ": expected an integer, a number, true/false or an element type "
                           "(f32, f16, bf16)");
  return std::nullopt;
}

Val Elaborator::checkHyperParameter(const Parameter &param, Val value, SMLoc at) {
  if (value.isPoison())
    return value;
  llvm::StringRef annotation;
  if (param.type) {
    if (auto *n = llvm::dyn_cast<NameExpr>(param.type.get()))
      annotation = n->name;
    else {
      error(param.type->getLoc(), "a hyperparameter's type must be Int, Float64, Float32 or Bool");
      return Val::poison();
    }
  }
  if (annotation == "Int" || annotation == "Int64" || annotation == "Int32") {
    if (value.kind != Val::Kind::Int) {
      error(at, "hyperparameter '" + param.name + "::" + annotation + "' must be an integer, got " + describe(value));
      return Val::poison();
    }
  } else if (annotation == "Float64" || annotation == "Float32" || annotation == "Float" || annotation == "Real" ||
             annotation == "AbstractFloat") {
    if (!value.isNumber()) {
      error(at, "hyperparameter '" + param.name + "::" + annotation + "' must be a number, got " + describe(value));
      return Val::poison();
    }
    return Val::real(value.asDouble());
  } else if (annotation == "Bool") {
    if (value.kind != Val::Kind::Bool) {
      error(at, "hyperparameter '" + param.name + "::Bool' must be true or false, got " + describe(value));
      return Val::poison();
    }
  } else if (!annotation.empty()) {
    error(param.type->getLoc(), "unknown hyperparameter type '" + annotation + "'; use Int, Float64, Float32 or Bool");
    return Val::poison();
  } else if (!value.isNumber() && value.kind != Val::Kind::Bool && value.kind != Val::Kind::Symbol) {
    error(at, "hyperparameter '" + param.name +
                  "' must be a compile-time number, boolean or "
                  "symbol, got " +
                  describe(value));
    return Val::poison();
  }
  return value;
}

bool Elaborator::bindLayerParameters(const LayerDecl &decl) {
  llvm::StringMap<bool> used;
  auto overrideFor = [&](const Parameter &p) -> const std::string * {
    for (const auto &[name, text] : options.overrides)
      if (name == p.name) {
        used[name] = true;
        return &text;
      }
    return nullptr;
  };
  auto declare = [&](const Parameter &p, Val v) {
    if (layerScope.count(p.name)) {
      error(p.loc, "'" + p.name + "' is declared twice in layer '" + decl.name + "'");
      return;
    }
    layerScope[p.name] = std::move(v);
  };

  for (const Parameter &p : decl.typeParams) {
    if (p.type)
      error(p.type->getLoc(), "type parameters take no annotation: write '" + p.name + " = bf16'");
    Val v;
    if (const std::string *text = overrideFor(p)) {
      std::optional<Val> parsed = parseOverride(p, *text);
      v = parsed ? *parsed : Val::poison();
    } else if (!p.defaultValue) {
      error(p.loc, "type parameter '" + p.name + "' needs a default: '" + p.name + " = bf16'");
    } else {
      v = eval(*p.defaultValue);
    }
    if (!v.isPoison() && (v.kind != Val::Kind::DType || !isFloat(v.dtype))) {
      error(p.defaultValue ? p.defaultValue->getLoc() : p.loc,
            "type parameter '" + p.name + "' must be an element type (f32, f16 or bf16), got " + describe(v));
      v = Val::poison();
    }
    declare(p, v);
  }
  for (const Parameter &p : decl.hyperParams) {
    Val v;
    SMLoc at = p.defaultValue ? p.defaultValue->getLoc() : p.loc;
    if (const std::string *text = overrideFor(p)) {
      std::optional<Val> parsed = parseOverride(p, *text);
      v = parsed ? *parsed : Val::poison();
      at = p.loc;
    } else if (!p.defaultValue) {
      error(p.loc, "hyperparameter '" + p.name + "' needs a default value, e.g. '" + p.name + "::Int = 8'");
    } else {
      v = eval(*p.defaultValue);
    }
    declare(p, checkHyperParameter(p, v, at));
  }
  for (const auto &[name, text] : options.overrides)
    if (!used.count(name)) {
      std::string known;
      for (const Parameter &p : decl.typeParams)
        known += (known.empty() ? "" : ", ") + p.name;
      for (const Parameter &p : decl.hyperParams)
        known += (known.empty() ? "" : ", ") + p.name;
      diags.error(SMLoc(), "--set " + name + ": layer '" + decl.name + "' has no hyperparameter or type parameter '" +
                               name + "'" +
                               (known.empty() ? std::string(" (it has none)") : " (it has: " + known + ")"));
    }
  return true;
}

bool Elaborator::addForwardArgument(const Parameter &param) {
  if (param.defaultValue)
    error(param.defaultValue->getLoc(), "forward argument '" + param.name + "' cannot have a default value");
  auto *index = llvm::dyn_cast_or_null<IndexExpr>(param.type.get());
  CurlyExpr *curly = index ? llvm::dyn_cast<CurlyExpr>(index->base.get()) : nullptr;
  auto *tensorName = curly ? llvm::dyn_cast<NameExpr>(curly->base.get()) : nullptr;
  if (!tensorName || tensorName->name != "Tensor" || curly->params.size() != 1) {
    error(param.type ? param.type->getLoc() : param.loc, "forward argument '" + param.name +
                                                             "' needs a tensor type: '" + param.name +
                                                             "::Tensor{T}[tokens, d_model]'");
    return false;
  }
  Val elt = eval(*curly->params[0]);
  if (elt.isPoison())
    return false;
  if (elt.kind != Val::Kind::DType || !isFloat(elt.dtype)) {
    error(curly->params[0]->getLoc(),
          "the element type of '" + param.name + "' must be f32, f16 or bf16, got " + describe(elt));
    return false;
  }
  Shape shape;
  llvm::SmallVector<mlir::Attribute> dimNames;
  bool ok = true;
  for (const ExprPtr &d : index->indices) {
    // A name that is not a const or hyperparameter is a symbolic dimension.
    if (auto *n = llvm::dyn_cast<NameExpr>(d.get()); n && !layerScope.count(n->name) && !globals.count(n->name)) {
      shape.push_back(Dim{0, n->name});
      dimNames.push_back(builder.getStringAttr(n->name));
      continue;
    }
    Val v = eval(*d);
    if (v.isPoison()) {
      ok = false;
      continue;
    }
    if (v.kind != Val::Kind::Int || v.i <= 0) {
      error(d->getLoc(), "a dimension must be a positive integer or a symbolic name like "
                         "'tokens', got " +
                             describe(v));
      ok = false;
      continue;
    }
    shape.push_back(Dim{v.i, ""});
    dimNames.push_back(builder.getStringAttr(""));
  }
  if (!ok)
    return false;
  if (shape.empty()) {
    error(index->getLoc(), "forward argument '" + param.name + "' needs at least one dimension");
    return false;
  }
  mlir::Block &body = func.getBody().front();
  mlir::Value arg = body.addArgument(toTensorType(elt.dtype, shape, &context), loc(param.loc));
  mlir::NamedAttrList attrs;
  attrs.set(moe::MoEDialect::getInputAttrName(), builder.getStringAttr(param.name));
  attrs.set(moe::MoEDialect::getDimsAttrName(), builder.getArrayAttr(dimNames));
  argAttrs.push_back(attrs);
  if (!firstInputType)
    firstInputType = elt.dtype;
  if (layerScope.count(param.name)) {
    error(param.loc, "forward argument '" + param.name +
                         "' hides a field or hyperparameter "
                         "of the same name");
    return false;
  }
  layerScope[param.name] = Val::tensor(arg, elt.dtype, shape);
  forwardArgNames.insert(param.name);
  return true;
}

bool Elaborator::elaborateLayer(const LayerDecl &decl) {
  unsigned errorsBefore = diags.getNumErrors();
  layer = &decl;
  layerScope.clear();
  forwardArgNames.clear();
  fields.clear();
  argAttrs.clear();
  firstInputType.reset();

  builder.setInsertionPointToEnd(module->getBody());
  func = mlir::func::FuncOp::create(builder, loc(decl.loc), decl.name, builder.getFunctionType({}, {}));
  mlir::Block *body = func.addEntryBlock();

  bindLayerParameters(decl);

  // Forward arguments first (they are the function's leading arguments), then
  // the fields' parameters in declaration order.
  if (!decl.forward) {
    error(decl.loc, "layer '" + decl.name +
                        "' has no forward method 'function (x::Tensor{T}"
                        "[tokens, d]) ... end'");
  } else {
    for (const Parameter &p : decl.forward->keywordParams)
      error(p.loc,
            "the forward method takes no keyword arguments; make '" + p.name + "' a hyperparameter of the layer");
    for (const Parameter &p : decl.forward->params)
      if (!addForwardArgument(p) && !layerScope.count(p.name)) {
        // Reported already: uses of the argument stay quiet.
        layerScope[p.name] = Val::poison();
        forwardArgNames.insert(p.name);
      }
    if (decl.forward->params.empty())
      error(decl.forward->loc, "the forward method needs at least one tensor argument");
  }
  builder.setInsertionPointToEnd(body);
  for (const FieldDecl &f : decl.fields) {
    if (layerScope.count(f.name)) {
      error(f.loc, "field '" + f.name +
                       "' has the name of a hyperparameter, argument or "
                       "another field");
      continue;
    }
    inFieldConstructor = true;
    Val spec = eval(*f.constructor);
    inFieldConstructor = false;
    if (spec.isPoison()) {
      layerScope[f.name] = spec;
      continue;
    }
    if (spec.kind != Val::Kind::Spec) {
      error(f.constructor->getLoc(), "field '" + f.name +
                                         "' must be built by Param, Dense, SwiGLU, GeGLU, MLP, Experts "
                                         "or RMSNorm, got " +
                                         describe(spec));
      layerScope[f.name] = Val::poison();
      continue;
    }
    Field &field = fields.emplace_back();
    field.name = f.name;
    field.loc = f.loc;
    field.spec = *spec.spec;
    materializeField(field);
    Val v;
    if (field.spec.kind == FieldSpec::Kind::Param) {
      v = *field.params.at("");
    } else {
      v.kind = Val::Kind::Field;
      v.field = &field;
    }
    layerScope[f.name] = v;
  }

  bool returned = false;
  if (decl.forward) {
    locals.assign(1, {});
    returnLoc = decl.forward->loc;
    Val result = execBody(decl.forward->body, /*isForward=*/true, decl.forward->loc);
    if (!result.isPoison() && result.kind != Val::Kind::Nothing)
      returned = emitReturn(result, returnLoc);
  }

  // A layer that failed — with its own errors, or silently on values poisoned
  // by earlier errors (a bad const, say) — has no valid function: drop it.
  if (diags.getNumErrors() != errorsBefore || !returned) {
    func.erase();
    return false;
  }
  keepRoutingInF32(func);
  for (auto [i, attrs] : llvm::enumerate(argAttrs))
    func.setArgAttrs(i, attrs.getDictionary(&context));
  if (!decl.doc.empty())
    func->setAttr(moe::MoEDialect::getDescriptionAttrName(), builder.getStringAttr(decl.doc));
  llvm::SmallVector<mlir::NamedAttribute> hyper;
  auto record = [&](const Parameter &p) {
    const Val &v = layerScope[p.name];
    mlir::Attribute a;
    switch (v.kind) {
    case Val::Kind::Int:
      a = builder.getI64IntegerAttr(v.i);
      break;
    case Val::Kind::Float:
      a = builder.getF64FloatAttr(v.f);
      break;
    case Val::Kind::Bool:
      a = builder.getBoolAttr(v.b);
      break;
    case Val::Kind::Symbol:
      a = builder.getStringAttr(v.s);
      break;
    case Val::Kind::DType:
      a = mlir::TypeAttr::get(toMlir(v.dtype, &context));
      break;
    default:
      return;
    }
    hyper.push_back(builder.getNamedAttr(p.name, a));
  };
  llvm::for_each(decl.typeParams, record);
  llvm::for_each(decl.hyperParams, record);
  func->setAttr(moe::MoEDialect::getHyperparametersAttrName(), builder.getDictionaryAttr(hyper));
  return true;
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

Val Elaborator::execBody(const std::vector<Stmt> &body, bool isForward, SMLoc fnLoc) {
  Val last;
  last.kind = Val::Kind::Nothing;
  bool returned = false;
  for (const Stmt &stmt : body) {
    if (returned) {
      warning(stmt.loc, "this statement is never reached: it follows a 'return'");
      break;
    }
    switch (stmt.kind) {
    case Stmt::Kind::Assign: {
      Val v = eval(*stmt.value);
      assign(stmt.target, v, stmt.value->getLoc());
      last = v;
      break;
    }
    case Stmt::Kind::Return:
      if (isForward) // a helper's return is not the layer's: errors point at the forward's
        returnLoc = stmt.loc;
      if (stmt.value)
        last = eval(*stmt.value);
      else
        last.kind = Val::Kind::Nothing;
      returned = true;
      break;
    case Stmt::Kind::Expression:
      last = eval(*stmt.value);
      break;
    }
  }
  if (isForward && !last.isPoison() && last.kind == Val::Kind::Nothing)
    error(fnLoc, "the forward method of layer '" + layer->name + "' returns nothing; end it with 'return <tensor>'");
  return last;
}

void Elaborator::assign(const Target &target, Val value, SMLoc at) {
  if (!target.isTuple()) {
    if (target.name == "_")
      return;
    if (frames.empty()) {
      auto it = layerScope.find(target.name);
      if (it != layerScope.end() && !it->second.isTensor()) {
        error(target.loc, "cannot assign to '" + target.name + "': it is " + describe(it->second) + " of layer '" +
                              layer->name + "'");
        return;
      }
      if (it != layerScope.end() && !forwardArgNames.count(target.name)) {
        error(target.loc, "cannot assign to '" + target.name + "': it is a parameter of layer '" + layer->name + "'");
        return;
      }
    }
    locals.back()[target.name] = std::move(value);
    return;
  }
  if (value.isPoison()) {
    for (const Target &t : target.elements)
      assign(t, Val::poison(), at);
    return;
  }
  if (value.kind != Val::Kind::Tuple) {
    error(at, "cannot destructure " + describe(value) + " into " + std::to_string(target.elements.size()) + " names");
    for (const Target &t : target.elements)
      assign(t, Val::poison(), at);
    return;
  }
  if (value.elements.size() != target.elements.size()) {
    error(target.loc,
          "cannot destructure " + describe(value) + " into " + std::to_string(target.elements.size()) + " names");
    for (const Target &t : target.elements)
      assign(t, Val::poison(), at);
    return;
  }
  for (size_t i = 0; i < target.elements.size(); ++i)
    assign(target.elements[i], value.elements[i], at);
}

bool Elaborator::emitReturn(const Val &result, SMLoc at) {
  std::vector<Val> values = result.kind == Val::Kind::Tuple ? result.elements : std::vector<Val>{result};
  llvm::SmallVector<mlir::Value> operands;
  llvm::SmallVector<mlir::Attribute> resultDims;
  for (Val v : values) {
    if (v.isPoison())
      return false;
    if (v.isNumber())
      v = scalarTensor(v.asDouble(), ElemType::F32, at);
    if (v.kind == Val::Kind::Routed) {
      error(at, "the forward method returns a routed value; apply the experts and "
                "'combine(y, w)' it back to [tokens, d] first");
      return false;
    }
    if (!v.isTensor()) {
      error(at, "the forward method must return tensors, got " + describe(v));
      return false;
    }
    if (v.dtype == ElemType::I32) {
      // Indices are 0-based in the IR and 1-based in the language.
      mlir::Location l = loc(at);
      auto type = llvm::cast<mlir::RankedTensorType>(v.value.getType());
      mlir::Value one = mlir::arith::ConstantOp::create(builder, l, builder.getI32IntegerAttr(1));
      mlir::Value ones = mlir::tensor::SplatOp::create(builder, l, type, one, [&] {
        llvm::SmallVector<mlir::Value> dyn;
        for (auto [i, d] : llvm::enumerate(type.getShape()))
          if (mlir::ShapedType::isDynamic(d))
            dyn.push_back(mlir::tensor::DimOp::create(builder, l, v.value, i));
        return dyn;
      }());
      v.value = mlir::arith::AddIOp::create(builder, l, v.value, ones);
    } else if (firstInputType) {
      v = convert(v, promote(*firstInputType, v.dtype), at);
    }
    operands.push_back(v.value);
    llvm::SmallVector<mlir::Attribute> names;
    for (const Dim &d : v.shape)
      names.push_back(builder.getStringAttr(d.symbol));
    resultDims.push_back(builder.getArrayAttr(names));
  }
  mlir::func::ReturnOp::create(builder, loc(at), operands);
  llvm::SmallVector<mlir::Type> argTypes(func.getBody().front().getArgumentTypes());
  func.setType(builder.getFunctionType(argTypes, mlir::ValueRange(operands).getTypes()));
  // Each result's dimension names ("tokens" or "" for static), for the artifact's signature.
  for (auto [i, dims] : llvm::enumerate(resultDims))
    func.setResultAttr(i, moe::MoEDialect::getDimsAttrName(), dims);
  return true;
}

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

static const char *const kTypeNames[] = {"Param",   "Dense",  "SwiGLU", "GeGLU",   "MLP",     "Experts",
                                         "RMSNorm", "Tensor", "Int",    "Float64", "Float32", "Bool"};

static bool isReservedName(llvm::StringRef name) {
  if (isBuiltinFunctionName(name) || parseElemType(name))
    return true;
  for (const char *t : kTypeNames)
    if (name == t)
      return true;
  return false;
}

std::vector<std::string> Elaborator::visibleNames() {
  std::vector<std::string> names;
  if (!locals.empty())
    for (const auto &e : locals.back())
      names.push_back(e.getKey().str());
  if (frames.empty())
    for (const auto &e : layerScope)
      names.push_back(e.getKey().str());
  for (const auto &e : globals)
    names.push_back(e.getKey().str());
  for (const auto &e : functions)
    names.push_back(e.getKey().str());
  return names;
}

Val Elaborator::lookup(const NameExpr &n) {
  if (n.name == "_") {
    error(n.getLoc(), "'_' discards a value and cannot be read");
    return Val::poison();
  }
  if (!locals.empty()) {
    auto it = locals.back().find(n.name);
    if (it != locals.back().end())
      return it->second;
  }
  if (frames.empty()) {
    auto it = layerScope.find(n.name);
    if (it != layerScope.end())
      return it->second;
  }
  if (auto it = globals.find(n.name); it != globals.end())
    return it->second;
  if (auto it = functions.find(n.name); it != functions.end() && !it->second.empty()) {
    Val v;
    v.kind = Val::Kind::Function;
    v.s = n.name;
    v.function = it->second.front(); // the method is chosen by arity at the call
    return v;
  }
  if (auto t = parseElemType(n.name)) {
    Val v;
    v.kind = Val::Kind::DType;
    v.dtype = *t;
    return v;
  }
  if (isBuiltinFunctionName(n.name)) {
    Val v;
    v.kind = Val::Kind::Builtin;
    v.s = n.name;
    return v;
  }
  for (const char *t : kTypeNames)
    if (n.name == t) {
      Val v;
      v.kind = Val::Kind::TypeName;
      v.s = n.name;
      return v;
    }
  // Suggest the closest visible name, if it is close for the name's length.
  std::string best;
  unsigned bestDistance = std::min<unsigned>(3, n.name.size() / 3 + 1);
  for (const std::string &candidate : visibleNames()) {
    unsigned d = llvm::StringRef(candidate).edit_distance(n.name, true, bestDistance);
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  if (!frames.empty() && layerScope.count(n.name))
    error(n.getLoc(), "'" + n.name + "' belongs to layer '" + layer->name +
                          "' and is not visible inside helper function '" + frames.back().function->name +
                          "'; pass it as an argument");
  else
    error(n.getLoc(),
          "undefined name '" + n.name + "'" + (best.empty() ? std::string() : "; did you mean '" + best + "'?"));
  return Val::poison();
}
