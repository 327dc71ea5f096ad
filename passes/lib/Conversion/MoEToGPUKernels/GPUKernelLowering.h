//===- GPUKernelLowering.h - what the GPU kernel lowerings share -*- C++ -*-===//
//
// The forward's patterns (ConvertMoEToGPUKernels.cpp) and the backward's
// (GradientsToGPUKernels.cpp) generate kernels into one `gpu.module
// @moe_kernels` (KernelModule) and launch them through the same host-side
// helpers (Host, GPUKernelLoweringBase).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_GPUKERNELLOWERING_H
#define MOE_CONVERSION_GPUKERNELS_GPUKERNELLOWERING_H

#include "moe/Support/MLIR.h"

#include "../KernelConversion.h"
#include "../RuntimeAbi.h"
#include "Kernels/Kernels.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/IR/KernelAbi.h"
#include "moe/runtime/target.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Parser/Parser.h"

#include <map>
#include <memory>

namespace moe::gpu_lowering {

using namespace mlir;
namespace gk = moe::gpu_kernels;

/// The kernels' name of an operand's element type: the ops' type constraints
/// admit only the element types ElementTypes.h maps.
inline std::string eltName(Type t) { return kernelTypeName(*runtimeDType(t)); }

/// Whether `chip` has warpgroup MMA: sm_90a only (the arch-specific Hopper
/// target; sm_90 code must also run on later GPUs, which lack it).
inline bool hasWgmma(StringRef chip) {
  std::optional<::moe::runtime::Target> target =
      ::moe::runtime::parseTarget(std::string_view(chip.data(), chip.size()));
  return target && target->computeCapability == 90 && target->archSpecific;
}

/// The GEMMs' tensor-core instructions: the `gemm` option, or the chip's.
inline GemmEngine resolveEngine(const GPUKernelOptions &options) {
  if (options.gemm != GemmEngine::Auto)
    return options.gemm;
  return hasWgmma(options.chip) ? GemmEngine::Wgmma : GemmEngine::Mma;
}

/// The GEMM epilogue's activation for an expert FFN (its gate's, for a GLU).
inline const char *gemmActivation(moe_ffn_t ffn) {
  switch (ffn) {
  case MOE_FFN_SWIGLU:
  case MOE_FFN_MLP_SILU:
    return "silu";
  case MOE_FFN_GEGLU:
  case MOE_FFN_MLP_GELU:
    return "gelu";
  case MOE_FFN_MLP_RELU:
    return "relu";
  case MOE_FFN_IDENTITY:
    break;
  }
  return "identity";
}

/// The layer's kernel module and what has been generated into it.
class KernelModule {
public:
  /// @moe_kernels, created (with the container attribute) on first use.
  gpu::GPUModuleOp kernelModule(RewriterBase &b, ModuleOp module) {
    if (kernels)
      return kernels;
    b.modifyOpInPlace(module, [&] { module->setAttr("gpu.container_module", b.getUnitAttr()); });
    kernels = module.lookupSymbol<gpu::GPUModuleOp>("moe_kernels");
    if (!kernels) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "moe_kernels");
      // The dynamic shared memory the tensor-core kernels address (an extern
      // array, which the NVPTX back end leaves alone), aligned for wgmma's
      // 128-byte swizzle, which repeats every 1 KiB of addresses.
      b.setInsertionPointToStart(kernels.getBody());
      LLVM::GlobalOp::create(b, module.getLoc(), LLVM::LLVMArrayType::get(b.getI8Type(), 0), /*isConstant=*/false,
                             LLVM::Linkage::External, "moe_smem", Attribute(), /*alignment=*/1024, /*addrSpace=*/3);
    }
    return kernels;
  }

  /// The kernel `name` generated as `text`, parsed on first use. The cache is
  /// keyed by the whole generated text, so every field of a kernel's config
  /// counts; two different kernels under one name are refused.
  FailureOr<gpu::GPUFuncOp> get(RewriterBase &b, Location loc, const std::string &name, const std::string &text) {
    auto found = generated.find(name);
    if (found != generated.end()) {
      if (found->second.first != text)
        return emitError(loc) << "internal error: two different GPU kernels are both named " << name;
      return found->second.second;
    }
    ModuleOp module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
    gpu::GPUModuleOp kernels = kernelModule(b, module);
    std::string source = "gpu.module @moe_parse {\n  llvm.mlir.global external @moe_smem() {addr_space = 3 : i32, "
                         "alignment = 1024 : i64} : !llvm.array<0 x i8>\n" +
                         text + "}\n";
    ParserConfig config(module.getContext());
    OwningOpRef<ModuleOp> parsed = parseSourceString<ModuleOp>(source, config, name);
    if (!parsed)
      return emitError(loc) << "internal error: generated kernel " << name << " does not parse";
    auto holder = *parsed->getOps<gpu::GPUModuleOp>().begin();
    auto fn = *holder.getOps<gpu::GPUFuncOp>().begin();
    b.moveOpBefore(fn, kernels.getBody(), kernels.getBody()->end());
    generated.emplace(name, std::make_pair(text, fn));
    return fn;
  }

