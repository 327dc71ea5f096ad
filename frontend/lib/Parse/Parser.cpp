//===- Parser.cpp - parser of the .moe language -----------------*- C++ -*-===//
#include "moe/Frontend/Parser.h"

#include "llvm/ADT/StringExtras.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

using namespace moe::frontend;
using llvm::SMLoc;

Parser::Parser(Diagnostics &diags, unsigned bufferId) : diags(diags), lexer(diags.getSourceMgr(), bufferId) {
  tok = lexer.next();
}

Program moe::frontend::parseSource(Diagnostics &diags, unsigned bufferId) {
  Parser parser(diags, bufferId);
  return parser.parseProgram();
}

//===----------------------------------------------------------------------===//
// Tokens and recovery
//===----------------------------------------------------------------------===//

const Token &Parser::peekNext() {
  if (!lookahead)
    lookahead = lexer.next();
  return *lookahead;
}

void Parser::advance() {
  if (tok.is(TokenKind::Eof))
    return;
  if (lookahead) {
    tok = std::move(*lookahead);
    lookahead.reset();
  } else {
    tok = lexer.next();
  }
}

bool Parser::consumeIf(TokenKind kind) {
  if (!tok.is(kind))
    return false;
  advance();
  return true;
}

bool Parser::error(SMLoc loc, const llvm::Twine &message) {
  // One error per place: the lexer has already reported its Error tokens, and
  // a failed construct should not be reported again by its parents.
  if (loc == lastErrorLoc)
    return false;
  lastErrorLoc = loc;
  diags.error(loc, message);
  return true;
}

bool Parser::errorHere(const llvm::Twine &message) {
  if (tok.is(TokenKind::Error)) {
    lastErrorLoc = tok.loc();
    return false;
  }
  return error(tok.loc(), message);
}

bool Parser::expect(TokenKind kind, llvm::StringRef context) {
  if (consumeIf(kind))
    return true;
  errorHere("expected " + describe(kind) + " " + context + ", found " + describe(tok.kind));
  return false;
}

void Parser::skipNewlines() {
  while (tok.is(TokenKind::Newline) || tok.is(TokenKind::Semicolon))
    advance();
}

void Parser::skipLine() {
  while (!tok.is(TokenKind::Newline) && !tok.is(TokenKind::Eof))
    advance();
}

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

std::string Parser::takeDocString() {
  std::string doc;
  while (tok.is(TokenKind::DocString) || tok.is(TokenKind::String)) {
    doc = tok.value;
    advance();
    skipNewlines();
  }
  return doc;
}

Program Parser::parseProgram() {
  Program program;
  while (true) {
    skipNewlines();
    if (tok.is(TokenKind::Eof))
      break;
    std::string doc = takeDocString();
    bool ok;
    switch (tok.kind) {
    case TokenKind::Eof:
      ok = true;
      break;
    case TokenKind::KwConst:
      ok = parseConst(program, std::move(doc));
      break;
    case TokenKind::KwLayer:
      ok = parseLayer(program, std::move(doc));
      break;
    case TokenKind::KwFunction: {
      auto fn = parseFunction(std::move(doc), /*anonymous=*/false);
      ok = fn != nullptr;
      if (fn)
        program.functions.push_back(std::move(fn));
      break;
    }
    case TokenKind::Identifier:
      ok = parseShortFunction(program, std::move(doc));
      break;
    default:
      errorHere("expected 'const', 'layer' or a function at top level, found " + describe(tok.kind));
      ok = false;
    }
    if (!ok)
      skipLine();
    else if (!tok.is(TokenKind::Eof) && !tok.is(TokenKind::Newline) && !tok.is(TokenKind::Semicolon)) {
      errorHere("expected end of line after the declaration, found " + describe(tok.kind));
      skipLine();
    }
  }
  diags.addExternalErrors(lexer.getNumErrors());
  return program;
}

