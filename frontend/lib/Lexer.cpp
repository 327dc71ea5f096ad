//===- Lexer.cpp - lexer of the .moe language -------------------*- C++ -*-===//
#include "moe/Frontend/Lexer.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/Format.h"

using namespace moe::frontend;

Lexer::Lexer(llvm::SourceMgr &sourceMgr, unsigned bufferId) : sourceMgr(sourceMgr) {
  const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(bufferId);
  cur = buffer->getBufferStart();
  end = buffer->getBufferEnd();
}

void Lexer::emitError(llvm::SMLoc loc, const llvm::Twine &message) {
  ++numErrors;
  sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Error, message);
}

Token Lexer::make(TokenKind kind, const char *start) {
  lastKind = kind;
  Token tok;
  tok.kind = kind;
  tok.text = llvm::StringRef(start, cur - start);
  return tok;
}

Token Lexer::error(const char *start, const llvm::Twine &message) {
  emitError(llvm::SMLoc::getFromPointer(start), message);
  return make(TokenKind::Error, start);
}

//===----------------------------------------------------------------------===//
// UTF-8 and character classes
//===----------------------------------------------------------------------===//

int32_t Lexer::decodeUtf8(const char *&p, const char *end) {
  auto byte = [](char c) { return static_cast<unsigned char>(c); };
  unsigned char b0 = byte(*p++);
  if (b0 < 0x80)
    return b0;
  int extra;
  int32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3;
    cp = b0 & 0x07;
  } else {
    return -1;
  }
  if (end - p < extra)
    return -1;
  for (int i = 0; i < extra; ++i) {
    if ((byte(p[i]) & 0xC0) != 0x80)
      return -1;
    cp = (cp << 6) | (byte(p[i]) & 0x3F);
  }
  // Reject overlong encodings, surrogates and values past U+10FFFF.
  static const int32_t minForLength[] = {0, 0x80, 0x800, 0x10000};
  if (cp < minForLength[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return -1;
  p += extra;
  return cp;
}

static bool isAsciiIdStart(int32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/// Non-ASCII code points that may start an identifier: letters of the common
/// scripts and mathematical letter blocks (σ, α, ℓ, ...), not operators or
/// punctuation.
static bool isUnicodeIdStart(int32_t c) {
  return (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) ||    // Latin
         (c >= 0x370 && c <= 0x3FF && c != 0x37E && c != 0x387) || // Greek
         (c >= 0x400 && c <= 0x52F) ||                             // Cyrillic
         (c >= 0x1D00 && c <= 0x1DBF) ||                           // phonetic (ᵢ)
         (c >= 0x1E00 && c <= 0x1FFF) ||                           // Latin/Greek extended
         (c >= 0x2100 && c <= 0x214F) ||                           // letterlike (ℓ, ℝ)
         (c >= 0x3040 && c <= 0x30FF) ||                           // kana
         (c >= 0x4E00 && c <= 0x9FFF) ||                           // CJK
         (c >= 0xAC00 && c <= 0xD7AF) ||                           // Hangul
         (c >= 0x1D400 && c <= 0x1D7FF);                           // mathematical alphanumerics
}

/// Characters that may continue an identifier besides its start set: digits,
/// `!`, primes, sub/superscripts and combining marks (x̂, w₁).
static bool isUnicodeIdContinue(int32_t c) {
  return isUnicodeIdStart(c) || (c >= 0x300 && c <= 0x36F) || (c >= 0x2070 && c <= 0x209C) || c == 0x2032 ||
         c == 0xB2 || c == 0xB3 || c == 0xB9;
}

static bool isDigit(char c) { return c >= '0' && c <= '9'; }
static bool isHexDigit(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

//===----------------------------------------------------------------------===//
// Trivia
//===----------------------------------------------------------------------===//

bool Lexer::skipBlockComment() {
  const char *start = cur;
  cur += 2; // `#=`
  int depth = 1;
  while (cur < end) {
    if (cur + 1 < end && cur[0] == '#' && cur[1] == '=') {
      ++depth;
      cur += 2;
    } else if (cur + 1 < end && cur[0] == '=' && cur[1] == '#') {
      cur += 2;
      if (--depth == 0)
        return true;
    } else {
      ++cur;
    }
  }
  emitError(llvm::SMLoc::getFromPointer(start), "unterminated block comment: expected '=#' to close this '#='");
  return false;
}

bool Lexer::skipTrivia(const char *&newlineAt) {
  newlineAt = nullptr;
  while (cur < end) {
    char c = *cur;
    if (c == ' ' || c == '\t' || c == '\r') {
      ++cur;
    } else if (c == '\n') {
      if (!newlineAt)
        newlineAt = cur;
      ++cur;
    } else if (c == '#') {
      if (cur + 1 < end && cur[1] == '=') {
        if (!skipBlockComment())
          return false;
      } else {
        while (cur < end && *cur != '\n')
          ++cur;
      }
    } else {
      break;
    }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Tokens
//===----------------------------------------------------------------------===//

Token Lexer::next() {
  const char *newlineAt;
  if (!skipTrivia(newlineAt)) {
    cur = end;
    return make(TokenKind::Error, end);
  }
  // A newline ends a statement unless a bracket is open or the line ended
  // with a binary operator or a comma; runs of newlines collapse into one.
  if (newlineAt && bracketDepth == 0 && !isBinaryOperator(lastKind) && lastKind != TokenKind::Comma &&
      lastKind != TokenKind::Newline) {
    const char *save = cur;
    cur = newlineAt + 1;
    Token tok = make(TokenKind::Newline, newlineAt);
    cur = save;
    return tok;
  }
  if (cur >= end) {
    // Close the last statement before the end of the file.
    if (lastKind != TokenKind::Newline && lastKind != TokenKind::Eof && bracketDepth == 0)
      return make(TokenKind::Newline, cur);
    return make(TokenKind::Eof, cur);
  }

  const char *start = cur;
  char c = *cur;
  if (c == '\0') {
    ++cur;
    return error(start, "unexpected NUL byte in the source");
  }
  if (isDigit(c) || (c == '.' && cur + 1 < end && isDigit(cur[1])))
    return lexNumber(start);
  if (c == '"')
    return lexString(start);
  if (static_cast<unsigned char>(c) >= 0x80 || isAsciiIdStart(c))
    return lexIdentifier(start);
  return lexOperator(start);
}

Token Lexer::lexIdentifier(const char *start) {
  const char *p = cur;
  int32_t first = decodeUtf8(p, end);
  if (first < 0) {
    cur = p;
    return error(start, llvm::Twine("invalid UTF-8 byte 0x") +
                            llvm::Twine::utohexstr(static_cast<unsigned char>(*start)) + " in the source");
  }
  if (first >= 0x80 && !isUnicodeIdStart(first)) {
    cur = p;
    // The comparison operators Julia also spells in Unicode.
    if (first == 0x2264)
      return make(TokenKind::LessEqual, start);
    if (first == 0x2265)
      return make(TokenKind::GreaterEqual, start);
    if (first == 0x2260)
      return make(TokenKind::NotEqual, start);
    if (first == 0xF7)
      return error(start, "'÷' (integer division) is not supported; write div(a, b)");
    return error(start, llvm::Twine("unexpected character U+") + llvm::Twine::utohexstr(first) + " '" +
                            llvm::StringRef(start, p - start) + "'");
  }
  cur = p;
  while (cur < end) {
    const char *q = cur;
    char ch = *q;
    if (isAsciiIdStart(ch) || isDigit(ch)) {
      ++cur;
      continue;
    }
    if (static_cast<unsigned char>(ch) < 0x80)
      break;
    int32_t cp = decodeUtf8(q, end);
    if (cp < 0 || !isUnicodeIdContinue(cp))
      break; // a malformed byte is reported as the next token
    cur = q;
  }
  // A trailing `!` belongs to the name (`normalize!`), but not `!=`.
  if (cur < end && *cur == '!' && !(cur + 1 < end && cur[1] == '='))
    ++cur;

  llvm::StringRef text(start, cur - start);
  TokenKind kind = llvm::StringSwitch<TokenKind>(text)
                       .Case("const", TokenKind::KwConst)
                       .Case("layer", TokenKind::KwLayer)
                       .Case("function", TokenKind::KwFunction)
                       .Case("end", TokenKind::KwEnd)
                       .Case("return", TokenKind::KwReturn)
                       .Case("do", TokenKind::KwDo)
                       .Case("true", TokenKind::KwTrue)
                       .Case("false", TokenKind::KwFalse)
                       .Case("nothing", TokenKind::KwNothing)
                       .Default(TokenKind::Identifier);
  return make(kind, start);
}

/// Consumes digits (per `isValid`) with single `_` separators between them;
/// returns false after a misplaced `_`.
static bool lexDigits(const char *&cur, const char *end, bool (*isValid)(char)) {
  bool prevDigit = false;
  while (cur < end) {
    if (isValid(*cur)) {
      prevDigit = true;
      ++cur;
    } else if (*cur == '_') {
      if (!prevDigit || cur + 1 >= end || !isValid(cur[1]))
        return false;
      prevDigit = false;
      ++cur;
    } else {
      break;
    }
  }
  return true;
}

Token Lexer::lexNumber(const char *start) {
  auto misplaced = [&] {
    while (cur < end && (isHexDigit(*cur) || *cur == '_'))
      ++cur;
    return error(start, "misplaced '_' in a number: '_' may only separate digits");
  };
  if (cur[0] == '0' && cur + 1 < end && cur[1] == 'x') {
    cur += 2;
    if (cur >= end || !isHexDigit(*cur))
      return error(start, "expected hexadecimal digits after '0x'");
    if (!lexDigits(cur, end, isHexDigit))
      return misplaced();
    return make(TokenKind::Integer, start);
  }

  bool isFloat = false;
  if (!lexDigits(cur, end, isDigit))
    return misplaced();
  // A fraction: `2.5`, `.5`, `2.` — but `2.*x` and `x.+1` are dotted operators.
  if (cur < end && *cur == '.') {
    char n = cur + 1 < end ? cur[1] : '\0';
    bool dottedOperator = llvm::StringRef("+-*/^=<>!&|(").contains(n);
    bool fieldAccess = isAsciiIdStart(n) && n != 'e' && n != 'f';
    if (!dottedOperator && !fieldAccess) {
      ++cur;
      isFloat = true;
      if (cur < end && isDigit(*cur) && !lexDigits(cur, end, isDigit))
        return misplaced();
    }
  }
  // An exponent: `1e-6` (Float64) or `3.0f0` (Float32).
  if (cur < end && (*cur == 'e' || *cur == 'f' || *cur == 'E')) {
    const char *p = cur + 1;
    if (p < end && (*p == '+' || *p == '-'))
      ++p;
    if (p < end && isDigit(*p)) {
      cur = p;
      isFloat = true;
      if (!lexDigits(cur, end, isDigit))
        return misplaced();
    }
  }
  if (cur < end && (isAsciiIdStart(*cur) || isDigit(*cur))) {
    while (cur < end && (isAsciiIdStart(*cur) || isDigit(*cur)))
      ++cur;
    return error(start, "invalid number '" + llvm::StringRef(start, cur - start) +
                            "': write a '*' to multiply a number by a name");
  }
  return make(isFloat ? TokenKind::Float : TokenKind::Integer, start);
}

Token Lexer::lexString(const char *start) {
  bool triple = end - cur >= 3 && llvm::StringRef(cur, 3) == "\"\"\"";
  if (triple) {
    cur += 3;
    const char *body = cur;
    while (cur < end && !(end - cur >= 3 && llvm::StringRef(cur, 3) == "\"\"\""))
      ++cur;
    if (cur >= end)
      return error(start, "unterminated docstring: expected '\"\"\"' to close it");
    std::string value(body, cur - body);
    cur += 3;
    Token tok = make(TokenKind::DocString, start);
    tok.value = llvm::StringRef(value).trim().str();
    return tok;
  }

  ++cur;
  std::string value;
  bool ok = true;
  while (cur < end && *cur != '"') {
    if (*cur == '\\') {
      const char *escape = cur;
      if (cur + 1 >= end)
        break;
      char e = cur[1];
      cur += 2;
      switch (e) {
      case 'n':
        value += '\n';
        break;
      case 't':
        value += '\t';
        break;
      case '"':
        value += '"';
        break;
      case '\\':
        value += '\\';
        break;
      default:
        ok = false;
        emitError(llvm::SMLoc::getFromPointer(escape), llvm::Twine("unknown escape sequence '\\") +
                                                           llvm::StringRef(&escape[1], 1) +
                                                           "' (known: \\n \\t \\\" \\\\)");
      }
      continue;
    }
    if (*cur == '\0') {
      ok = false;
      emitError(llvm::SMLoc::getFromPointer(cur), "unexpected NUL byte in a string");
    }
    value += *cur++;
  }
  if (cur >= end)
    return error(start, "unterminated string: expected '\"' to close it");
  ++cur;
  Token tok = make(ok ? TokenKind::String : TokenKind::Error, start);
  tok.value = std::move(value);
  return tok;
}

Token Lexer::lexOperator(const char *start) {
  auto two = [&](llvm::StringRef s) { return end - cur >= 2 && llvm::StringRef(cur, 2) == s; };
  auto take = [&](TokenKind kind, int length) {
    cur += length;
    return make(kind, start);
  };
  auto open = [&](TokenKind kind) {
    ++bracketDepth;
    return take(kind, 1);
  };
  auto close = [&](TokenKind kind) {
    if (bracketDepth > 0)
      --bracketDepth;
    return take(kind, 1);
  };

  switch (*cur) {
  case '(':
    return open(TokenKind::LParen);
  case '[':
    return open(TokenKind::LBracket);
  case '{':
    return open(TokenKind::LBrace);
  case ')':
    return close(TokenKind::RParen);
  case ']':
    return close(TokenKind::RBracket);
  case '}':
    return close(TokenKind::RBrace);
  case ',':
    return take(TokenKind::Comma, 1);
  case ';':
    return take(TokenKind::Semicolon, 1);
  case '+':
    return take(TokenKind::Plus, 1);
  case '-':
    if (two("->")) {
      cur += 2;
      return error(start, "anonymous functions ('x -> ...') are not supported in .moe; define a helper "
                          "'f(x) = ...' at top level and broadcast it with 'f.(x)'");
    }
    return take(TokenKind::Minus, 1);
  case '@':
    if (two("@.")) {
      cur += 2;
      return error(start, "'@.' is not supported in .moe; write each operator dotted ('x .+ 1', "
                          "'a .* b', 'f.(x)')");
    }
    ++cur;
    while (cur < end && (isAsciiIdStart(*cur) || isDigit(*cur)))
      ++cur;
    return error(start, "macros ('@name') are not supported in .moe");
  case '\'':
    ++cur;
    return error(start, "the quote ' (the adjoint x', or a character literal) is not supported in "
                        ".moe: products use weights as stored (x * W with W [in, out]); strings use "
                        "double quotes");
  case '*':
    return take(TokenKind::Star, 1);
  case '/':
    return take(TokenKind::Slash, 1);
  case '^':
    return take(TokenKind::Caret, 1);
  case '.':
    if (two(".+"))
      return take(TokenKind::DotPlus, 2);
    if (two(".-"))
      return take(TokenKind::DotMinus, 2);
    if (two(".*"))
      return take(TokenKind::DotStar, 2);
    if (two("./"))
      return take(TokenKind::DotSlash, 2);
    if (two(".^"))
      return take(TokenKind::DotCaret, 2);
    return take(TokenKind::Dot, 1);
  case ':':
    if (two("::"))
      return take(TokenKind::ColonColon, 2);
    // `:normal` is a symbol literal when a name follows directly.
    if (cur + 1 < end && isAsciiIdStart(cur[1])) {
      ++cur;
      while (cur < end && (isAsciiIdStart(*cur) || isDigit(*cur)))
        ++cur;
      return make(TokenKind::Symbol, start);
    }
    return take(TokenKind::Colon, 1);
  case '=':
    if (two("=="))
      return take(TokenKind::Equal, 2);
    if (two("=>"))
      return take(TokenKind::Arrow, 2);
    return take(TokenKind::Assign, 1);
  case '!':
    if (two("!="))
      return take(TokenKind::NotEqual, 2);
    return take(TokenKind::Not, 1);
  case '<':
    if (two("<="))
      return take(TokenKind::LessEqual, 2);
    return take(TokenKind::Less, 1);
  case '>':
    if (two(">="))
      return take(TokenKind::GreaterEqual, 2);
    return take(TokenKind::Greater, 1);
  case '&':
    if (two("&&"))
      return take(TokenKind::AndAnd, 2);
    break;
  case '|':
    if (two("||"))
      return take(TokenKind::OrOr, 2);
    break;
  default:
    break;
  }
  ++cur;
  unsigned char c = static_cast<unsigned char>(*start);
  if (c < 0x20 || c == 0x7f)
    return error(start, "unexpected control character 0x" + llvm::Twine::utohexstr(c));
  return error(start, llvm::Twine("unexpected character '") + llvm::StringRef(start, 1) + "'");
}
