//===- MoEGPUMergeKernelModules.cpp - moe-gpu-merge-kernel-modules ---------===//
//
// Every gpu.func of the module's gpu.modules moves into @moe_kernels; launches
// follow.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-gpu-merge-kernel-modules"

namespace moe {
#define GEN_PASS_DEF_MOEGPUMERGEKERNELMODULES
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;

namespace {

struct MoEGPUMergeKernelModules : moe::impl::MoEGPUMergeKernelModulesBase<MoEGPUMergeKernelModules> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::GPUModuleOp> others;
    gpu::GPUModuleOp target = module.lookupSymbol<gpu::GPUModuleOp>("moe_kernels");
    for (auto m : module.getOps<gpu::GPUModuleOp>())
      if (m != target)
        others.push_back(m);
    LLVM_DEBUG(llvm::dbgs() << "merging " << others.size() << " gpu.modules into @moe_kernels\n");
    if (others.empty())
      return;
    if (!target) {
      OpBuilder b(others.front());
      target = gpu::GPUModuleOp::create(b, module.getLoc(), "moe_kernels");
    }
    auto *context = &getContext();
    for (gpu::GPUModuleOp m : others) {
      // Outlined modules reuse kernel names: each kernel takes its module's
      // (unique) name, suffixed when a module holds several.
      size_t kernels = llvm::range_size(m.getOps<gpu::GPUFuncOp>());
      llvm::StringMap<std::string> renamed;
      for (Operation &op : llvm::make_early_inc_range(m.getBody()->without_terminator())) {
        if (auto fn = dyn_cast<gpu::GPUFuncOp>(op)) {
          std::string name = kernels == 1 ? m.getName().str() : (m.getName() + "_" + fn.getName()).str();
          if (target.lookupSymbol(name)) {
            op.emitError() << "kernel '" << name << "' is defined twice";
            return signalPassFailure();
          }
          renamed[fn.getName()] = name;
          fn.setName(name);
        }
        op.moveBefore(target.getBody(), target.getBody()->end());
      }
      module.walk([&](gpu::LaunchFuncOp launch) {
        if (launch.getKernelModuleName() != m.getName())
          return;
        auto it = renamed.find(launch.getKernelName());
        StringRef name = it == renamed.end() ? launch.getKernelName() : StringRef(it->second);
        launch.setKernelAttr(SymbolRefAttr::get(target.getNameAttr(), {FlatSymbolRefAttr::get(context, name)}));
      });
      m.erase();
    }
  }
};

} // namespace