bool Parser::parseConst(Program &program, std::string doc) {
  advance(); // const
  ConstDecl decl;
  decl.loc = tok.loc();
  decl.doc = std::move(doc);
  if (!tok.is(TokenKind::Identifier)) {
    errorHere("expected a name after 'const', found " + describe(tok.kind));
    return false;
  }
  decl.name = tok.text.str();
  advance();
  if (!expect(TokenKind::Assign, "after the constant's name"))
    return false;
  decl.value = parseExpr();
  if (!decl.value)
    return false;
  program.consts.push_back(std::move(decl));
  return true;
}

bool Parser::parseLayer(Program &program, std::string doc) {
  SMLoc layerLoc = tok.loc();
  advance(); // layer
  LayerDecl layer;
  layer.doc = std::move(doc);
  layer.loc = tok.loc();
  if (!tok.is(TokenKind::Identifier)) {
    errorHere("expected the layer's name after 'layer', found " + describe(tok.kind));
    return false;
  }
  layer.name = tok.text.str();
  advance();
  // A bad header is reported, and the body is still parsed (to its `end`).
  bool headerOk = true;
  if (consumeIf(TokenKind::LBrace))
    headerOk = parseParameters(TokenKind::RBrace, layer.typeParams, nullptr);
  if (headerOk && consumeIf(TokenKind::LParen))
    headerOk = parseParameters(TokenKind::RParen, layer.hyperParams, nullptr);
  if (!headerOk) {
    skipLine();
  } else if (!tok.is(TokenKind::Newline) && !tok.is(TokenKind::Semicolon)) {
    errorHere("expected end of line after the layer's header, found " + describe(tok.kind));
    skipLine();
  }

  // The body: fields, one forward method, docstrings; until `end`.
  while (true) {
    skipNewlines();
    takeDocString();
    if (tok.is(TokenKind::KwEnd)) {
      advance();
      break;
    }
    if (tok.is(TokenKind::Eof)) {
      if (error(tok.loc(), "expected 'end' to close layer '" + layer.name + "'"))
        diags.note(layerLoc, "the layer starts here");
      program.layers.push_back(std::move(layer));
      return true;
    }
    if (tok.is(TokenKind::KwFunction)) {
      SMLoc loc = tok.loc();
      if (peekNext().is(TokenKind::Identifier)) {
        errorHere("a layer holds one forward method 'function (x::Tensor{T}[...]) ... end'; "
                  "declare helper functions at top level");
        auto ignored = parseFunction("", false);
        continue;
      }
      auto fn = parseFunction("", /*anonymous=*/true);
      if (!fn) {
        skipLine();
        continue;
      }
      if (layer.forward) {
        if (error(loc, "layer '" + layer.name + "' has more than one forward method"))
          diags.note(layer.forward->loc, "the first one is here");
        continue;
      }
      layer.forward = std::move(fn);
      continue;
    }
    if (atNamedValue()) {
      FieldDecl field = parseNamedValue(&FieldDecl::constructor);
      if (!field.constructor || (!tok.is(TokenKind::Newline) && !tok.is(TokenKind::Semicolon))) {
        if (field.constructor)
          errorHere("expected end of line after the field, found " + describe(tok.kind));
        skipLine();
        continue;
      }
      layer.fields.push_back(std::move(field));
      continue;
    }
    errorHere("expected a field 'name = Constructor(...)', the forward method or 'end' in "
              "layer '" +
              layer.name + "', found " + describe(tok.kind));
    skipLine();
  }
  program.layers.push_back(std::move(layer));
  return true;
}

