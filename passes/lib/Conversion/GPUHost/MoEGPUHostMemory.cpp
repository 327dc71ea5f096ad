//===- MoEGPUHostMemory.cpp - moe-gpu-host-memory ---------------*- C++ -*-===//
//
// A GPU layer's host code allocates on the device: memref.alloc becomes
// gpu.alloc, memref.copy gpu.memcpy; deallocations go (the runtime frees a
// call's buffers once its results are read).
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-gpu-host-memory"

namespace moe {
#define GEN_PASS_DEF_MOEGPUHOSTMEMORY
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

using namespace mlir;

namespace {

struct MoEGPUHostMemory : moe::impl::MoEGPUHostMemoryBase<MoEGPUHostMemory> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    bool failed = false;
    getOperation().walk([&](Operation *op) {
      if (op->getParentOfType<gpu::GPUModuleOp>() || op->getParentOfType<gpu::LaunchOp>())
        return;
      if (isa<memref::AllocOp, memref::AllocaOp, memref::DeallocOp, memref::CopyOp>(op)) {
        ops.push_back(op);
      } else if (isa<memref::LoadOp, memref::StoreOp>(op)) {
        op->emitError() << "host code of a GPU layer reads or writes a buffer directly ('" << op->getName()
                        << "'); only kernels may touch device memory";
        failed = true;
      }
    });
    if (failed)
      return signalPassFailure();
    LLVM_DEBUG(llvm::dbgs() << "moving " << ops.size() << " host allocations and copies to the device\n");
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (isa<memref::AllocOp, memref::AllocaOp>(op)) {
        auto type = cast<MemRefType>(op->getResult(0).getType());
        auto alloc = gpu::AllocOp::create(b, loc, type, /*asyncToken=*/Type(), /*asyncDependencies=*/ValueRange{},
                                          op->getOperands(), /*symbolOperands=*/ValueRange{}, /*hostShared=*/false);
        op->getResult(0).replaceAllUsesWith(alloc.getMemref());
      } else if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        gpu::MemcpyOp::create(b, loc, /*asyncToken=*/Type(), ValueRange{}, copy.getTarget(), copy.getSource());
      }
      op->erase();
    }
  }
};

} // namespace
