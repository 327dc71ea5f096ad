//===- Value.cpp - compile-time values of the elaborator --------*- C++ -*-===//
#include "Value.h"

#include "moe/Dialect/MoE/IR/ElementTypes.h"

#include "mlir/IR/BuiltinTypes.h"

#include <cstdio>

using namespace moe::frontend::sema;

llvm::StringRef moe::frontend::sema::name(ElemType t) { return runtime::languageName(dtypeOf(t)); }

std::optional<ElemType> moe::frontend::sema::parseElemType(llvm::StringRef name) {
  if (std::optional<moe_dtype_t> d = runtime::parseLanguageName(std::string_view(name.data(), name.size())))
    return static_cast<ElemType>(*d);
  return std::nullopt;
}

bool moe::frontend::sema::isFloat(ElemType t) { return t != ElemType::I32; }

ElemType moe::frontend::sema::promote(ElemType a, ElemType b) {
  if (a == b)
    return a;
  return ElemType::F32; // f32 is wider than both halves; bf16 with f16 is f32 (Julia)
}

mlir::Type moe::frontend::sema::toMlir(ElemType t, mlir::MLIRContext *context) {
  return moe::elementType(dtypeOf(t), context);
}

std::string moe::frontend::sema::str(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + shape[i].str();
  return s + "]";
}

mlir::RankedTensorType moe::frontend::sema::toTensorType(ElemType t, const Shape &shape, mlir::MLIRContext *context) {
  llvm::SmallVector<int64_t> sizes;
  for (const Dim &d : shape)
    sizes.push_back(d.isStatic() ? d.size : mlir::ShapedType::kDynamic);
  return mlir::RankedTensorType::get(sizes, toMlir(t, context));
}

llvm::StringRef moe::frontend::sema::name(FieldSpec::Kind kind) {
  switch (kind) {
  case FieldSpec::Kind::Param:
    return "Param";
  case FieldSpec::Kind::Dense:
    return "Dense";
  case FieldSpec::Kind::SwiGLU:
    return "SwiGLU";
  case FieldSpec::Kind::GeGLU:
    return "GeGLU";
  case FieldSpec::Kind::MLP:
    return "MLP";
  case FieldSpec::Kind::Experts:
    return "Experts";
  case FieldSpec::Kind::RMSNorm:
    return "RMSNorm";
  }
  return "?";
}

std::string moe::frontend::sema::formatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.10g", value);
  return buffer;
}

std::string moe::frontend::sema::describe(const Val &v) {
  using K = Val::Kind;
  switch (v.kind) {
  case K::Poison:
    return "an invalid value";
  case K::Int:
    return "the integer " + std::to_string(v.i);
  case K::Float:
    return "the number " + formatNumber(v.f);
  case K::Bool:
    return v.b ? "true" : "false";
  case K::Nothing:
    return "nothing";
  case K::Symbol:
    return "the symbol :" + v.s;
  case K::String:
    return "a string";
  case K::DType:
    return "the element type " + name(v.dtype).str();
  case K::Tensor:
    if (v.shape.empty())
      return "a scalar (0-d) " + name(v.dtype).str() + " tensor";
    return "a " + std::to_string(v.shape.size()) + "-d " + name(v.dtype).str() + " tensor " + str(v.shape);
  case K::Routed:
    return "a routed value (" + std::to_string(v.experts) + " experts, k = " + std::to_string(v.k) + ")";
  case K::Tuple:
    return "a tuple of " + std::to_string(v.elements.size()) + " values";
  case K::Pair: {
    auto side = [](const Val &e) {
      if (e.kind == Val::Kind::Int)
        return std::to_string(e.i);
      if (e.kind == Val::Kind::Float)
        return formatNumber(e.f);
      return "(" + describe(e) + ")";
    };
    if (v.elements.size() == 2)
      return "the pair " + side(v.elements[0]) + " => " + side(v.elements[1]);
    return "a pair";
  }
  case K::Spec:
    return "a " + name(v.spec->kind).str() + " field constructor";
  case K::Field:
    return "the " + name(v.field->spec.kind).str() + " field '" + v.field->name + "'";
  case K::Function:
    return "the function '" + v.function->name + "'";
  case K::Builtin:
    return "the builtin function '" + v.s + "'";
  case K::TypeName:
    return "the type '" + v.s + "'";
  }
  return "a value";
}
