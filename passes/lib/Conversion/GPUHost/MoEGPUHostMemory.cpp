//===- MoEGPUHostMemory.cpp - moe-gpu-host-memory ---------------*- C++ -*-===//
//
// A GPU layer's host code allocates on the device: memref.alloc becomes
// gpu.alloc, memref.copy gpu.memcpy; deallocations go (the runtime frees a
// call's buffers once its results are read). A result that is a constant
// (a non-trainable parameter's zero gradient, a host global after
// bufferization) is filled into device memory by gpu.memset.
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
    if (mlir::failed(returnConstantsFromDevice()))
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

  /// Each result defined by memref.get_global of a splat becomes a device
  /// buffer filled with the splat's value.
  LogicalResult returnConstantsFromDevice() {
    ModuleOp module = getOperation();
    WalkResult result = module.walk([&](func::ReturnOp ret) {
      if (ret->getParentOfType<gpu::GPUModuleOp>())
        return WalkResult::advance();
      for (OpOperand &operand : ret->getOpOperands()) {
        Value v = operand.get();
        while (auto cast = v.getDefiningOp<memref::CastOp>())
          v = cast.getSource();
        auto get = v.getDefiningOp<memref::GetGlobalOp>();
        if (!get)
          continue;
        auto global = module.lookupSymbol<memref::GlobalOp>(get.getName());
        auto value = global ? dyn_cast_or_null<DenseElementsAttr>(global.getInitialValueAttr()) : nullptr;
        Type elt = get.getType().getElementType();
        if (!value || !value.isSplat() || !isa<FloatType>(elt) || elt.getIntOrFloatBitWidth() < 16) {
          ret.emitError() << "a GPU layer returns constant " << get.getName()
                          << ", which is not a splat of floats; return it from a kernel";
          return WalkResult::interrupt();
        }
        OpBuilder b(ret);
        Location loc = ret.getLoc();
        auto alloc = gpu::AllocOp::create(b, loc, get.getType(), Type(), ValueRange{}, ValueRange{}, ValueRange{},
                                          /*hostShared=*/false);
        Value splat = arith::ConstantOp::create(b, loc, cast<TypedAttr>(value.getSplatValue<Attribute>()));
        gpu::MemsetOp::create(b, loc, Type(), ValueRange{}, alloc.getMemref(), splat);
        Value replacement = alloc.getMemref();
        if (replacement.getType() != operand.get().getType())
          replacement = memref::CastOp::create(b, loc, operand.get().getType(), replacement);
        operand.set(replacement);
      }
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }
};

} // namespace
