//===- CPUKernelCall.h - a call of a runtime CPU kernel ---------*- C++ -*-===//
//
// What the CPU kernel patterns (ConvertMoEToCPUKernels.cpp for the forward,
// GradientsToKernelCalls.cpp for the backward) build a call with: operand
// addresses, fresh result buffers, scalars and dtype codes, checked against
// the kernel's declaration in moe/runtime/cpu_kernels.h.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_MOETOCPUKERNELS_CPUKERNELCALL_H
#define MOE_CONVERSION_MOETOCPUKERNELS_CPUKERNELCALL_H

#include "../KernelConversion.h"
#include "moe/Dialect/MoE/IR/ElementTypes.h"
#include "moe/Dialect/MoE/IR/KernelAbi.h"
#include "moe/Support/MLIR.h"

namespace moe::cpu_kernels {

/// The runtime's dtype code (moe_dtype_t) of a kernel operand: the ops' type
/// constraints admit only the element types ElementTypes.h maps.
inline int32_t dtypeCode(Type t) { return static_cast<int32_t>(*runtimeDType(t)); }

/// What the ops of one kernel call have in common: a builder at the op, the
/// argument list being built, and the kernel declaration.
class KernelCall {
public:
  KernelCall(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  /// The address of `tensor`'s buffer (read only).
  void input(Value tensor) { address(inputBuffer(b, loc, tensor)); }

  /// A fresh buffer for a result of `type` (dynamic sizes from `source`);
  /// returns it as a tensor.
  Value output(RankedTensorType type, Value source) {
    auto [buffer, tensor] = resultBuffer(b, loc, type, source);
    address(buffer);
    return tensor;
  }

  /// A null address (an absent optional operand).
  /// The address of a buffer the caller allocated (written by the call).
  void buffer(Value memref) { address(memref); }

  void none() { args.push_back(arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0))); }

  void i64(Value index) { args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(), index)); }
  void i64(int64_t v) { args.push_back(arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v))); }
  void i32(int32_t v) { args.push_back(arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v))); }
  void f64(double v) { args.push_back(arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v))); }
  void dtype(Value v) { i32(dtypeCode(getElementTypeOrSelf(v.getType()))); }

  /// Emits `call @name(args)`, declaring the kernel in the module on first
  /// use with `fnType`, its type from cpu_kernels.h (MOE_RUNTIME_ENTRY_POINT).
  LogicalResult call(StringRef name, FunctionType fnType, Value *result = nullptr) {
    auto module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
    SmallVector<Type> types;
    for (Value a : args)
      types.push_back(a.getType());
    if (TypeRange(types) != fnType.getInputs())
      return emitError(loc) << "internal error: the call of " << name << " passes (" << TypeRange(types)
                            << "), cpu_kernels.h declares " << fnType;
    if (!module.lookupSymbol<func::FuncOp>(name)) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto decl = func::FuncOp::create(b, loc, name, fnType);
      decl.setPrivate();
    }
    auto op = func::CallOp::create(b, loc, name, fnType.getResults(), args);
    if (result)
      *result = op.getResult(0);
    return success();
  }

private:
  void address(Value buffer) {
    // aligned base + offset * element size: kernels take plain addresses.
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
    auto metadata = memref::ExtractStridedMetadataOp::create(b, loc, buffer);
    unsigned bytes = getElementTypeOrSelf(buffer.getType()).getIntOrFloatBitWidth() / 8;
    Value offset = arith::MulIOp::create(b, loc, metadata.getOffset(), arith::ConstantIndexOp::create(b, loc, bytes));
    Value addr = arith::AddIOp::create(b, loc, base, offset);
    args.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(), addr));
  }

  OpBuilder &b;
  Location loc;
  SmallVector<Value> args;
};

inline Value dim(OpBuilder &b, Location loc, Value tensor, int64_t d) {
  return tensor::DimOp::create(b, loc, tensor, d);
}

/// The base of the patterns: a kernel call at the op, with the rewriter.
template <typename Op> struct KernelCallPattern : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  using OpAdaptor = typename Op::Adaptor;
};

/// The runtime's mask of a collective's axes, or an error naming the axis.
inline FailureOr<int32_t> collectiveAxes(Operation *op, ArrayAttr axes) {
  std::optional<int32_t> mask = kernelAxes(axes);
  if (!mask)
    return op->emitError() << "the CPU runtime's meshes have the axes rep, dp and ep; got " << axes;
  return *mask;
}

/// A routed chain's kernel: the single-device one, or, when the chain has
/// its exchanges (`toExperts`), the expert-parallel one, which takes their
/// axes as its last argument.
inline LogicalResult callRoutedChainKernel(KernelCall &k, AllToAllOp toExperts, StringRef single,
                                           FunctionType singleType, StringRef parallel, FunctionType parallelType) {
  if (!toExperts)
    return k.call(single, singleType);
  FailureOr<int32_t> axes = collectiveAxes(toExperts, toExperts.getAxes());
  if (failed(axes))
    return failure();
  k.i32(*axes);
  return k.call(parallel, parallelType);
}

} // namespace moe::cpu_kernels

#endif // MOE_CONVERSION_MOETOCPUKERNELS_CPUKERNELCALL_H
