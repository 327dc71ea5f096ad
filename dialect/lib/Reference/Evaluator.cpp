//===- Evaluator.cpp - float64 reference interpreter of the moe dialect -*- C++ -*-===//
#include "moe/Dialect/MoE/Reference/Evaluator.h"

#include "Interpreter.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mlir;
using namespace moe;
using reference::Tensor;

int64_t Tensor::numElements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

double reference::roundTo(Type type, double value) {
  const llvm::fltSemantics *semantics = nullptr;
  if (type.isF32())
    semantics = &llvm::APFloat::IEEEsingle();
  else if (type.isBF16())
    semantics = &llvm::APFloat::BFloat();
  else if (type.isF16())
    semantics = &llvm::APFloat::IEEEhalf();
  if (!semantics)
    return value;
  llvm::APFloat f(value);
  bool lost;
  f.convert(*semantics, llvm::APFloat::rmNearestTiesToEven, &lost);
  f.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven, &lost);
  return f.convertToDouble();
}

FailureOr<std::vector<Tensor>> reference::evaluate(func::FuncOp fn, ArrayRef<Tensor> args, std::string &error) {
  return detail::Interpreter(error).run(fn, args);
}

FailureOr<std::vector<Tensor>> reference::evaluateExact(func::FuncOp fn, ArrayRef<Tensor> args, std::string &error) {
  return detail::Interpreter(error, /*exact=*/true).run(fn, args);
}
