//===- Lexer.h - lexer of the .moe language ---------------------*- C++ -*-===//
//
// Julia's lexical structure: `#` and nested `#= =#` comments, Unicode
// identifiers, `1_000`/`0x1f`/`2.5`/`1e-6`/`3.0f0` numbers, strings and
// docstrings, and newlines that end statements except inside brackets or
// after a binary operator or a comma. Malformed input becomes an Error token
// and a diagnostic (`file:line:col: error: ...` with the line and a caret);
// lexing then resumes, so one run reports several errors.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_LEXER_H
#define MOE_FRONTEND_LEXER_H

#include "moe/Frontend/Token.h"

#include "llvm/Support/SourceMgr.h"

namespace moe::frontend {

class Lexer {
public:
  /// Lexes buffer `bufferId` of `sourceMgr`; diagnostics go through it.
  Lexer(llvm::SourceMgr &sourceMgr, unsigned bufferId);

  Token next();

  unsigned getNumErrors() const { return numErrors; }

  /// Reports `message` at `loc` as an error (and counts it).
  void emitError(llvm::SMLoc loc, const llvm::Twine &message);

private:
  Token make(TokenKind kind, const char *start);
  Token error(const char *start, const llvm::Twine &message);

  /// Skips spaces, comments and the newlines that do not end a statement.
  /// Returns false after reporting an unterminated block comment.
  bool skipTrivia(const char *&newlineAt);
  bool skipBlockComment();

  Token lexIdentifier(const char *start);
  Token lexNumber(const char *start);
  Token lexString(const char *start);
  Token lexOperator(const char *start);

  /// Decodes the UTF-8 sequence at `p` (advancing it), or returns -1 for a
  /// malformed one (leaving `p` past the first byte).
  static int32_t decodeUtf8(const char *&p, const char *end);

  llvm::SourceMgr &sourceMgr;
  const char *cur;
  const char *end;
  int bracketDepth = 0;
  TokenKind lastKind = TokenKind::Newline;
  unsigned numErrors = 0;
};

} // namespace moe::frontend

#endif // MOE_FRONTEND_LEXER_H
