//===- Compiler.cpp - a moe layer to an artifact ----------------*- C++ -*-===//
#include "moe/Compiler/Compiler.h"

#include "moe/Compiler/CPUCodeGen.h"
#include "moe/Compiler/GPUCodeGen.h"
#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"

using namespace mlir;
namespace rt = ::moe::runtime;
namespace fe = ::moe::frontend;

void moe::registerCompiler(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  gpu::registerOffloadingLLVMTranslationInterfaceExternalModels(registry);
  // Passes by name: -mlir-print-ir-* and moe-opt replays name them.
  static bool passesRegistered = [] {
    registerAllPasses();
    registerMoETransformsPasses();
    registerMoEConversionPasses();
    return true;
  }();
  (void)passesRegistered;
}

moe::CompileSession::CompileSession(std::unique_ptr<llvm::MemoryBuffer> source, llvm::raw_ostream &diagnostics) {
  buffer = sourceMgr.AddNewSourceBuffer(std::move(source), llvm::SMLoc());
  fe::installCaretDiagnosticPrinter(sourceMgr, diagnostics);
  diags = std::make_unique<fe::Diagnostics>(sourceMgr);
  DialectRegistry registry;
  registerCompiler(registry);
  context = std::make_unique<MLIRContext>(registry);
  fe::registerFrontendDialects(*context);
  // MLIR's diagnostics (verifier, passes) point into the .moe source too.
  mlirDiagnostics = std::make_unique<SourceMgrDiagnosticHandler>(sourceMgr, context.get(), diagnostics);
}

moe::CompileSession::~CompileSession() = default;

const fe::Program *moe::CompileSession::parse() {
  if (!program)
    program = fe::parseSource(*diags, buffer);
  return diags->getNumErrors() == 0 ? &*program : nullptr;
}

OwningOpRef<ModuleOp> moe::CompileSession::elaborate(const fe::ElaborationOptions &options) {
  // Elaborating after syntax errors would only add noise.
  const fe::Program *parsed = parse();
  if (!parsed)
    return nullptr;
  return fe::elaborate(*parsed, *diags, *context, options);
}

LogicalResult moe::compile(ModuleOp module, const CompileOptions &options, rt::Artifact &out, CompileListing *listing) {
  auto layers = module.getOps<func::FuncOp>();
  if (layers.empty())
    return emitError(module.getLoc()) << "the module holds no layer function to compile";
  func::FuncOp layer = *layers.begin();
  if (options.train && options.target.isCuda() && options.mesh.isPlaced())
    return emitError(layer.getLoc())
           << "moec build --train --mesh compiles for the CPU so far (a GPU backward runs on one device); got --target="
           << options.target.artifactName() << " (docs/training.md)";
  if (options.target.isCuda())
    return compileLayerForGPU(module, layer, options, out, listing);
  return compileLayerForCPU(module, layer, options.mesh, options.train, out, listing ? &listing->linkCommand : nullptr,
                            listing ? &listing->llvmIR : nullptr);
}
