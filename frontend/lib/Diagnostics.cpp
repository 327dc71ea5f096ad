//===- Diagnostics.cpp - error reporting of the frontend --------*- C++ -*-===//
#include "moe/Frontend/Diagnostics.h"

#include "llvm/Support/ConvertUTF.h" // getNumBytesForUTF8
#include "llvm/Support/Unicode.h"
#include "llvm/Support/raw_ostream.h"

using namespace moe::frontend;

void Diagnostics::error(llvm::SMLoc loc, const llvm::Twine &message) {
  ++numErrors;
  lastPrinted = getNumErrors() <= kMaxPrintedErrors;
  if (lastPrinted)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Error, message);
  else if (getNumErrors() == kMaxPrintedErrors + 1)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Note, "too many errors; the rest are not shown");
}

void Diagnostics::warning(llvm::SMLoc loc, const llvm::Twine &message) {
  lastPrinted = true;
  sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Warning, message);
}

void Diagnostics::note(llvm::SMLoc loc, const llvm::Twine &message) {
  if (lastPrinted)
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Note, message);
}

namespace {
/// Renders a source line for a terminal and the caret line under byte
/// `column`: valid UTF-8 is kept (with its display width), tabs stay tabs,
/// other control bytes print as a space and malformed bytes as '?'.
void printSourceAndCaret(llvm::raw_ostream &os, llvm::StringRef line, unsigned column) {
  std::string shown, caret;
  size_t i = 0;
  bool caretPlaced = false;
  while (i < line.size()) {
    if (i >= column && !caretPlaced) {
      caret += '^';
      caretPlaced = true;
    }
    unsigned char c = static_cast<unsigned char>(line[i]);
    size_t length = c < 0x80 ? 1 : llvm::getNumBytesForUTF8(c);
    llvm::StringRef piece = line.substr(i, length);
    bool valid = length >= 1 && i + length <= line.size();
    for (size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80;
    std::string text;
    int width;
    if (c == '\t') {
      text = "\t";
      width = -1;
    } else if (c < 0x20 || c == 0x7f) {
      text = " ";
      width = 1;
    } else if (!valid) {
      text = "?";
      width = 1;
      length = 1;
    } else {
      text = piece.str();
      width = llvm::sys::unicode::columnWidthUTF8(piece);
      if (width < 0) {
        text = "?";
        width = 1;
      }
    }
    shown += text;
    if (!caretPlaced)
      caret += width < 0 ? std::string("\t") : std::string(static_cast<size_t>(width), ' ');
    i += length;
  }
  if (!caretPlaced)
    caret += '^';
  os << shown << "\n" << caret << "\n";
}
} // namespace

void moe::frontend::installCaretDiagnosticPrinter(llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os) {
  sourceMgr.setDiagHandler(
      [](const llvm::SMDiagnostic &d, void *context) {
        auto &out = *static_cast<llvm::raw_ostream *>(context);
        if (!d.getLoc().isValid() || d.getFilename() == "<unknown>") {
          out << "moec: "; // about the command line, not a place in a file
        } else if (!d.getFilename().empty()) {
          out << d.getFilename();
          if (d.getLineNo() > 0)
            out << ":" << d.getLineNo() << ":" << (d.getColumnNo() + 1);
          out << ": ";
        }
        switch (d.getKind()) {
        case llvm::SourceMgr::DK_Error:
          out << "error: ";
          break;
        case llvm::SourceMgr::DK_Warning:
          out << "warning: ";
          break;
        case llvm::SourceMgr::DK_Remark:
          out << "remark: ";
          break;
        case llvm::SourceMgr::DK_Note:
          out << "note: ";
          break;
        }
        out << d.getMessage() << "\n";
        if (d.getLineNo() > 0 && d.getColumnNo() >= 0)
          printSourceAndCaret(out, d.getLineContents(), static_cast<unsigned>(d.getColumnNo()));
        out.flush();
      },
      &os);
}
