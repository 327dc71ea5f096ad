//===- Token.cpp - token names ----------------------------------*- C++ -*-===//
#include "moe/Frontend/Token.h"

using namespace moe::frontend;

llvm::StringRef moe::frontend::describe(TokenKind kind) {
  switch (kind) {
  case TokenKind::Eof:
    return "end of file";
  case TokenKind::Newline:
    return "end of line";
  case TokenKind::Error:
    return "invalid token";
  case TokenKind::Identifier:
    return "identifier";
  case TokenKind::Integer:
    return "integer";
  case TokenKind::Float:
    return "number";
  case TokenKind::String:
    return "string";
  case TokenKind::DocString:
    return "docstring";
  case TokenKind::Symbol:
    return "symbol";
  case TokenKind::KwConst:
    return "'const'";
  case TokenKind::KwLayer:
    return "'layer'";
  case TokenKind::KwFunction:
    return "'function'";
  case TokenKind::KwEnd:
    return "'end'";
  case TokenKind::KwReturn:
    return "'return'";
  case TokenKind::KwDo:
    return "'do'";
  case TokenKind::KwTrue:
    return "'true'";
  case TokenKind::KwFalse:
    return "'false'";
  case TokenKind::KwNothing:
    return "'nothing'";
  case TokenKind::LParen:
    return "'('";
  case TokenKind::RParen:
    return "')'";
  case TokenKind::LBracket:
    return "'['";
  case TokenKind::RBracket:
    return "']'";
  case TokenKind::LBrace:
    return "'{'";
  case TokenKind::RBrace:
    return "'}'";
  case TokenKind::Comma:
    return "','";
  case TokenKind::Semicolon:
    return "';'";
  case TokenKind::Dot:
    return "'.'";
  case TokenKind::ColonColon:
    return "'::'";
  case TokenKind::Colon:
    return "':'";
  case TokenKind::Plus:
    return "'+'";
  case TokenKind::Minus:
    return "'-'";
  case TokenKind::Star:
    return "'*'";
  case TokenKind::Slash:
    return "'/'";
  case TokenKind::Caret:
    return "'^'";
  case TokenKind::DotPlus:
    return "'.+'";
  case TokenKind::DotMinus:
    return "'.-'";
  case TokenKind::DotStar:
    return "'.*'";
  case TokenKind::DotSlash:
    return "'./'";
  case TokenKind::DotCaret:
    return "'.^'";
  case TokenKind::Assign:
    return "'='";
  case TokenKind::Arrow:
    return "'=>'";
  case TokenKind::Equal:
    return "'=='";
  case TokenKind::NotEqual:
    return "'!='";
  case TokenKind::Less:
    return "'<'";
  case TokenKind::LessEqual:
    return "'<='";
  case TokenKind::Greater:
    return "'>'";
  case TokenKind::GreaterEqual:
    return "'>='";
  case TokenKind::AndAnd:
    return "'&&'";
  case TokenKind::OrOr:
    return "'||'";
  case TokenKind::Not:
    return "'!'";
  }
  return "token";
}

bool moe::frontend::isBinaryOperator(TokenKind kind) {
  switch (kind) {
  case TokenKind::Plus:
  case TokenKind::Minus:
  case TokenKind::Star:
  case TokenKind::Slash:
  case TokenKind::Caret:
  case TokenKind::DotPlus:
  case TokenKind::DotMinus:
  case TokenKind::DotStar:
  case TokenKind::DotSlash:
  case TokenKind::DotCaret:
  case TokenKind::Assign:
  case TokenKind::Arrow:
  case TokenKind::Equal:
  case TokenKind::NotEqual:
  case TokenKind::Less:
  case TokenKind::LessEqual:
  case TokenKind::Greater:
  case TokenKind::GreaterEqual:
  case TokenKind::AndAnd:
  case TokenKind::OrOr:
  case TokenKind::ColonColon:
    return true;
  default:
    return false;
  }
}