std::unique_ptr<FunctionDecl> Parser::parseFunction(std::string doc, bool anonymous) {
  SMLoc functionLoc = tok.loc();
  advance(); // function
  auto fn = std::make_unique<FunctionDecl>();
  fn->doc = std::move(doc);
  fn->loc = functionLoc;
  if (!anonymous) {
    if (!tok.is(TokenKind::Identifier)) {
      errorHere("expected the function's name after 'function', found " + describe(tok.kind));
      return nullptr;
    }
    fn->loc = tok.loc();
    fn->name = tok.text.str();
    advance();
  }
  if (!expect(TokenKind::LParen,
              anonymous ? "after 'function' in a layer (the forward method)" : "after the function's name"))
    return nullptr;
  // After a bad parameter list, the body is still parsed to find its `end`.
  bool paramsOk = parseParameters(TokenKind::RParen, fn->params, &fn->keywordParams);
  if (!paramsOk)
    skipLine();
  if (!parseBody(fn->body, functionLoc, "function") || !paramsOk)
    return nullptr;
  return fn;
}

bool Parser::parseShortFunction(Program &program, std::string doc) {
  // `name(params) = expr`
  SMLoc loc = tok.loc();
  if (!peekNext().is(TokenKind::LParen)) {
    errorHere("expected 'const', 'layer' or a function at top level; a top-level "
              "assignment needs 'const'");
    return false;
  }
  auto fn = std::make_unique<FunctionDecl>();
  fn->loc = loc;
  fn->name = tok.text.str();
  fn->doc = std::move(doc);
  fn->shortForm = true;
  advance();
  advance(); // (
  if (!parseParameters(TokenKind::RParen, fn->params, &fn->keywordParams))
    return false;
  if (!expect(TokenKind::Assign, "after the parameters of short-form function '" + fn->name + "'"))
    return false;
  Stmt ret;
  ret.kind = Stmt::Kind::Return;
  ret.loc = tok.loc();
  ret.value = parseExprList();
  if (!ret.value)
    return false;
  fn->body.push_back(std::move(ret));
  program.functions.push_back(std::move(fn));
  return true;
}

std::optional<Parameter> Parser::parseParameter() {
  Parameter param;
  param.loc = tok.loc();
  if (!tok.is(TokenKind::Identifier)) {
    errorHere("expected a parameter name, found " + describe(tok.kind));
    return std::nullopt;
  }
  param.name = tok.text.str();
  advance();
  if (consumeIf(TokenKind::ColonColon)) {
    param.type = parsePostfix();
    if (!param.type)
      return std::nullopt;
  }
  if (consumeIf(TokenKind::Assign)) {
    param.defaultValue = parseExpr();
    if (!param.defaultValue)
      return std::nullopt;
  }
  return param;
}

bool Parser::parseParameters(TokenKind close, std::vector<Parameter> &params, std::vector<Parameter> *keywordParams) {
  bool inKeywords = false;
  while (!tok.is(close)) {
    if (tok.is(TokenKind::Semicolon)) {
      if (!keywordParams || inKeywords) {
        errorHere("unexpected ';' in the parameter list");
        return false;
      }
      inKeywords = true;
      advance();
      continue;
    }
    std::optional<Parameter> param = parseParameter();
    if (!param)
      return false;
    if (inKeywords && !param->defaultValue) {
      error(param->loc, "keyword parameter '" + param->name + "' needs a default value");
      return false;
    }
    (inKeywords ? *keywordParams : params).push_back(std::move(*param));
    if (!tok.is(close) && !tok.is(TokenKind::Semicolon) && !expect(TokenKind::Comma, "between parameters"))
      return false;
  }
  advance(); // close
  return true;
}

