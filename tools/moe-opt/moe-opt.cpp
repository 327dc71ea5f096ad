//===- moe-opt.cpp - the moe optimizer driver -------------------*- C++ -*-===//
//
// MlirOptMain with the moe dialect, the dialects a layer is written in, every
// moe pass and pipeline, and the upstream passes the pipelines use. Pass
// plugins are loaded with --load-pass-plugin=<lib.so>.
//
//===----------------------------------------------------------------------===//
#include "moe/Compiler/Pipelines.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerInlinerPass();
  mlir::registerSymbolDCEPass();
  moe::registerMoETransformsPasses();
  moe::registerMoEConversionPasses();
  // The upstream passes the moe-lower-to-* pipelines use.
  mlir::registerAllPasses();
  moe::registerMoEPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary and friends translate to LLVM IR inside passes.
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<moe::MoEDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect, mlir::math::MathDialect,
                  mlir::tensor::TensorDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moe optimizer driver: the moe dialect and its passes\n", registry));
}
