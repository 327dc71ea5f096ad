// SemaTest.cpp - elaboration of .moe programs into moe IR through the C++ API:
// signatures, parameter names, overrides, inlined-call locations, errors.
#include "moe/Frontend/Sema.h"
#include "moe/Frontend/Parser.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace moe::frontend;

namespace {

struct Compiled {
  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  std::string diagnostics;
  std::unique_ptr<llvm::raw_string_ostream> stream;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  unsigned errors = 0;
};

std::unique_ptr<Compiled> compile(llvm::StringRef source, ElaborationOptions options = {}) {
  auto out = std::make_unique<Compiled>();
  out->stream = std::make_unique<llvm::raw_string_ostream>(out->diagnostics);
  unsigned buffer =
      out->sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, "test.moe"), llvm::SMLoc());
  installCaretDiagnosticPrinter(out->sourceMgr, *out->stream);
  Diagnostics diags(out->sourceMgr);
  Program program = parseSource(diags, buffer);
  if (diags.getNumErrors() == 0)
    out->module = elaborate(program, diags, out->context, options);
  out->errors = diags.getNumErrors();
  return out;
}

const char *kLayer = R"(
const d = 16
route(s, k) = topk(softmax(s; dims = 2), k)
layer Tiny{T = f32}(n::Int = 4, k::Int = 2)
    router  = Dense(d => n)
    experts = Experts(n, SwiGLU(d => 32))
    function (x::Tensor{T}[tokens, d])
        w, e = route(router(x), k)
        return combine(experts(dispatch(x, e)), w)
    end
end
)";

TEST(Sema, ElaboratesASignatureWithNamedInputsAndParameters) {
  auto c = compile(kLayer);
  ASSERT_TRUE(c->module) << c->diagnostics;
  auto fn = c->module->lookupSymbol<mlir::func::FuncOp>("Tiny");
  ASSERT_TRUE(fn);
  ASSERT_EQ(fn.getNumArguments(), 5u);
  auto name = [&](unsigned i, llvm::StringRef attr) {
    auto s = fn.getArgAttrOfType<mlir::StringAttr>(i, attr);
    return s ? s.getValue().str() : std::string();
  };
  EXPECT_EQ(name(0, "moe.input"), "x");
  EXPECT_EQ(name(1, "moe.param"), "router.weight");
  EXPECT_EQ(name(2, "moe.param"), "experts.w_gate");
  EXPECT_EQ(name(4, "moe.param"), "experts.w_down");
  auto x = llvm::cast<mlir::RankedTensorType>(fn.getArgumentTypes()[0]);
  EXPECT_TRUE(x.isDynamicDim(0));
  EXPECT_EQ(x.getDimSize(1), 16);
  auto wg = llvm::cast<mlir::RankedTensorType>(fn.getArgumentTypes()[2]);
  EXPECT_EQ(wg.getShape(), llvm::ArrayRef<int64_t>({4, 16, 32}));
  ASSERT_EQ(fn.getNumResults(), 1u);
}

TEST(Sema, InlinedHelperOpsCarryCallSiteLocations) {
  auto c = compile(kLayer);
  ASSERT_TRUE(c->module) << c->diagnostics;
  moe::TopKOp topk;
  c->module->walk([&](moe::TopKOp op) { topk = op; });
  ASSERT_TRUE(topk);
  auto callsite = llvm::dyn_cast<mlir::CallSiteLoc>(topk.getLoc());
  ASSERT_TRUE(callsite);
  auto callee = llvm::cast<mlir::FileLineColLoc>(callsite.getCallee());
  auto caller = llvm::cast<mlir::FileLineColLoc>(callsite.getCaller());
  EXPECT_EQ(callee.getLine(), 3u); // route's body
  EXPECT_EQ(caller.getLine(), 8u); // the call in the forward method
  EXPECT_EQ(callee.getFilename(), "test.moe");
  // Every op of the layer has a source location.
  c->module->walk([&](mlir::Operation *op) {
    if (!llvm::isa<mlir::ModuleOp>(op))
      EXPECT_FALSE(llvm::isa<mlir::UnknownLoc>(op->getLoc())) << op->getName().getStringRef().str();
  });
}

TEST(Sema, OverridesChangeTheSpecialisation) {
  ElaborationOptions options;
  options.overrides = {{"n", "8"}, {"k", "3"}, {"T", "bf16"}};
  auto c = compile(kLayer, options);
  ASSERT_TRUE(c->module) << c->diagnostics;
  auto fn = c->module->lookupSymbol<mlir::func::FuncOp>("Tiny");
  auto wg = llvm::cast<mlir::RankedTensorType>(fn.getArgumentTypes()[2]);
  EXPECT_EQ(wg.getDimSize(0), 8);
  EXPECT_TRUE(wg.getElementType().isBF16());
  moe::TopKOp topk;
  c->module->walk([&](moe::TopKOp op) { topk = op; });
  EXPECT_EQ(topk.getK(), 3u);
}

TEST(Sema, ErrorsYieldNoModuleAndPointAtTheSource) {
  ElaborationOptions options;
  options.overrides = {{"k", "9"}};
  auto c = compile(kLayer, options);
  EXPECT_FALSE(c->module);
  EXPECT_EQ(c->errors, 1u) << c->diagnostics;
  EXPECT_NE(c->diagnostics.find("test.moe:3:"), std::string::npos) << c->diagnostics;
  EXPECT_NE(c->diagnostics.find("k = 9 must be between 1 and the number of experts (4)"), std::string::npos)
      << c->diagnostics;
  EXPECT_NE(c->diagnostics.find("test.moe:8:16: note: in the call of 'route' inlined here"), std::string::npos)
      << c->diagnostics;
}

TEST(Sema, SeveralLayersPickTheLastOrTheNamedOne) {
  std::string source = std::string(kLayer) + R"(
layer Other
    function (x::Tensor{f16}[t, 2])
        return x .* 2
    end
end
)";
  auto last = compile(source);
  ASSERT_TRUE(last->module) << last->diagnostics;
  EXPECT_TRUE(last->module->lookupSymbol("Other"));
  EXPECT_FALSE(last->module->lookupSymbol("Tiny"));
  ElaborationOptions named;
  named.layer = "Tiny";
  auto tiny = compile(source, named);
  ASSERT_TRUE(tiny->module) << tiny->diagnostics;
  EXPECT_TRUE(tiny->module->lookupSymbol("Tiny"));
  ElaborationOptions all;
  all.allLayers = true;
  auto both = compile(source, all);
  ASSERT_TRUE(both->module) << both->diagnostics;
  EXPECT_TRUE(both->module->lookupSymbol("Tiny") && both->module->lookupSymbol("Other"));
}

} // namespace
