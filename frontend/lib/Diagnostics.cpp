//===- Diagnostics.cpp - error reporting of the frontend --------*- C++ -*-===//
#include "moe/Frontend/Diagnostics.h"

using namespace moe::frontend;

void Diagnostics::error(llvm::SMLoc loc, const llvm::Twine &message) {
  ++numErrors;
  lastPrinted = getNumErrors() <= kMaxPrintedErrors;
  if (lastPrinted)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Error, message);
  else if (getNumErrors() == kMaxPrintedErrors + 1)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Note,
                           "too many errors; the rest are not shown");
}

void Diagnostics::warning(llvm::SMLoc loc, const llvm::Twine &message) {
  lastPrinted = true;
  sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Warning, message);
}

void Diagnostics::note(llvm::SMLoc loc, const llvm::Twine &message) {
  if (lastPrinted)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Note, message);
}
