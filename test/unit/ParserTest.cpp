// ParserTest.cpp - the .moe parser: the tree it builds, error recovery (several
// errors per run), bounded nesting, and termination on random bytes.
#include "moe/Frontend/Parser.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <random>

using namespace moe::frontend;

namespace {

/// Parses `source` as "test.moe"; diagnostics are collected in `diagnostics`.
struct Parsed {
  llvm::SourceMgr sourceMgr;
  std::string diagnostics;
  std::unique_ptr<llvm::raw_string_ostream> stream;
  Program program;
  unsigned errors = 0;
};

std::unique_ptr<Parsed> parse(llvm::StringRef source) {
  auto out = std::make_unique<Parsed>();
  unsigned buffer =
      out->sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, "test.moe"), llvm::SMLoc());
  out->stream = std::make_unique<llvm::raw_string_ostream>(out->diagnostics);
  installCaretDiagnosticPrinter(out->sourceMgr, *out->stream);
  Diagnostics diags(out->sourceMgr);
  out->program = parseSource(diags, buffer);
  out->errors = diags.getNumErrors();
  return out;
}

const char *kMixtral = R"(
const d_model = 4096
const d_ff    = 14336

"""Mixtral 8x7B sparse MoE block."""
layer MixtralMoE{T = bf16}(n_experts::Int = 8, top_k::Int = 2)
    router  = Dense(d_model => n_experts)
    experts = Experts(n_experts, SwiGLU(d_model => d_ff))

    function (x::Tensor{T}[tokens, d_model])
        p    = softmax(router(x); dims = 2)
        w, e = topk(p, top_k)
        w    = w ./ sum(w; dims = 2)
        return combine(experts(dispatch(x, e)), w)
    end
end
)";

TEST(Parser, BuildsTheSpecExample) {
  auto p = parse(kMixtral);
  ASSERT_EQ(p->errors, 0u) << p->diagnostics;
  ASSERT_EQ(p->program.consts.size(), 2u);
  EXPECT_EQ(p->program.consts[1].name, "d_ff");
  EXPECT_EQ(llvm::cast<IntegerExpr>(*p->program.consts[1].value).value, 14336);
  ASSERT_EQ(p->program.layers.size(), 1u);
  const LayerDecl &layer = p->program.layers[0];
  EXPECT_EQ(layer.name, "MixtralMoE");
  EXPECT_EQ(layer.doc, "Mixtral 8x7B sparse MoE block.");
  ASSERT_EQ(layer.typeParams.size(), 1u);
  ASSERT_EQ(layer.hyperParams.size(), 2u);
  EXPECT_EQ(layer.hyperParams[1].name, "top_k");
  ASSERT_EQ(layer.fields.size(), 2u);
  EXPECT_EQ(layer.fields[1].name, "experts");
  ASSERT_TRUE(layer.forward);
  ASSERT_EQ(layer.forward->params.size(), 1u);
  ASSERT_EQ(layer.forward->body.size(), 4u);
  // `w, e = topk(p, top_k)` destructures into a tuple target.
  const Stmt &destructure = layer.forward->body[1];
  EXPECT_EQ(destructure.kind, Stmt::Kind::Assign);
  ASSERT_EQ(destructure.target.elements.size(), 2u);
  EXPECT_EQ(destructure.target.elements[1].name, "e");
  // `softmax(router(x); dims = 2)` has a keyword argument.
  const auto &call = llvm::cast<CallExpr>(*layer.forward->body[0].value);
  ASSERT_EQ(call.keywords.size(), 1u);
  EXPECT_EQ(call.keywords[0].name, "dims");
  EXPECT_EQ(layer.forward->body[3].kind, Stmt::Kind::Return);
}

TEST(Parser, PrecedenceFollowsJulia) {
  auto p = parse("const a = -2^2 + 3 * 4 .* 5 => 6\n");
  ASSERT_EQ(p->errors, 0u) << p->diagnostics;
  // => is loosest, then +, then * and .* (left associative), then unary minus, then ^.
  const auto &pair = llvm::cast<BinaryExpr>(*p->program.consts[0].value);
  EXPECT_EQ(pair.op, TokenKind::Arrow);
  const auto &sum = llvm::cast<BinaryExpr>(*pair.lhs);
  EXPECT_EQ(sum.op, TokenKind::Plus);
  const auto &neg = llvm::cast<UnaryExpr>(*sum.lhs);
  EXPECT_EQ(llvm::cast<BinaryExpr>(*neg.operand).op, TokenKind::Caret);
  const auto &dotStar = llvm::cast<BinaryExpr>(*sum.rhs);
  EXPECT_EQ(dotStar.op, TokenKind::DotStar);
  EXPECT_EQ(llvm::cast<BinaryExpr>(*dotStar.lhs).op, TokenKind::Star);
}

TEST(Parser, ReportsIndependentErrorsInOneRun) {
  auto p = parse(R"(
layer L
    function (x::Tensor{f32}[t, 4])
        a = (1 + )
        b = 1 c
        f(x) = 2
        return x
    end
end
const ok = 1
x = 2
)");
  EXPECT_EQ(p->errors, 4u) << p->diagnostics;
  EXPECT_NE(p->diagnostics.find("test.moe:4:18: error: expected an expression, found ')'"), std::string::npos)
      << p->diagnostics;
  EXPECT_NE(p->diagnostics.find("test.moe:11:1: error:"), std::string::npos) << p->diagnostics;
  // The good declarations around the errors survive.
  EXPECT_EQ(p->program.layers.size(), 1u);
  EXPECT_EQ(p->program.consts.size(), 1u);
}

TEST(Parser, DeepNestingIsAnErrorNotAStackOverflow) {
  for (const char *open : {"(", "-", "f("}) {
    std::string source = "const a = ";
    for (int i = 0; i < 20000; ++i)
      source += open;
    source += "1\n";
    auto p = parse(source);
    EXPECT_EQ(p->errors, 1u) << open;
    EXPECT_NE(p->diagnostics.find("nested too deeply"), std::string::npos) << open;
  }
}

TEST(Parser, TerminatesOnRandomInput) {
  // Fresh random bytes and random token soup: the parser must return, with
  // errors or not, and never crash.
  std::mt19937 rng(std::random_device{}());
  const char *pieces[] = {"layer", "function", "end", "(",      ")",     "[",         "]",     "{",    "}",     ",",
                          ";",     "=",        "=>",  ".+",     ".(",    "x",         "1",     "2.5",  "\n",    "\"",
                          "#=",    "=#",       "::",  "return", "const", "Tensor{T}", "topk(", ":sym", "\"\"\""};
  for (int i = 0; i < 1000; ++i) {
    std::string source;
    int n = rng() % 200;
    for (int j = 0; j < n; ++j) {
      if (i % 2)
        source += static_cast<char>(rng() % 256);
      else
        source += std::string(pieces[rng() % std::size(pieces)]) + (rng() % 3 ? " " : "");
    }
    auto p = parse(source);
    (void)p;
  }
  SUCCEED();
}

} // namespace