private:
  gpu::GPUModuleOp kernels;
  std::map<std::string, std::pair<std::string, gpu::GPUFuncOp>> generated;
};

/// Host-side helpers at one op: flat buffer views, scratch, launches.
class Host {
public:
  Host(RewriterBase &b, Location loc) : b(b), loc(loc) {}

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value dim(Value tensor, int64_t d) { return tensor::DimOp::create(b, loc, tensor, d); }
  Value mul(Value a, Value c) { return arith::MulIOp::create(b, loc, a, c); }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }
  Value ceilDiv(Value a, int64_t d) { return arith::CeilDivUIOp::create(b, loc, a, index(d)); }

  /// `memref` as memref<?xT> (identity layouts only, which bufferization gives us).
  Value flatten(Value memref) {
    auto type = cast<MemRefType>(memref.getType());
    if (type.getRank() == 0) {
      memref =
          memref::ExpandShapeOp::create(b, loc, MemRefType::get({1}, type.getElementType()), memref,
                                        ArrayRef<ReassociationIndices>{}, ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    } else if (type.getRank() > 1) {
      ReassociationIndices all;
      for (int64_t d = 0; d < type.getRank(); ++d)
        all.push_back(d);
      memref = memref::CollapseShapeOp::create(b, loc, memref, ArrayRef<ReassociationIndices>{all});
    }
    auto flat = MemRefType::get({ShapedType::kDynamic}, type.getElementType());
    if (memref.getType() != flat)
      memref = memref::CastOp::create(b, loc, flat, memref);
    return memref;
  }

  /// A tensor operand's buffer, flat.
  Value input(Value tensor) { return flatten(inputBuffer(b, loc, tensor)); }

  /// A fresh result buffer of `type` (dynamic sizes from `source`): the tensor
  /// (for the rest of the IR) and its flat buffer.
  std::pair<Value, Value> output(RankedTensorType type, Value source) {
    auto [buffer, tensor] = resultBuffer(b, loc, type, source);
    return {tensor, flatten(buffer)};
  }

  /// Scratch device memory of `count` elements of `elt`.
  Value scratch(Type elt, Value count) {
    return memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, elt), ValueRange{count});
  }
  Value scratch(Type elt, int64_t count) { return scratch(elt, index(count)); }

  void launch(gpu::GPUFuncOp fn, Value gridX, Value gridY, int64_t threads, int64_t sharedBytes, ValueRange args) {
    Value one = index(1);
    gpu::LaunchFuncOp::create(b, loc, fn, gpu::KernelDim3{gridX, gridY, one}, gpu::KernelDim3{index(threads), one, one},
                              sharedBytes ? arith::ConstantIntOp::create(b, loc, sharedBytes, 32).getResult() : Value(),
                              args);
  }

  RewriterBase &b;
  Location loc;
};

/// What the forward's and the backward's lowerings share: the pass's
/// options, the layer's one kernel module, and host-side helpers.
struct GPUKernelLoweringBase {
  GPUKernelLoweringBase(const GPUKernelOptions &options, std::shared_ptr<KernelModule> kernels)
      : options(options), engine(resolveEngine(options)), kernels(std::move(kernels)) {}
  const GPUKernelOptions options;
  /// The GEMMs' tensor-core instructions, resolved once.
  const GemmEngine engine;
  std::shared_ptr<KernelModule> kernels;

  /// The k depth of an mma.sync GEMM's stages (the default 32 x 4 stages ran
  /// faster than 64 x 3, which spills a few registers under the 128-register
  /// bound: docs/performance.md, "Measured choices").
  int64_t kTile() const { return options.gemmKTile; }

  /// A kernel a pattern launches: generated (or found) in the kernel module.
  FailureOr<gpu::GPUFuncOp> kernel(Host &h, const std::string &name, const std::string &text) {
    return kernels->get(h.b, h.loc, name, text);
  }

