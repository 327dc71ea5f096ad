//===- moec.cpp - the moe compiler driver -----------------------*- C++ -*-===//
//
// `moec FILE.moe` parses and elaborates a layer into moe-dialect MLIR, runs
// the default pipeline and prints it; `--emit=ast` prints the syntax tree and
// `moec check` only reports errors. Errors print as `file:line:col: error:`
// with the source line and a caret; the exit status is 1 after any error.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "moe/Compiler/Compiler.h"
#include "moe/Compiler/Pipelines.h"
#include "moe/runtime/target.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cstring>
#include <unistd.h>

namespace cl = llvm::cl;
using namespace moe::frontend;

namespace {
enum class Emit { Ast, Mlir, Llvm, Ptx, TrainPtx };

cl::OptionCategory moecCategory("moec options");
cl::OptionCategory mlirCategory("MLIR options (they apply to the pipeline moec runs)");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.moe>"), cl::init("-"), cl::cat(moecCategory));
cl::opt<Emit>
    emit("emit", cl::desc("What to print"), cl::init(Emit::Mlir),
         cl::values(clEnumValN(Emit::Ast, "ast", "the syntax tree, with line:col"),
                    clEnumValN(Emit::Mlir, "mlir", "moe-dialect MLIR (default)"),
                    clEnumValN(Emit::Llvm, "llvm", "the LLVM IR of the layer's host code for --target (O3)"),
                    clEnumValN(Emit::Ptx, "ptx", "the PTX of every kernel of the layer for --target (default sm_90a)"),
                    clEnumValN(Emit::TrainPtx, "train-ptx",
                               "with --train: the PTX of the training step's kernels (AdamW, the loss)")),
         cl::cat(moecCategory));
cl::opt<std::string> outputFile("o", cl::desc("Write the output here instead of stdout"), cl::value_desc("file"),
                                cl::init("-"), cl::cat(moecCategory));
cl::opt<std::string> layerName("layer",
                               cl::desc("The layer to compile when the file declares "
                                        "several (default: the last one)"),
                               cl::value_desc("name"), cl::cat(moecCategory));
cl::list<std::string> overrides("set",
                                cl::desc("Override a hyperparameter or type parameter, e.g. "
                                         "--set top_k=4 --set T=f32 (or --set a=1,b=2)"),
                                cl::value_desc("name=value"), cl::CommaSeparated, cl::cat(moecCategory));
cl::opt<bool> splitInputFile("split-input-file",
                             cl::desc("Compile each chunk between '# -----' lines on its own (for tests); line "
                                      "numbers stay those of the whole file"),
                             cl::cat(moecCategory));
cl::OptionCategory runCategory("moec build / run options");
cl::opt<std::string> target("target",
                            cl::desc("Code generation target: cpu, or a CUDA architecture "
                                     "(sm_90a for H100/H200, sm_90, sm_80)"),
                            cl::init("cpu"), cl::cat(runCategory));
cl::opt<bool> gpuCubin("gpu-cubin",
                       cl::desc("GPU targets: embed a cubin assembled by the CUDA toolkit's ptxas (default, when "
                                "found); --gpu-cubin=false embeds PTX for the driver to compile at load time"),
                       cl::init(true), cl::cat(runCategory));
cl::opt<std::string> meshText("mesh",
                              cl::desc("build: place the layer on a device mesh rep=R,dp=D,ep=E (axes left out are "
                                       "1), run with mpirun -n R*D*E moe-run (docs/sharding.md)"),
                              cl::value_desc("rep=R,dp=D,ep=E"), cl::init(""), cl::cat(runCategory));
cl::opt<bool> train("train",
                    cl::desc("build: add the layer's backward (gradients of every float input and parameter) for "
                             "training: moe-run --backward / --train (docs/training.md)"),
                    cl::cat(runCategory));
cl::opt<bool> backwardRun("backward",
                          cl::desc("run: the backward too (compiles with --train): writes the gradients with the "
                                   "outputs to --output; with --check, compares them with the reference evaluator's"),
                          cl::cat(runCategory));
cl::opt<std::string> cotangentFile("cotangent",
                                   cl::desc("run --backward: a cotangent per output, named as it (default: random)"),
                                   cl::value_desc("DY.safetensors"), cl::cat(runCategory));
cl::opt<std::string> device("device", cl::desc("run: where to run (cpu or cuda; default: the target's)"), cl::init(""),
                            cl::cat(runCategory));
cl::opt<std::string> weightsFile("weights",
                                 cl::desc("run: parameters from a safetensors file (default: random, by --seed)"),
                                 cl::value_desc("W.safetensors"), cl::cat(runCategory));
cl::opt<std::string>
    inputFileOpt("input",
                 cl::desc("run: inputs from a safetensors file, named after the forward arguments (default: random)"),
                 cl::value_desc("X.safetensors"), cl::cat(runCategory));
cl::opt<std::string>
    outputTensors("output", cl::desc("run: write the outputs (output, or output1, output2, ...) to a safetensors file"),
                  cl::value_desc("Y.safetensors"), cl::cat(runCategory));
cl::opt<unsigned> seed("seed", cl::desc("run: seed of the random weights and inputs"), cl::init(0),
                       cl::cat(runCategory));
cl::opt<unsigned> tokens("tokens", cl::desc("run: size of every symbolic dimension (tokens) of random inputs"),
                         cl::init(16), cl::cat(runCategory));
cl::opt<bool> bench("bench", cl::desc("run: time the layer (median of --iterations calls) and print GFLOP/s"),
                    cl::cat(runCategory));
cl::opt<bool> checkReference("check",
                             cl::desc("run: compare the outputs with the float64 reference evaluator (exit 1 "
                                      "beyond 1e-5 where every value on the way is f32, 1e-2 where a "
                                      "bf16/f16 value is)"),
                             cl::cat(runCategory));
cl::opt<std::string> checkOutputs("check-outputs",
                                  cl::desc("run --check: compare the outputs in this safetensors file (e.g. from "
                                           "moe-run on a GPU machine, same --seed/--tokens) instead"),
                                  cl::value_desc("Y.safetensors"), cl::cat(runCategory));
cl::opt<unsigned> iterations("iterations", cl::desc("run --bench: timed calls"), cl::init(10), cl::cat(runCategory));
// LLVM registers a `--threads` option of its own, so the flag is
// --num-threads here; moe-run takes the same name (and --threads).
cl::opt<unsigned> threads("num-threads",
                          cl::desc("run: CPU threads of the kernels, as moe-run --num-threads "
                                   "(default: MOE_NUM_THREADS, else all)"),
                          cl::init(0), cl::cat(runCategory));
cl::opt<bool> noOptimize("O0",
                         cl::desc("Print the IR as elaborated, without the default "
                                  "pipeline (verify, canonicalize, cse)"),
                         cl::cat(moecCategory));

const char *const kOverview = R"(moec: the moe compiler

Compiles a Mixture-of-Experts layer written in the .moe language (a Julia-style
file holding the router, the experts, dispatch and combine) into moe-dialect
MLIR. Errors are reported as file:line:col with the source line and a caret.

USAGE
  moec FILE.moe [options]          print the layer as moe-dialect MLIR
  moec FILE.moe --emit=ast         print the syntax tree
  moec FILE.moe --emit=llvm        print the LLVM IR of the layer compiled for the CPU
  moec FILE.moe --emit=ptx [--target=sm_80]   print the PTX of the layer's GPU kernels
  moec FILE.moe --train --emit=train-ptx     the PTX of the GPU training step's kernels (AdamW, the loss)
  moec check FILE.moe [options]    check every layer of FILE; print nothing on success
  moec build FILE.moe -o L.moeb    compile the layer into an artifact (--target=cpu|sm_90a|sm_90|sm_80)
  moec build FILE.moe --train -o L.moeb   the same with the backward, for moe-run --backward / --train
  moec run FILE.moe|L.moeb         run it: random or given weights and inputs, a summary

EXAMPLES
  moec examples/mixtral.moe
  moec examples/mixtral.moe --set top_k=4 --set T=f32 -o mixtral.mlir
  moec examples/deepseek_v3.moe -mlir-print-ir-after-all
  moec check my_layer.moe
  moec build examples/switch.moe -o switch.moeb
  moec run switch.moeb --tokens 128 --bench
  moec build examples/mixtral.moe --target=sm_90a -o mixtral.moeb && moe-run mixtral.moeb --bench
  moec run examples/mixtral.moe --device cuda --tokens 4096 --check
  moec run examples/mixtral.moe --weights w.safetensors --input x.safetensors --output y.safetensors

GPU KERNEL OPTIONS
  --gpu-<option>[=value] sets an option of the convert-moe-to-gpu-kernels pass
  (moe-opt --help lists them; docs/gpu.md explains them), e.g.
  --gpu-gemm=mma|wgmma  --gpu-gemm-k-tile=32|64  --gpu-gemm-n=128|256
  --gpu-gemm-epilogue=staged|direct  --gpu-gemm-tma  --gpu-gemm-persistent

The MLIR IR-printing, timing and debug-info flags (-mlir-print-ir-after-all,
-mlir-timing, -mlir-print-debuginfo, ...) apply to the pipeline moec runs.
See docs/language.md for the language.
)";

