//===- FrontendFuzzer.cpp - libFuzzer target for the .moe frontend -*- C++ -*-===//
//
// Feeds arbitrary bytes through the lexer, the parser and Sema (every layer,
// as `moec check` does). The frontend must never crash, hang or trip a
// sanitizer, and must never accept a program whose IR fails to verify: when
// Sema reports no error but returns no module, the verifier rejected its
// output, which is a Sema bug, so the fuzzer aborts.
//
//   build/bin/moe-frontend-fuzzer frontend/fuzz/corpus -dict=frontend/fuzz/moe.dict
//
//===----------------------------------------------------------------------===//
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // The context interns every type and attribute it sees; a fresh one every
  // few thousand inputs keeps the fuzzer's memory flat.
  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned runs = 0;
  if (!context || ++runs % 2000 == 0) {
    context = std::make_unique<mlir::MLIRContext>(mlir::MLIRContext::Threading::DISABLED);
    moe::frontend::registerFrontendDialects(*context);
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.setDiagHandler([](const llvm::SMDiagnostic &, void *) {});
  unsigned buffer = sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.moe"),
      llvm::SMLoc());
  moe::frontend::Diagnostics diags(sourceMgr);
  moe::frontend::Program program = moe::frontend::parseSource(diags, buffer);
  if (diags.getNumErrors() != 0)
    return 0;

  bool verifierFailed = false;
  mlir::ScopedDiagnosticHandler handler(context.get(), [&](mlir::Diagnostic &d) {
    verifierFailed = true;
    std::fprintf(stderr, "verifier: %s\n", d.str().c_str());
    return mlir::success();
  });
  moe::frontend::ElaborationOptions options;
  options.allLayers = true;
  auto module = moe::frontend::elaborate(program, diags, *context, options);
  if (!module && diags.getNumErrors() == 0 && verifierFailed) {
    std::fprintf(stderr, "Sema accepted a program whose IR does not verify\n");
    std::abort();
  }
  return 0;
}