  /// A tensor-core GEMM's engine: wgmma where asked for and its 64-deep
  /// stages divide k, else mma.sync with the k tile already chosen; and
  /// wgmma's block width.
  void chooseEngine(gk::GemmConfig &c, const std::string &weightElt) const {
    if (engine == GemmEngine::Wgmma && c.tensorCores && gk::tensorCoresFit(c.elt, weightElt, c.k, c.n, 64)) {
      c.wgmma = true;
      c.kTile = 64;
      // 256-column blocks move a third less data per multiply-add (faster
      // on an H200: docs/performance.md, "Measured choices") where the product is
      // wide enough to fill them; narrow ones (a router's few experts) keep 128.
      c.wgmmaN = options.gemmN ? options.gemmN : c.n >= (c.glu ? 128 : 256) ? 256 : 128;
      c.stagedEpilogue = options.gemmEpilogue == GemmEpilogue::Staged;
      // TMA on the 256-column blocks only: under the 128 registers of the
      // two-block variant ptxas serialises the wgmma of some TMA kernels
      // (k 320, n 192), and the narrow products that get 128 are small.
      c.tmaB = options.gemmTma && c.wgmmaN == 256;
      // Persistent: 256 columns, no TMA, outputs of 2 bytes (f32 rows leave
      // no room for the epilogue past four stages), more k steps than the
      // copies run ahead.
      c.persistent = options.gemmPersistent && c.wgmmaN == 256 && !c.tmaB && c.out != "f32" && c.k / 64 > 2;
      // Warp-specialised: the same blocks, roles split between warpgroups
      // (a transposed product's k-major B keeps the one-tile kernel: see
      // transposedProduct).
      const bool wsFits = c.wgmmaN == 256 && !c.tmaB && c.out != "f32";
      c.warpSpecialized = wsFits && (options.gemmWarpSpecialized == GemmWarpSpecialization::Always ||
                                     (options.gemmWarpSpecialized == GemmWarpSpecialization::Auto &&
                                      !options.gemmPersistent && c.k <= kWarpSpecializedMaxK));
      if (c.warpSpecialized)
        c.persistent = false;
    }
  }

  /// A tensor-core weight cotangent's engine: wgmma where the GEMMs get it;
  /// 256-column blocks where C is that wide and the segments are few (so
  /// deep: Mixtral's 8 experts, ~2048 rows each at 8192 tokens), else 128,
  /// two blocks an SM, one's prologue and epilogue under the other's loop
  /// (DeepSeek-V3's 256 experts, ~256 rows each).
  void chooseWeightGradEngine(gk::WeightGradConfig &c) const {
    if (engine == GemmEngine::Wgmma && c.tensorCores) {
      c.wgmma = true;
      c.wgmmaN = options.gemmN ? options.gemmN : c.n >= 256 && c.segments <= 16 ? 256 : 128;
    }
  }

  /// The private declaration of runtime function `name` (one of ours in the
  /// runtime's mgpu ABI library), added to the module on first use.
  func::FuncOp runtimeFunction(Host &h, StringRef name, FunctionType type) {
    RewriterBase &b = h.b;
    ModuleOp module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
    if (auto existing = module.lookupSymbol<func::FuncOp>(name))
      return existing;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto callee = func::FuncOp::create(b, h.loc, name, type);
    callee.setPrivate();
    return callee;
  }

  /// A call of runtime entry point `name` (gpu_entry_points.h,
  /// collective_entry_points.h), with its first result if any; and the
  /// scalars and addresses such calls take.
  Value callRuntime(Host &h, StringRef name, FunctionType type, ValueRange args) {
    func::FuncOp callee = runtimeFunction(h, name, type);
    auto call = func::CallOp::create(h.b, h.loc, callee, args);
    return call.getNumResults() ? call.getResult(0) : Value();
  }
  Value i64(Host &h, Value index) { return arith::IndexCastOp::create(h.b, h.loc, h.b.getI64Type(), index); }
  Value i64(Host &h, int64_t v) { return arith::ConstantIntOp::create(h.b, h.loc, v, 64); }
  Value toIndex(Host &h, Value v) { return arith::IndexCastOp::create(h.b, h.loc, h.b.getIndexType(), v); }
  Value address(Host &h, Value memref) {
    return i64(h, memref::ExtractAlignedPointerAsIndexOp::create(h.b, h.loc, memref));
  }

