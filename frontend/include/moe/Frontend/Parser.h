//===- Parser.h - parser of the .moe language -------------------*- C++ -*-===//
//
// A recursive-descent parser with Julia's operator precedence. Syntax errors
// are reported through Diagnostics; the parser then skips to the next line
// and goes on, so one run reports every independent error. Nesting deeper
// than kMaxNesting is an error, not a stack overflow.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FRONTEND_PARSER_H
#define MOE_FRONTEND_PARSER_H

#include "moe/Frontend/AST.h"
#include "moe/Frontend/Diagnostics.h"
#include "moe/Frontend/Lexer.h"

#include <optional>

namespace moe::frontend {

class Parser {
public:
  static constexpr unsigned kMaxNesting = 256;

  Parser(Diagnostics &diags, unsigned bufferId);

  /// Parses the whole buffer. The program holds every declaration that
  /// parsed; check `diags.getNumErrors()` for failure.
  Program parseProgram();

private:
  // Tokens.
  const Token &peekNext();
  void advance();
  bool consumeIf(TokenKind kind);
  bool expect(TokenKind kind, llvm::StringRef context);
  void skipNewlines();
  /// Error recovery: skips to the end of the current line.
  void skipLine();
  /// Reports an error unless one was already reported here; returns whether
  /// it was reported (so a note can follow it).
  bool error(llvm::SMLoc loc, const llvm::Twine &message);
  bool errorHere(const llvm::Twine &message);

  // Declarations.
  std::string takeDocString();
  bool parseConst(Program &program, std::string doc);
  bool parseLayer(Program &program, std::string doc);
  std::unique_ptr<FunctionDecl> parseFunction(std::string doc, bool anonymous);
  bool parseShortFunction(Program &program, std::string doc);
  bool parseParameters(TokenKind close, std::vector<Parameter> &params, std::vector<Parameter> *keywordParams);
  std::optional<Parameter> parseParameter();
  bool parseBody(std::vector<Stmt> &body, llvm::SMLoc openLoc, llvm::StringRef what);

  // Statements.
  /// Skips an unsupported block statement up to its matching `end`.
  void skipBlock();
  std::optional<Stmt> parseStatement();
  bool toTarget(ExprPtr expr, Target &target);

  // Expressions, loosest binding first.
  ExprPtr parseExprList(); ///< `a, b, c` as a tuple (or one expression)
  ExprPtr parseExpr();
  ExprPtr parseBinary(int minPrecedence);
  ExprPtr parseUnary();
  ExprPtr parsePower();
  ExprPtr parsePostfix();
  ExprPtr parsePrimary();
  ExprPtr parseNumber();
  /// Comma-separated expressions up to and including `close`.
  bool parseExprsUntil(TokenKind close, llvm::StringRef separatorContext, std::vector<ExprPtr> &out);
  bool parseCallArguments(std::vector<ExprPtr> &args, std::vector<KeywordArg> &keywords);
  /// At `name =`: a layer field or a keyword argument.
  bool atNamedValue();
  /// Reads `name = expr` (at atNamedValue) into a field or keyword argument;
  /// the value is null after an error, which is reported.
  template <typename Named> Named parseNamedValue(ExprPtr Named::*value);

  Diagnostics &diags;
  Lexer lexer;
  Token tok;
  std::optional<Token> lookahead;
  llvm::SMLoc lastErrorLoc;
  unsigned nesting = 0;
  bool nestingReported = false;
};

/// Parses `buffer` (registered with `sourceMgr`) into a program.
Program parseSource(Diagnostics &diags, unsigned bufferId);

} // namespace moe::frontend

#endif // MOE_FRONTEND_PARSER_H
