//===- Token.h - tokens of the .moe language --------------------*- C++ -*-===//
#ifndef MOE_FRONTEND_TOKEN_H
#define MOE_FRONTEND_TOKEN_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <string>

namespace moe::frontend {

enum class TokenKind {
  // Markers.
  Eof,
  Newline, ///< a statement end (newlines inside brackets or after an operator are not)
  Error,   ///< malformed input; the lexer has reported it

  // Literals and names.
  Identifier,
  Integer,
  Float,
  String,
  DocString,
  Symbol, ///< `:normal`

  // Keywords.
  KwConst,
  KwLayer,
  KwFunction,
  KwEnd,
  KwReturn,
  KwDo,
  KwTrue,
  KwFalse,
  KwNothing,

  // Punctuation.
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Semicolon,
  Dot,        ///< `f.(x)`
  ColonColon, ///< `x::Int`
  Colon,

  // Operators.
  Plus,
  Minus,
  Star,
  Slash,
  Caret,
  DotPlus,
  DotMinus,
  DotStar,
  DotSlash,
  DotCaret,
  Assign,
  Arrow, ///< `=>`
  Equal,
  NotEqual,
  Less,
  LessEqual,
  Greater,
  GreaterEqual,
  AndAnd,
  OrOr,
  Not,
};

/// The spelling used in diagnostics: "'end'", "identifier", "end of file".
llvm::StringRef describe(TokenKind kind);

/// True for operators after which a newline does not end the statement.
bool isBinaryOperator(TokenKind kind);

struct Token {
  TokenKind kind = TokenKind::Eof;
  llvm::StringRef text; ///< the bytes in the source
  std::string value;    ///< decoded contents of strings and docstrings

  llvm::SMLoc loc() const { return llvm::SMLoc::getFromPointer(text.data()); }
  bool is(TokenKind k) const { return kind == k; }
};

} // namespace moe::frontend

#endif // MOE_FRONTEND_TOKEN_H