/// --target, parsed once in main (the rest of moec never compares its text).
moe::runtime::Target parsedTarget;
moe::runtime::Mesh parsedMesh;
/// Where --emit=ptx and --device=cuda compile when --target names no GPU.
const moe::runtime::Target kDefaultGpu = *moe::runtime::parseTarget("sm_90a");
/// The GPU kernels' options, from the --gpu-<option> flags (parsed in main).
moe::GPUKernelOptions kernelOptions;

moe::CompileOptions compileOptions(const moe::runtime::Target &chosen) {
  moe::CompileOptions options;
  options.target = chosen;
  options.cubin = gpuCubin;
  options.kernels = kernelOptions;
  options.mesh = parsedMesh;
  options.train = train || backwardRun || !cotangentFile.empty();
  return options;
}

/// Takes the --gpu-<option>[=value] flags (but moec's own --gpu-cubin) out of
/// `args` as convert-moe-to-gpu-kernels' option text: the pass declares them
/// (Passes.td) and parses them, so moec never lists them again.
std::string takeKernelOptions(std::vector<char *> &args) {
  std::string text;
  for (auto it = args.begin() + 1; it != args.end();) {
    llvm::StringRef arg(*it);
    llvm::StringRef name = arg.ltrim('-');
    if (arg.starts_with("-") && name.starts_with("gpu-") && !name.starts_with("gpu-cubin")) {
      text += (text.empty() ? "" : " ") + name.drop_front(4).str();
      it = args.erase(it);
    } else {
      ++it;
    }
  }
  return text;
}

