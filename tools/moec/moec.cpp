//===- moec.cpp - the moe compiler driver -----------------------*- C++ -*-===//
//
// `moec FILE.moe` parses and elaborates a layer into moe-dialect MLIR, runs
// the default pipeline and prints it; `--emit=ast` prints the syntax tree and
// `moec check` only reports errors. Errors print as `file:line:col: error:`
// with the source line and a caret; the exit status is 1 after any error.
//
//===----------------------------------------------------------------------===//
#include "moe/Frontend/Parser.h"
#include "moe/Frontend/Sema.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cstring>

namespace cl = llvm::cl;
using namespace moe::frontend;

namespace {
enum class Emit { Ast, Mlir };

cl::OptionCategory moecCategory("moec options");
cl::OptionCategory mlirCategory("MLIR options (they apply to the pipeline moec runs)");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.moe>"), cl::init("-"),
                               cl::cat(moecCategory));
cl::opt<Emit> emit("emit", cl::desc("What to print"), cl::init(Emit::Mlir),
                   cl::values(clEnumValN(Emit::Ast, "ast", "the syntax tree, with line:col"),
                              clEnumValN(Emit::Mlir, "mlir", "moe-dialect MLIR (default)")),
                   cl::cat(moecCategory));
cl::opt<std::string> outputFile("o", cl::desc("Write the output here instead of stdout"),
                                cl::value_desc("file"), cl::init("-"), cl::cat(moecCategory));
cl::opt<std::string> layerName("layer", cl::desc("The layer to compile when the file declares "
                                                 "several (default: the last one)"),
                               cl::value_desc("name"), cl::cat(moecCategory));
cl::list<std::string> overrides("set",
                                cl::desc("Override a hyperparameter or type parameter, e.g. "
                                         "--set top_k=4 --set T=f32 (or --set a=1,b=2)"),
                                cl::value_desc("name=value"), cl::CommaSeparated,
                                cl::cat(moecCategory));
cl::opt<bool> splitInputFile(
    "split-input-file",
    cl::desc("Compile each chunk between '# -----' lines on its own (for tests); line "
             "numbers stay those of the whole file"),
    cl::cat(moecCategory));
cl::opt<bool> noOptimize("O0", cl::desc("Print the IR as elaborated, without the default "
                                        "pipeline (verify, canonicalize, cse)"),
                         cl::cat(moecCategory));

const char *const kOverview = R"(moec: the moe compiler

Compiles a Mixture-of-Experts layer written in the .moe language (a Julia-style
file holding the router, the experts, dispatch and combine) into moe-dialect
MLIR. Errors are reported as file:line:col with the source line and a caret.

USAGE
  moec FILE.moe [options]          print the layer as moe-dialect MLIR
  moec FILE.moe --emit=ast         print the syntax tree
  moec check FILE.moe [options]    check every layer of FILE; print nothing on success

EXAMPLES
  moec examples/mixtral.moe
  moec examples/mixtral.moe --set top_k=4 --set T=f32 -o mixtral.mlir
  moec examples/deepseek_v3.moe -mlir-print-ir-after-all
  moec check my_layer.moe

The MLIR IR-printing, timing and debug-info flags (-mlir-print-ir-after-all,
-mlir-timing, -mlir-print-debuginfo, ...) apply to the pipeline moec runs.
See docs/language.md for the language.
)";

