//===- HostLibrary.cpp - a lowered layer as a host shared object -*- C++ -*-===//
#include "moe/Compiler/HostLibrary.h"

#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"

using namespace mlir;

namespace {

/// Adds `void moe_entry_<layer>(void **args)` calling `_mlir_ciface_<layer>`
/// with args[0] (the results) and args[1..] (one descriptor per argument).
LogicalResult addEntryPoint(llvm::Module &module, StringRef layer, std::string &entryName) {
  llvm::Function *ciface = module.getFunction(("_mlir_ciface_" + layer).str());
  if (!ciface)
    return failure();
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrType = llvm::PointerType::getUnqual(ctx);
  entryName = ("moe_entry_" + layer).str();
  auto *fn = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrType}, false),
                                    llvm::Function::ExternalLinkage, entryName, module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
  llvm::SmallVector<llvm::Value *> args;
  for (unsigned i = 0; i < ciface->arg_size(); ++i) {
    llvm::Value *slot = b.CreateConstGEP1_64(ptrType, fn->getArg(0), i);
    args.push_back(b.CreateLoad(ptrType, slot));
  }
  b.CreateCall(ciface, args);
  b.CreateRetVoid();
  return success();
}

} // namespace

LogicalResult moe::buildHostLibrary(ModuleOp module, StringRef layerName, Location loc, std::string &entry,
                                    std::vector<uint8_t> &library, std::string *commandLog, std::string *llvmIR,
                                    std::string *backwardEntry, std::string *trainEntry) {
  // The moe.* argument attributes documented the signature; LLVM has no use for them.
  module.walk([](FunctionOpInterface fn) {
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      for (NamedAttribute a : fn.getArgAttrs(i))
        if (a.getName().getValue().starts_with("moe."))
          fn.removeArgAttr(i, a.getName());
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      for (NamedAttribute a : fn.getResultAttrs(i))
        if (a.getName().getValue().starts_with("moe."))
          fn.removeResultAttr(i, a.getName());
  });

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule = translateModuleToLLVMIR(module, llvmContext, layerName);
  if (!llvmModule)
    return emitError(loc) << "translation to LLVM IR failed";
  if (failed(addEntryPoint(*llvmModule, layerName, entry)))
    return emitError(loc) << "the lowered layer has no C interface _mlir_ciface_" << layerName;
  if (backwardEntry && failed(addEntryPoint(*llvmModule, (layerName + "_backward").str(), *backwardEntry)))
    return emitError(loc) << "the lowered layer has no C interface _mlir_ciface_" << layerName << "_backward";
  if (trainEntry && failed(addEntryPoint(*llvmModule, (layerName + "_train").str(), *trainEntry)))
    return emitError(loc) << "the lowered layer has no C interface _mlir_ciface_" << layerName << "_train";

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple("x86_64-unknown-linux-gnu");
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return emitError(loc) << "no x86-64 code generator: " << error;
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, "x86-64-v2", "", options, llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());
  if (llvm::verifyModule(*llvmModule, &llvm::errs()))
    return emitError(loc) << "the generated LLVM IR does not verify";

  // O3, as clang would.
  {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(machine.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(*llvmModule, mam);
  }
  if (llvmIR) {
    llvm::raw_string_ostream os(*llvmIR);
    llvmModule->print(os, nullptr);
  }

  // Object file, then a shared object through the system linker.
  llvm::SmallString<128> objectPath, libraryPath;
  int objectFd;
  if (llvm::sys::fs::createTemporaryFile("moe-layer", "o", objectFd, objectPath))
    return emitError(loc) << "cannot create a temporary file";
  {
    llvm::raw_fd_ostream os(objectFd, /*shouldClose=*/true);
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, os, nullptr, llvm::CodeGenFileType::ObjectFile))
      return emitError(loc) << "the x86-64 target cannot emit an object file";
    codegen.run(*llvmModule);
  }
  llvm::sys::fs::createTemporaryFile("moe-layer", "so", libraryPath);
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(objectPath);
    llvm::sys::fs::remove(libraryPath);
  });
  llvm::ErrorOr<std::string> linker = llvm::sys::findProgramByName("ld");
  if (!linker)
    return emitError(loc) << "no system linker 'ld' on PATH (install binutils)";
  llvm::SmallVector<llvm::StringRef> argv{*linker, "-shared", "-o", libraryPath, objectPath};
  std::string command;
  for (llvm::StringRef a : argv)
    command += (command.empty() ? "" : " ") + a.str();
  if (commandLog)
    *commandLog = command;
  std::string linkError;
  if (llvm::sys::ExecuteAndWait(*linker, argv, std::nullopt, {}, 0, 0, &linkError) != 0)
    return emitError(loc) << "linking the layer failed: " << linkError << "\n  command: " << command;
  auto linked = llvm::MemoryBuffer::getFile(libraryPath);
  if (!linked)
    return emitError(loc) << "cannot read the linked layer " << libraryPath;
  library.assign((*linked)->getBufferStart(), (*linked)->getBufferEnd());
  return success();
}