  /// The extra kernel operands of a TMA GEMM (none otherwise): the device
  /// addresses of tensor maps for B0 and B1, each seen as [experts][k][n],
  /// made by the runtime's moeCudaTensorMap (once per tensor).
  SmallVector<Value> tensorMaps(Host &h, const gk::GemmConfig &c, Value b0, Value b1, int64_t experts) {
    if (!c.tmaB)
      return {};
    auto mapOf = [&](Value w) {
      return callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moeCudaTensorMap, h.b),
                         {address(h, w), i64(h, int64_t{c.elt == "bf16"}), i64(h, c.n), i64(h, c.k), i64(h, experts),
                          i64(h, 64), i64(h, 64)});
    };
    // Without a GLU both arguments name the same weights: one lookup serves both.
    Value first = mapOf(b0);
    return {first, b1 == b0 ? first : mapOf(b1)};
  }

  /// The last kernel operand of a warp-specialised GEMM (none otherwise):
  /// its tile scheduler's counter, one i32 zeroed on the stream before the
  /// launch (so every call, and every replay of a captured graph, starts at
  /// tile 0).
  SmallVector<Value> tileCounter(Host &h, const gk::GemmConfig &c) {
    if (!c.warpSpecialized)
      return {};
    Value counter = h.scratch(h.b.getI32Type(), 1);
    Value zero = arith::ConstantIntOp::create(h.b, h.loc, 0, 32);
    gpu::MemsetOp::create(h.b, h.loc, /*asyncToken=*/Type(), /*asyncDependencies=*/ValueRange{}, counter, zero);
    return {counter};
  }

  /// A GEMM's grid: `blocks`, or for a persistent kernel one block an SM
  /// (the runtime's moeCudaMultiprocessors) when there are more.
  Value gemmGrid(Host &h, const gk::GemmConfig &c, Value blocks) {
    if (!c.oneBlockAnSM())
      return blocks;
    Value sms = callRuntime(h, MOE_RUNTIME_ENTRY_POINT(moeCudaMultiprocessors, h.b), {});
    return arith::MinUIOp::create(h.b, h.loc, blocks, toIndex(h, sms));
  }

  /// Placeholders for a GEMM's unused operands.
  struct Unused {
    Value i32s, f32s;
  };
  Unused unused(Host &h) { return {h.scratch(h.b.getI32Type(), 1), h.scratch(h.b.getF32Type(), 1)}; }

  /// A routed chain's tile plan on the device: `counts` (per expert) to
  /// offsets and the GEMMs' tile list for `rows` rows.
  struct TilePlan {
    Value offsets, tileExpert, tileRow, numTiles, maxTiles;
  };
  FailureOr<TilePlan> schedule(Host &h, const gk::DispatchConfig &plan, Value counts, Value rows) {
    Type i32 = h.b.getI32Type();
    TilePlan t;
    t.offsets = h.scratch(i32, plan.experts + 1);
    t.maxTiles = h.add(h.ceilDiv(rows, plan.blockM), h.index(plan.experts));
    t.tileExpert = h.scratch(i32, t.maxTiles);
    t.tileRow = h.scratch(i32, t.maxTiles);
    t.numTiles = h.scratch(i32, 1);
    auto fn = kernel(h, "moe_schedule_" + plan.suffix(), gk::scheduleKernel(plan));
    if (failed(fn))
      return failure();
    h.launch(*fn, h.index(1), h.index(1), gk::DispatchConfig::scheduleThreads, 0,
             {counts, t.offsets, t.tileExpert, t.tileRow, t.numTiles});
    return t;
  }
};

/// An op of the kernel family as a launch: `Lowering::lower(Host &, Op)`.
template <typename Lowering, typename Op> struct ToKernelLaunch : OpConversionPattern<Op> {
  ToKernelLaunch(MLIRContext *context, std::shared_ptr<Lowering> lowering)
      : OpConversionPattern<Op>(context), lowering(std::move(lowering)) {}
  LogicalResult matchAndRewrite(Op op, typename Op::Adaptor, ConversionPatternRewriter &rewriter) const override {
    Host h(rewriter, op.getLoc());
    return lowering->lower(h, op);
  }
  std::shared_ptr<Lowering> lowering;
};

/// The backward's patterns (GradientsToGPUKernels.cpp), sharing `kernels`.
void populateGradientsToGPUKernelsPatterns(RewritePatternSet &patterns, const GPUKernelOptions &options,
                                           std::shared_ptr<KernelModule> kernels);

} // namespace moe::gpu_lowering

#endif