/// Splits `--set name=value` options.
bool parseOverrides(std::vector<std::pair<std::string, std::string>> &out) {
  for (const std::string &o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      llvm::WithColor::error(llvm::errs(), "moec")
          << "--set expects name=value, got '" << o << "'\n";
      return false;
    }
    out.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  return true;
}
/// Parses, elaborates, optimises and prints one buffer; false after an error.
bool compileBuffer(std::unique_ptr<llvm::MemoryBuffer> input, bool checkOnly,
                   const std::vector<std::pair<std::string, std::string>> &overrides,
                   llvm::raw_ostream &os) {
  llvm::SourceMgr sourceMgr;
  unsigned buffer = sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  installCaretDiagnosticPrinter(sourceMgr, llvm::errs());
  Diagnostics diags(sourceMgr);
  Program program = parseSource(diags, buffer);
  // Elaborating after syntax errors would only add noise.
  if (diags.getNumErrors() != 0)
    return false;
  if (emit == Emit::Ast && !checkOnly) {
    printProgram(program, sourceMgr, os);
    return true;
  }

  mlir::MLIRContext context;
  registerFrontendDialects(context);
  // MLIR diagnostics (verifier, passes) point into the .moe source too.
  mlir::SourceMgrDiagnosticHandler mlirDiagnostics(sourceMgr, &context);
  ElaborationOptions options;
  options.layer = layerName;
  options.allLayers = checkOnly && layerName.empty();
  options.overrides = overrides;
  mlir::OwningOpRef<mlir::ModuleOp> module = elaborate(program, diags, context, options);
  if (!module)
    return false;

  if (!noOptimize) {
    mlir::PassManager pm(&context);
    if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
      return false;
    mlir::DefaultTimingManager timing;
    mlir::applyDefaultTimingManagerCLOptions(timing);
    mlir::TimingScope rootTiming = timing.getRootScope();
    pm.enableTiming(rootTiming);
    mlir::moe::buildMoEDefaultPipeline(pm);
    if (mlir::failed(pm.run(*module)))
      return false;
  }
  if (!checkOnly) {
    module->print(os, mlir::OpPrintingFlags());
    os << "\n";
  }
  return true;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  // A leading subcommand.
  bool checkOnly = false;
  std::vector<char *> args(argv, argv + argc);
  if (argc > 1 && std::strcmp(argv[1], "check") == 0) {
    checkOnly = true;
    args.erase(args.begin() + 1);
  } else if (argc > 1 && (std::strcmp(argv[1], "build") == 0 || std::strcmp(argv[1], "run") == 0)) {
    llvm::WithColor::error(llvm::errs(), "moec")
        << "'" << argv[1] << "' is not available in this version: it needs the CPU backend\n";
    return 1;
  }

  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  // --help shows moec's options and MLIR's, not the hundreds of LLVM's.
  for (auto &entry : cl::getRegisteredOptions()) {
    llvm::StringRef name = entry.first;
    if (name.starts_with("mlir-") || name.starts_with("pass-"))
      entry.second->addCategory(mlirCategory);
  }
  cl::HideUnrelatedOptions({&moecCategory, &mlirCategory});
  cl::ParseCommandLineOptions(static_cast<int>(args.size()), args.data(), kOverview);

  std::vector<std::pair<std::string, std::string>> parsedOverrides;
  if (!parseOverrides(parsedOverrides))
    return 1;

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input = mlir::openInputFile(inputFile, &errorMessage);
  if (!input) {
    llvm::WithColor::error(llvm::errs(), "moec") << errorMessage << "\n";
    return 1;
  }
  auto output = mlir::openOutputFile(outputFile, &errorMessage);
  if (!output) {
    llvm::WithColor::error(llvm::errs(), "moec") << errorMessage << "\n";
    return 1;
  }
  bool ok = true;
  if (!splitInputFile) {
    ok = compileBuffer(std::move(input), checkOnly, parsedOverrides, output->os());
  } else {
    // Each chunk keeps its place: the other chunks' lines become empty lines.
    llvm::SmallVector<llvm::StringRef> lines;
    input->getBuffer().split(lines, '\n');
    size_t begin = 0;
    for (size_t i = 0; i <= lines.size(); ++i) {
      if (i < lines.size() && !lines[i].trim().starts_with("# -----"))
        continue;
      std::string text;
      for (size_t j = 0; j < lines.size(); ++j)
        text += (j >= begin && j < i ? lines[j].str() : std::string()) + "\n";
      ok &= compileBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, input->getBufferIdentifier()),
                          checkOnly, parsedOverrides, output->os());
      if (!checkOnly && i < lines.size())
        output->os() << "// -----\n";
      begin = i + 1;
    }
  }
  output->keep();
  return ok ? 0 : 1;
}
