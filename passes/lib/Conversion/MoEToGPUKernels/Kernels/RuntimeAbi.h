//===- RuntimeAbi.h - MLIR types of the runtime's GPU entry points -*- C++ -*-===//
//
// The functions generated host code calls in the runtime are declared once,
// in moe/runtime/gpu_entry_points.h. This header turns such a C declaration
// into the func.func type the compiler declares it with, so a changed
// signature changes both sides at once (decltype only: nothing is linked).
//
//   runtimeFunction(h, MOE_RUNTIME_ENTRY_POINT(moeCudaMultiprocessors, b));
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_RUNTIMEABI_H
#define MOE_CONVERSION_GPUKERNELS_RUNTIMEABI_H

#include "moe/runtime/gpu_entry_points.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

#include <cstdint>
#include <type_traits>

namespace mlir::moe::gpu_kernels {

/// The MLIR type a C scalar of the runtime ABI is passed as.
template <typename T> Type abiType(Builder &b) {
  static_assert(std::is_integral_v<T> && (sizeof(T) == 4 || sizeof(T) == 8),
                "runtime entry points take and return 32- or 64-bit integers");
  return b.getIntegerType(sizeof(T) * 8);
}

template <typename F> struct AbiFunction;
template <typename R, typename... Args> struct AbiFunction<R(Args...)> {
  static FunctionType get(Builder &b) { return b.getFunctionType({abiType<Args>(b)...}, {abiType<R>(b)}); }
};

} // namespace mlir::moe::gpu_kernels

/// The name and func.func type of runtime entry point `fn` (gpu_entry_points.h).
#define MOE_RUNTIME_ENTRY_POINT(fn, builder)                                                              \
  #fn, ::mlir::moe::gpu_kernels::AbiFunction<decltype(::fn)>::get(builder)

#endif // MOE_CONVERSION_GPUKERNELS_RUNTIMEABI_H
