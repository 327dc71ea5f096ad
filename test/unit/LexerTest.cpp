// LexerTest.cpp - the .moe lexer: every token class of the spec, the newline
// rules, and diagnostics with file:line:col and a caret.
#include "moe/Frontend/Lexer.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using namespace moe::frontend;
using K = TokenKind;

namespace {

struct Lexed {
  std::vector<Token> tokens;
  std::string diagnostics;
  unsigned errors = 0;
};

/// Lexes `source` as file "test.moe" until end of file (or a safety bound).
Lexed lex(llvm::StringRef source) {
  Lexed out;
  llvm::SourceMgr sm;
  sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, "test.moe"), llvm::SMLoc());
  sm.setDiagHandler(
      [](const llvm::SMDiagnostic &d, void *ctx) {
        llvm::raw_string_ostream os(*static_cast<std::string *>(ctx));
        d.print(nullptr, os, /*ShowColors=*/false);
      },
      &out.diagnostics);
  Lexer lexer(sm, 1);
  for (size_t i = 0; i < source.size() * 2 + 8; ++i) {
    Token t = lexer.next();
    // Token texts point into the SourceMgr's buffer, which dies here: keep kinds and values.
    t.value = t.value.empty() ? t.text.str() : t.value;
    t.text = llvm::StringRef();
    out.tokens.push_back(t);
    if (t.is(K::Eof))
      break;
  }
  out.errors = lexer.getNumErrors();
  return out;
}

std::vector<K> kinds(const Lexed &l) {
  std::vector<K> ks;
  for (const Token &t : l.tokens)
    ks.push_back(t.kind);
  return ks;
}

TEST(Lexer, DeclarationsAndKeywords) {
  Lexed l = lex("const d_model = 4096\nlayer M{T = bf16}(k::Int = 2)\nend\n");
  EXPECT_EQ(kinds(l),
            (std::vector<K>{K::KwConst,    K::Identifier, K::Assign,     K::Integer,    K::Newline,    K::KwLayer,
                            K::Identifier, K::LBrace,     K::Identifier, K::Assign,     K::Identifier, K::RBrace,
                            K::LParen,     K::Identifier, K::ColonColon, K::Identifier, K::Assign,     K::Integer,
                            K::RParen,     K::Newline,    K::KwEnd,      K::Newline,    K::Eof}));
  EXPECT_EQ(l.errors, 0u);
}

TEST(Lexer, EveryNumberForm) {
  Lexed l = lex("42 1_000_000 0x1f 2.5 1e-6 3.0f0 .5 2. 7E+3");
  std::vector<std::pair<K, std::string>> want = {{K::Integer, "42"}, {K::Integer, "1_000_000"}, {K::Integer, "0x1f"},
                                                 {K::Float, "2.5"},  {K::Float, "1e-6"},        {K::Float, "3.0f0"},
                                                 {K::Float, ".5"},   {K::Float, "2."},          {K::Float, "7E+3"}};
  ASSERT_GE(l.tokens.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(l.tokens[i].kind, want[i].first) << i;
    EXPECT_EQ(l.tokens[i].value, want[i].second) << i;
  }
  EXPECT_EQ(l.errors, 0u);
}

TEST(Lexer, DottedOperatorsAfterNumbersAndNames) {
  EXPECT_EQ(kinds(lex("2.*x")), (std::vector<K>{K::Integer, K::DotStar, K::Identifier, K::Newline, K::Eof}));
  EXPECT_EQ(kinds(lex("w ./ s .^ 2 .+ 1 .- b")),
            (std::vector<K>{K::Identifier, K::DotSlash, K::Identifier, K::DotCaret, K::Integer, K::DotPlus, K::Integer,
                            K::DotMinus, K::Identifier, K::Newline, K::Eof}));
  EXPECT_EQ(kinds(lex("sigmoid.(x)")),
            (std::vector<K>{K::Identifier, K::Dot, K::LParen, K::Identifier, K::RParen, K::Newline, K::Eof}));
}

TEST(Lexer, UnicodeIdentifiersAndBang) {
  Lexed l = lex("σ = α₁ .* ℓ\nnormalize!(w) != x\nΔx ≤ y");
  EXPECT_EQ(l.errors, 0u) << l.diagnostics;
  EXPECT_EQ(l.tokens[0].value, "σ");
  EXPECT_EQ(l.tokens[2].value, "α₁");
  EXPECT_EQ(l.tokens[4].value, "ℓ");
  EXPECT_EQ(l.tokens[6].value, "normalize!");
  EXPECT_EQ(l.tokens[10].kind, K::NotEqual);
  EXPECT_EQ(l.tokens[13].value, "Δx");
  EXPECT_EQ(l.tokens[14].kind, K::LessEqual);
}

