//===- Diagnostics.h - error reporting of the frontend ----------*- C++ -*-===//
//
// Every frontend diagnostic goes through here: `file:line:col: error: ...`,
// the source line and a caret (llvm::SourceMgr's format). Errors are counted
// so a driver can exit 1, and capped so a garbage file cannot flood the
// terminal.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_DIAGNOSTICS_H
#define MOE_FRONTEND_DIAGNOSTICS_H

#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"

namespace moe::frontend {

class Diagnostics {
public:
  /// After this many errors, further ones are counted but not printed.
  static constexpr unsigned kMaxPrintedErrors = 25;

  explicit Diagnostics(llvm::SourceMgr &sourceMgr) : sourceMgr(sourceMgr) {}

  void error(llvm::SMLoc loc, const llvm::Twine &message);
  void warning(llvm::SMLoc loc, const llvm::Twine &message);
  /// A note attached to the previous error or warning (dropped with it if
  /// that one was not printed).
  void note(llvm::SMLoc loc, const llvm::Twine &message);

  /// Errors reported here plus `extra` (e.g. the lexer's own count).
  unsigned getNumErrors() const { return numErrors + extraErrors; }
  void addExternalErrors(unsigned n) { extraErrors += n; }

  llvm::SourceMgr &getSourceMgr() { return sourceMgr; }

private:
  llvm::SourceMgr &sourceMgr;
  unsigned numErrors = 0;
  unsigned extraErrors = 0;
  bool lastPrinted = true;
};

/// Makes `sourceMgr` print every diagnostic (the frontend's and MLIR's) as
/// `file:line:col: kind: message`, the source line and a caret under the
/// column, also on lines with non-ASCII text (which llvm::SourceMgr prints
/// without a caret) or with control bytes (shown as spaces or '?').
void installCaretDiagnosticPrinter(llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os);

} // namespace moe::frontend

#endif // MOE_FRONTEND_DIAGNOSTICS_H