/// Splits `--set name=value` options.
bool parseOverrides(std::vector<std::pair<std::string, std::string>> &out) {
  for (const std::string &o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      llvm::WithColor::error(llvm::errs(), "moec") << "--set expects name=value, got '" << o << "'\n";
      return false;
    }
    out.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  return true;
}
/// Parses, elaborates, optimises and prints one buffer; false after an error.
bool compileBuffer(std::unique_ptr<llvm::MemoryBuffer> input, bool checkOnly,
                   const std::vector<std::pair<std::string, std::string>> &overrides, llvm::raw_ostream &os) {
  moe::CompileSession session(std::move(input));
  const Program *program = session.parse();
  if (!program)
    return false;
  if (emit == Emit::Ast && !checkOnly) {
    printProgram(*program, session.getSourceMgr(), os);
    return true;
  }

  ElaborationOptions options;
  options.layer = layerName;
  options.allLayers = checkOnly && layerName.empty();
  options.overrides = overrides;
  mlir::OwningOpRef<mlir::ModuleOp> module = session.elaborate(options);
  if (!module)
    return false;
  mlir::MLIRContext &context = session.getContext();

  // The default pipeline (verify, canonicalize, cse) opens the lowering
  // pipelines too: --emit=llvm|ptx runs it there, once.
  bool lowering = emit == Emit::Llvm || emit == Emit::Ptx || emit == Emit::TrainPtx;
  if (!noOptimize && !(lowering && !checkOnly)) {
    mlir::PassManager pm(&context);
    if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
      return false;
    mlir::DefaultTimingManager timing;
    mlir::applyDefaultTimingManagerCLOptions(timing);
    mlir::TimingScope rootTiming = timing.getRootScope();
    pm.enableTiming(rootTiming);
    moe::buildMoEDefaultPipeline(pm);
    if (mlir::failed(pm.run(*module)))
      return false;
  }
  if (checkOnly)
    return true;
  if (lowering) {
    const bool ptx = emit != Emit::Llvm;
    moe::runtime::Artifact artifact;
    moe::CompileListing listing;
    moe::CompileOptions options = compileOptions(ptx && !parsedTarget.isCuda() ? kDefaultGpu : parsedTarget);
    if (emit == Emit::TrainPtx && !options.train) {
      llvm::errs() << "moec: --emit=train-ptx needs --train (the training step's kernels are a train artifact's)\n";
      return false;
    }
    if (ptx)
      options.cubin = false; // the PTX is printed, not assembled: ptxas would be wasted time
    if (mlir::failed(moe::compile(*module, options, artifact, &listing)))
      return false;
    os << (emit == Emit::Ptx ? listing.ptx : emit == Emit::TrainPtx ? listing.trainPtx : listing.llvmIR);
    return true;
  }
  module->print(os, mlir::OpPrintingFlags());
  os << "\n";
  return true;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  // Out of memory ends moec with a message and exit status 1, not an abort
  // (the sizes are checked first; this is the last line of defence).
  llvm::install_bad_alloc_error_handler([](void *, const char *reason, bool) {
    const char message[] = "moec: error: out of memory (the layer or its data do not fit this machine)\n";
    (void)!::write(2, message, sizeof message - 1);
    ::_exit(1);
  });
  // A leading subcommand.
  if (argc > 1 && std::strcmp(argv[1], "import") == 0)
    return moec::importHf(argc - 2, argv + 2);
  if (argc > 1 && std::strcmp(argv[1], "export-hf") == 0)
    return moec::exportHf(argc - 2, argv + 2);
  bool checkOnly = false;
  enum class Command { Compile, Build, Run } command = Command::Compile;
  std::vector<char *> args(argv, argv + argc);
  if (argc > 1 && std::strcmp(argv[1], "check") == 0) {
    checkOnly = true;
    args.erase(args.begin() + 1);
  } else if (argc > 1 && std::strcmp(argv[1], "build") == 0) {
    command = Command::Build;
    args.erase(args.begin() + 1);
  } else if (argc > 1 && std::strcmp(argv[1], "run") == 0) {
    command = Command::Run;
    args.erase(args.begin() + 1);
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
  cl::HideUnrelatedOptions({&moecCategory, &runCategory, &mlirCategory});
  std::string kernelOptionText = takeKernelOptions(args);
  cl::ParseCommandLineOptions(static_cast<int>(args.size()), args.data(), kOverview);
  if (mlir::failed(moe::parseGPUKernelOptions(kernelOptionText, kernelOptions, [](const llvm::Twine &message) {
        // The pass's option parser names itself and ends with a newline.
        std::string text = message.str();
        llvm::StringRef reason = llvm::StringRef(text).trim();
        reason.consume_front("<Pass-Options-Parser>: ");
        // A bad value is reported by the option itself, just above.
        llvm::WithColor::error(llvm::errs(), "moec")
            << "bad --gpu-* option" << (reason.empty() ? "" : ": ") << reason
            << " (the options of convert-moe-to-gpu-kernels: moec --help, docs/gpu.md)\n";
        return mlir::failure();
      })))
    return 1;

  std::vector<std::pair<std::string, std::string>> parsedOverrides;
  if (!parseOverrides(parsedOverrides))
    return 1;

  if (std::optional<moe::runtime::Target> t = moe::runtime::parseTarget(target)) {
    parsedTarget = *t;
  } else {
    llvm::WithColor::error(llvm::errs(), "moec")
        << "unknown --target=" << target << "; " << moe::runtime::kTargetsHelp << "\n";
    return 1;
  }
  {
    std::string error;
    std::optional<moe::runtime::Mesh> mesh = moe::runtime::parseMesh(meshText, error);
    if (!mesh) {
      llvm::WithColor::error(llvm::errs(), "moec") << "--mesh: " << error << "\n";
      return 1;
    }
    parsedMesh = *mesh;
    if (!parsedMesh.isSingleDevice() && command == Command::Run) {
      llvm::WithColor::error(llvm::errs(), "moec")
          << "--mesh " << parsedMesh.toString() << " places the layer on " << parsedMesh.world()
          << " ranks: build it (moec build --mesh ... -o L.moeb), then run mpirun -n " << parsedMesh.world()
          << " moe-run L.moeb\n";
      return 1;
    }
  }
  if (!device.empty() && device != "cpu" && device != "cuda") {
    llvm::WithColor::error(llvm::errs(), "moec") << "unknown --device=" << device << "; use cpu or cuda\n";
    return 1;
  }
  if (device == "cpu" && parsedTarget.isCuda()) {
    llvm::WithColor::error(llvm::errs(), "moec") << "--device=cpu cannot run code for --target=" << target << "\n";
    return 1;
  }
  if (command != Command::Compile) {
    // --device cuda alone means the Hopper target.
    const moe::runtime::Target &chosen = device == "cuda" && !parsedTarget.isCuda() ? kDefaultGpu : parsedTarget;
    moec::LayerSource source{inputFile, layerName, parsedOverrides, compileOptions(chosen)};
    if (command == Command::Build) {
      if (outputFile == "-") {
        llvm::WithColor::error(llvm::errs(), "moec") << "build needs -o LAYER.moeb\n";
        return 1;
      }
      return moec::build(source, outputFile);
    }
    // An artifact is compiled already: options that shape the compilation
    // would be silently ignored, so they are refused.
    if (llvm::StringRef(inputFile).ends_with(".moeb")) {
      const char *compileOnly = !parsedOverrides.empty() ? "--set"
                                : !layerName.empty()     ? "--layer"
                                : parsedTarget.isCuda()  ? "--target"
                                                         : nullptr;
      if (compileOnly) {
        llvm::WithColor::error(llvm::errs(), "moec")
            << compileOnly << " applies to a .moe source; " << inputFile
            << " is an artifact, compiled with its values already (moec build them in)\n";
        return 1;
      }
    }
    moec::RunOptions run;
    run.weights = weightsFile;
    run.inputs = inputFileOpt;
    run.outputs = outputTensors;
    run.seed = seed;
    run.tokens = tokens;
    run.bench = bench;
    run.iterations = iterations;
    run.threads = threads;
    run.check = checkReference;
    run.device = device;
    run.checkOutputs = checkOutputs;
    run.backward = backwardRun || !cotangentFile.empty();
    run.cotangents = cotangentFile;
    return moec::run(source, run);
  }

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
      ok &= compileBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, input->getBufferIdentifier()), checkOnly,
                          parsedOverrides, output->os());
      if (!checkOnly && i < lines.size())
        output->os() << "// -----\n";
      begin = i + 1;
    }
  }
  output->keep();
  return ok ? 0 : 1;
}