TEST(Lexer, StringsDocstringsAndSymbols) {
  Lexed l = lex("\"\"\"  Mixtral block.\n  Two lines. \"\"\"\nf(\"a\\tb\\n\\\"q\\\"\\\\\"; init = :normal)");
  EXPECT_EQ(l.errors, 0u) << l.diagnostics;
  EXPECT_EQ(l.tokens[0].kind, K::DocString);
  EXPECT_EQ(l.tokens[0].value, "Mixtral block.\n  Two lines.");
  EXPECT_EQ(l.tokens[1].kind, K::Newline);
  EXPECT_EQ(l.tokens[4].kind, K::String);
  EXPECT_EQ(l.tokens[4].value, "a\tb\n\"q\"\\");
  EXPECT_EQ(l.tokens[8].kind, K::Symbol);
  EXPECT_EQ(l.tokens[8].value, ":normal");
}

TEST(Lexer, NewlinesEndStatementsOnlyOutsideBracketsAndOperators) {
  // Inside brackets, after a binary operator and after a comma the line continues;
  // blank lines and comments collapse into one statement end.
  Lexed l = lex("a = f(x,\n  y)\n\n# comment\nb = a +\n  1\nc, d =\n e\n");
  EXPECT_EQ(kinds(l),
            (std::vector<K>{K::Identifier, K::Assign,     K::Identifier, K::LParen,     K::Identifier, K::Comma,
                            K::Identifier, K::RParen,     K::Newline,    K::Identifier, K::Assign,     K::Identifier,
                            K::Plus,       K::Integer,    K::Newline,    K::Identifier, K::Comma,      K::Identifier,
                            K::Assign,     K::Identifier, K::Newline,    K::Eof}));
}

TEST(Lexer, NestedBlockComments) {
  Lexed l = lex("a #= outer #= inner =# still comment =# b");
  EXPECT_EQ(kinds(l), (std::vector<K>{K::Identifier, K::Identifier, K::Newline, K::Eof}));
  EXPECT_EQ(l.errors, 0u);
}

TEST(Lexer, DiagnosticsNameFileLineColumnWithACaret) {
  Lexed l = lex("x = 1\ny = \"open\n");
  EXPECT_EQ(l.errors, 1u);
  EXPECT_NE(l.diagnostics.find("test.moe:2:5: error: unterminated string: expected '\"' to close it\n"
                               "y = \"open\n"
                               "    ^"),
            std::string::npos)
      << l.diagnostics;
}

TEST(Lexer, EveryErrorClassIsReportedAndLexingGoesOn) {
  struct Case {
    std::string source;
    std::string message;
  } cases[] = {
      {"a #= never closed", "1:3: error: unterminated block comment: expected '=#' to close this '#='"},
      {"\"\"\" doc", "1:1: error: unterminated docstring"},
      {"x\xff y", "1:2: error: invalid UTF-8 byte 0xff in the source"},
      {std::string("x ") + '\0' + " y", "1:3: error: unexpected NUL byte in the source"},
      {"\"a\\q\"", "1:3: error: unknown escape sequence '\\q'"},
      {"1__0", "1:1: error: misplaced '_' in a number"},
      {"10_", "1:1: error: misplaced '_' in a number"},
      {"0x", "1:1: error: expected hexadecimal digits after '0x'"},
      {"2x", "1:1: error: invalid number '2x': write a '*' to multiply a number by a name"},
      {"a @ b", "1:3: error: macros ('@name') are not supported in .moe"},
      {"a $ b", "1:3: error: unexpected character '$'"},
      {"a \x01 b", "1:3: error: unexpected control character 0x1"},
      {"a \xe2\x88\x80 b", "1:3: error: unexpected character U+2200"},
  };
  for (const Case &c : cases) {
    Lexed l = lex(c.source);
    EXPECT_GE(l.errors, 1u) << c.source;
    EXPECT_NE(l.diagnostics.find("test.moe:" + c.message), std::string::npos)
        << "source: " << c.source << "\ndiagnostics:\n"
        << l.diagnostics;
    EXPECT_EQ(l.tokens.back().kind, K::Eof) << c.source;
  }
  // Independent errors on several lines are all reported in one run.
  Lexed several = lex("a = @\nb = 2x\nc = \"\\z\"\n");
  EXPECT_EQ(several.errors, 3u) << several.diagnostics;
}

TEST(Lexer, DeepNestingAndRandomBytesAlwaysReachEndOfFile) {
  std::string deep(20000, '(');
  deep += "x";
  deep += std::string(20000, ')');
  EXPECT_EQ(lex(deep).tokens.back().kind, K::Eof);

  std::mt19937 rng(7);
  const char alphabet[] = "ab1_.\"\\#=()[]{}+-*/^,;:!<>&|\n \t\xcf\x83\xff\x80";
  for (int round = 0; round < 2000; ++round) {
    std::string src;
    size_t n = rng() % 64;
    for (size_t i = 0; i < n; ++i)
      src += round % 2 ? static_cast<char>(rng() % 256) : alphabet[rng() % (sizeof(alphabet) - 1)];
    Lexed l = lex(src);
    ASSERT_EQ(l.tokens.back().kind, K::Eof) << "did not terminate on a " << n << "-byte input";
  }
}

} // namespace