bool Parser::parseBody(std::vector<Stmt> &body, SMLoc openLoc, llvm::StringRef what) {
  while (true) {
    skipNewlines();
    if (tok.is(TokenKind::KwEnd)) {
      advance();
      return true;
    }
    if (tok.is(TokenKind::Eof)) {
      if (errorHere("expected 'end' to close the " + what))
        diags.note(openLoc, "the " + what + " starts here");
      return true;
    }
    if (tok.is(TokenKind::KwLayer) || tok.is(TokenKind::KwConst)) {
      if (errorHere(describe(tok.kind) + " is only allowed at top level; is an 'end' missing?"))
        diags.note(openLoc, "the " + what + " starts here");
      return true; // let the top level parse it
    }
    if (tok.is(TokenKind::KwFunction)) {
      errorHere("functions cannot be nested; declare helper functions at top level");
      (void)parseFunction("", !peekNext().is(TokenKind::Identifier));
      continue;
    }
    std::optional<Stmt> stmt = parseStatement();
    if (!stmt) {
      skipLine();
      continue;
    }
    body.push_back(std::move(*stmt));
    if (!tok.is(TokenKind::Newline) && !tok.is(TokenKind::Semicolon) && !tok.is(TokenKind::KwEnd)) {
      errorHere("expected end of line after the statement, found " + describe(tok.kind));
      skipLine();
    }
  }
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

/// Julia's block statements, which .moe leaves out: the forward is
/// straight-line code specialised at compile time.
static bool isUnsupportedBlock(const Token &t) {
  return t.is(TokenKind::Identifier) && llvm::is_contained({"if", "for", "while", "let", "begin", "try"}, t.text);
}

void Parser::skipBlock() {
  int depth = 1;
  advance();
  while (!tok.is(TokenKind::Eof)) {
    if (tok.is(TokenKind::KwEnd) && --depth == 0) {
      advance();
      return;
    }
    if (isUnsupportedBlock(tok) || tok.is(TokenKind::KwFunction) || tok.is(TokenKind::KwDo))
      ++depth;
    advance();
  }
}

std::optional<Stmt> Parser::parseStatement() {
  Stmt stmt;
  stmt.loc = tok.loc();
  if (isUnsupportedBlock(tok)) {
    std::string word = tok.text.str();
    bool loop = word == "for" || word == "while";
    errorHere("'" + word + "' is not supported in .moe: a layer's forward is straight-line code, " +
              (loop ? "and whole-tensor operations replace loops (broadcasting, sum(x; dims), f.(x))"
                    : "specialised at compile time (choose with hyperparameters; select values "
                      "elementwise with max./min. or broadcasting)"));
    skipBlock(); // one error for the whole block, not one per line of it
    return std::nullopt;
  }
  if (consumeIf(TokenKind::KwReturn)) {
    stmt.kind = Stmt::Kind::Return;
    if (tok.is(TokenKind::Newline) || tok.is(TokenKind::Semicolon) || tok.is(TokenKind::KwEnd))
      return stmt;
    stmt.value = parseExprList();
    if (!stmt.value)
      return std::nullopt;
    return stmt;
  }
  ExprPtr expr = parseExprList();
  if (!expr)
    return std::nullopt;
  if (consumeIf(TokenKind::Assign)) {
    stmt.kind = Stmt::Kind::Assign;
    if (!toTarget(std::move(expr), stmt.target))
      return std::nullopt;
    stmt.value = parseExprList();
    if (!stmt.value)
      return std::nullopt;
    return stmt;
  }
  stmt.kind = Stmt::Kind::Expression;
  stmt.value = std::move(expr);
  return stmt;
}

bool Parser::toTarget(ExprPtr expr, Target &target) {
  target.loc = expr->getLoc();
  if (auto *name = llvm::dyn_cast<NameExpr>(expr.get())) {
    target.name = name->name;
    return true;
  }
  if (auto *tuple = llvm::dyn_cast<TupleExpr>(expr.get())) {
    for (ExprPtr &element : tuple->elements) {
      target.elements.emplace_back();
      if (!toTarget(std::move(element), target.elements.back()))
        return false;
    }
    return true;
  }
  error(expr->getLoc(), "cannot assign to this expression; the left of '=' must be a name "
                        "or a tuple of names");
  return false;
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

ExprPtr Parser::parseExprList() {
  SMLoc loc = tok.loc();
  ExprPtr first = parseExpr();
  if (!first || !tok.is(TokenKind::Comma))
    return first;
  std::vector<ExprPtr> elements;
  elements.push_back(std::move(first));
  while (consumeIf(TokenKind::Comma)) {
    ExprPtr next = parseExpr();
    if (!next)
      return nullptr;
    elements.push_back(std::move(next));
  }
  return std::make_unique<TupleExpr>(loc, std::move(elements));
}

ExprPtr Parser::parseExpr() {
  if (nesting >= kMaxNesting) {
    if (!nestingReported)
      errorHere("expression nested too deeply (more than " + llvm::Twine(kMaxNesting) + " levels)");
    nestingReported = true;
    return nullptr;
  }
  ++nesting;
  ExprPtr result = parseBinary(0);
  --nesting;
  return result;
}

namespace {
struct OperatorInfo {
  int precedence; ///< larger binds tighter; -1 for non-operators
  bool rightAssociative;
};
} // namespace

/// Julia's precedence for the binary operators below the unary ones.
static OperatorInfo binaryOperatorInfo(TokenKind kind) {
  switch (kind) {
  case TokenKind::Arrow:
    return {1, true};
  case TokenKind::OrOr:
    return {2, true};
  case TokenKind::AndAnd:
    return {3, true};
  case TokenKind::Equal:
  case TokenKind::NotEqual:
  case TokenKind::Less:
  case TokenKind::LessEqual:
  case TokenKind::Greater:
  case TokenKind::GreaterEqual:
    return {4, false};
  case TokenKind::Plus:
  case TokenKind::Minus:
  case TokenKind::DotPlus:
  case TokenKind::DotMinus:
    return {5, false};
  case TokenKind::Star:
  case TokenKind::Slash:
  case TokenKind::DotStar:
  case TokenKind::DotSlash:
    return {6, false};
  default:
    return {-1, false};
  }
}

ExprPtr Parser::parseBinary(int minPrecedence) {
  ExprPtr lhs = parseUnary();
  if (!lhs)
    return nullptr;
  while (true) {
    OperatorInfo info = binaryOperatorInfo(tok.kind);
    if (info.precedence < 0 || info.precedence < minPrecedence)
      return lhs;
    TokenKind op = tok.kind;
    SMLoc loc = tok.loc();
    advance();
    ExprPtr rhs = parseBinary(info.rightAssociative ? info.precedence : info.precedence + 1);
    if (!rhs)
      return nullptr;
    lhs = std::make_unique<BinaryExpr>(loc, op, std::move(lhs), std::move(rhs));
  }
}

ExprPtr Parser::parseUnary() {
  if (tok.is(TokenKind::Minus) || tok.is(TokenKind::Plus) || tok.is(TokenKind::Not)) {
    TokenKind op = tok.kind;
    SMLoc loc = tok.loc();
    advance();
    if (nesting >= kMaxNesting)
      return parseExpr(); // reports the nesting error
    ++nesting;
    ExprPtr operand = parseUnary();
    --nesting;
    if (!operand)
      return nullptr;
    return std::make_unique<UnaryExpr>(loc, op, std::move(operand));
  }
  return parsePower();
}

ExprPtr Parser::parsePower() {
  // `-x^2` is `-(x^2)` and `2^-1` is `2^(-1)`: the exponent is a unary expression.
  ExprPtr base = parsePostfix();
  if (!base)
    return nullptr;
  if (!tok.is(TokenKind::Caret) && !tok.is(TokenKind::DotCaret))
    return base;
  TokenKind op = tok.kind;
  SMLoc loc = tok.loc();
  advance();
  ExprPtr exponent = parseUnary();
  if (!exponent)
    return nullptr;
  return std::make_unique<BinaryExpr>(loc, op, std::move(base), std::move(exponent));
}

bool Parser::atNamedValue() { return tok.is(TokenKind::Identifier) && peekNext().is(TokenKind::Assign); }

template <typename Named> Named Parser::parseNamedValue(ExprPtr Named::*value) {
  Named named;
  named.loc = tok.loc();
  named.name = tok.text.str();
  advance();
  advance(); // =
  named.*value = parseExpr();
  return named;
}

bool Parser::parseCallArguments(std::vector<ExprPtr> &args, std::vector<KeywordArg> &keywords) {
  // After `(`: positional arguments, then keywords after `;` (or `name = v`
  // after a comma, as Julia also allows).
  bool inKeywords = false;
  while (!tok.is(TokenKind::RParen)) {
    if (consumeIf(TokenKind::Semicolon)) {
      if (inKeywords) {
        error(tok.loc(), "unexpected second ';' in the argument list");
        return false;
      }
      inKeywords = true;
      continue;
    }
    if (atNamedValue()) {
      KeywordArg kw = parseNamedValue(&KeywordArg::value);
      if (!kw.value)
        return false;
      for (const KeywordArg &other : keywords)
        if (other.name == kw.name) {
          error(kw.loc, "keyword argument '" + kw.name + "' given twice");
          return false;
        }
      keywords.push_back(std::move(kw));
      inKeywords = true;
    } else {
      if (inKeywords) {
        errorHere("expected a keyword argument 'name = value' after ';', found " + describe(tok.kind));
        return false;
      }
      ExprPtr arg = parseExpr();
      if (!arg)
        return false;
      args.push_back(std::move(arg));
    }
    if (!tok.is(TokenKind::RParen) && !tok.is(TokenKind::Semicolon) && !expect(TokenKind::Comma, "between arguments"))
      return false;
  }
  advance(); // )
  return true;
}

bool Parser::parseExprsUntil(TokenKind close, llvm::StringRef separatorContext, std::vector<ExprPtr> &out) {
  while (!tok.is(close)) {
    ExprPtr e = parseExpr();
    if (!e)
      return false;
    out.push_back(std::move(e));
    if (!tok.is(close) && !expect(TokenKind::Comma, separatorContext))
      return false;
  }
  advance(); // close
  return true;
}

ExprPtr Parser::parsePostfix() {
  ExprPtr expr = parsePrimary();
  while (expr) {
    SMLoc loc = tok.loc();
    if (tok.is(TokenKind::LParen)) {
      advance();
      std::vector<ExprPtr> args;
      std::vector<KeywordArg> keywords;
      if (!parseCallArguments(args, keywords))
        return nullptr;
      expr = std::make_unique<CallExpr>(expr->getLoc(), std::move(expr), std::move(args), std::move(keywords),
                                        /*broadcast=*/false);
    } else if (tok.is(TokenKind::Dot)) {
      advance();
      if (!tok.is(TokenKind::LParen)) {
        error(loc, "expected '(' after '.' for a broadcast call 'f.(x)'; field access "
                   "'a.b' is not part of the language");
        return nullptr;
      }
      advance();
      std::vector<ExprPtr> args;
      std::vector<KeywordArg> keywords;
      if (!parseCallArguments(args, keywords))
        return nullptr;
      expr = std::make_unique<CallExpr>(expr->getLoc(), std::move(expr), std::move(args), std::move(keywords),
                                        /*broadcast=*/true);
    } else if (tok.is(TokenKind::LBrace)) {
      advance();
      std::vector<ExprPtr> params;
      if (!parseExprsUntil(TokenKind::RBrace, "between type parameters", params))
        return nullptr;
      expr = std::make_unique<CurlyExpr>(expr->getLoc(), std::move(expr), std::move(params));
    } else if (tok.is(TokenKind::LBracket)) {
      advance();
      std::vector<ExprPtr> indices;
      if (!parseExprsUntil(TokenKind::RBracket, "between dimensions", indices))
        return nullptr;
      expr = std::make_unique<IndexExpr>(expr->getLoc(), std::move(expr), std::move(indices));
    } else if (tok.is(TokenKind::ColonColon)) {
      error(loc, "type annotations '::' are only allowed on parameters");
      return nullptr;
    } else {
      return expr;
    }
  }
  return expr;
}

ExprPtr Parser::parseNumber() {
  SMLoc loc = tok.loc();
  std::string digits;
  for (char c : tok.text)
    if (c != '_')
      digits += c;
  bool isFloat = tok.is(TokenKind::Float);
  advance();
  if (!isFloat) {
    bool hex = llvm::StringRef(digits).starts_with("0x");
    errno = 0;
    char *endPtr = nullptr;
    unsigned long long value = std::strtoull(digits.c_str() + (hex ? 2 : 0), &endPtr, hex ? 16 : 10);
    if (errno == ERANGE || value > static_cast<unsigned long long>(INT64_MAX)) {
      error(loc, "integer literal '" + llvm::Twine(digits) + "' does not fit in 64 bits");
      return nullptr;
    }
    return std::make_unique<IntegerExpr>(loc, static_cast<int64_t>(value));
  }
  bool isFloat32 = false;
  for (char &c : digits)
    if (c == 'f') {
      c = 'e';
      isFloat32 = true;
    }
  errno = 0;
  double value = std::strtod(digits.c_str(), nullptr);
  if (!std::isfinite(value) || (isFloat32 && std::fabs(value) > 3.4028234663852886e38)) {
    error(loc, "number '" + llvm::Twine(digits) + "' is out of range");
    return nullptr;
  }
  return std::make_unique<FloatExpr>(loc, value, isFloat32);
}

ExprPtr Parser::parsePrimary() {
  SMLoc loc = tok.loc();
  switch (tok.kind) {
  case TokenKind::Integer:
  case TokenKind::Float:
    return parseNumber();
  case TokenKind::KwTrue:
  case TokenKind::KwFalse: {
    bool value = tok.is(TokenKind::KwTrue);
    advance();
    return std::make_unique<BoolExpr>(loc, value);
  }
  case TokenKind::KwNothing:
    advance();
    return std::make_unique<NothingExpr>(loc);
  case TokenKind::String: {
    std::string value = tok.value;
    advance();
    return std::make_unique<StringExpr>(loc, std::move(value));
  }
  case TokenKind::Symbol: {
    std::string name = tok.text.drop_front().str();
    advance();
    return std::make_unique<SymbolExpr>(loc, std::move(name));
  }
  case TokenKind::Identifier: {
    std::string name = tok.text.str();
    advance();
    return std::make_unique<NameExpr>(loc, std::move(name));
  }
  case TokenKind::LParen: {
    advance();
    if (consumeIf(TokenKind::RParen))
      return std::make_unique<TupleExpr>(loc, std::vector<ExprPtr>{});
    ExprPtr first = parseExpr();
    if (!first)
      return nullptr;
    if (consumeIf(TokenKind::RParen))
      return first; // grouping
    std::vector<ExprPtr> elements;
    elements.push_back(std::move(first));
    while (consumeIf(TokenKind::Comma)) {
      if (tok.is(TokenKind::RParen))
        break; // `(a,)`
      ExprPtr next = parseExpr();
      if (!next)
        return nullptr;
      elements.push_back(std::move(next));
    }
    if (!expect(TokenKind::RParen, "to close the parenthesis"))
      return nullptr;
    return std::make_unique<TupleExpr>(loc, std::move(elements));
  }
  case TokenKind::LBracket:
    errorHere("array literals '[...]' are not part of the language; tensors come from "
              "arguments and parameters");
    return nullptr;
  case TokenKind::KwDo:
    errorHere("'do' blocks are not supported in this version of the language");
    return nullptr;
  case TokenKind::KwFunction:
    errorHere("anonymous functions are not supported; declare a helper function at top level");
    return nullptr;
  case TokenKind::DocString:
    errorHere("a docstring must come right before a declaration");
    return nullptr;
  case TokenKind::Colon:
    errorHere("slices and ranges (':', 'a:b') are not supported in .moe: indexing 'x[...]' is not part "
              "of the language; select per-row values with gather(x, idx)");
    return nullptr;
  default:
    errorHere("expected an expression, found " + describe(tok.kind));
    return nullptr;
  }
}
