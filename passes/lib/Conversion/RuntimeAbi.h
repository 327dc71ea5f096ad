//===- RuntimeAbi.h - MLIR types of the runtime's entry points --*- C++ -*-===//
//
// The functions generated code calls in the runtime are declared once, in
// moe/runtime/cpu_kernels.h (the CPU kernels), collective_entry_points.h (the
// collectives) and gpu_entry_points.h (the
// GPU host code's calls besides MLIR's mgpu* ABI). This header turns such a
// C declaration into the func.func type the compiler declares it with, so a
// changed signature changes both sides at once (decltype only: nothing is
// linked).
//
//   runtimeFunction(h, MOE_RUNTIME_ENTRY_POINT(moeCudaMultiprocessors, b));
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_RUNTIMEABI_H
#define MOE_CONVERSION_RUNTIMEABI_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/collective_entry_points.h"
#include "moe/runtime/cpu_kernels.h"
#include "moe/runtime/gpu_entry_points.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

#include <cstdint>
#include <type_traits>

namespace moe::runtime_abi {

/// The MLIR type a C scalar of the runtime ABI is passed as.
template <typename T> Type abiType(Builder &b) {
  if constexpr (std::is_same_v<T, double>) {
    return b.getF64Type();
  } else {
    static_assert(std::is_integral_v<T> && (sizeof(T) == 4 || sizeof(T) == 8),
                  "runtime entry points take and return 32- or 64-bit integers or doubles");
    return b.getIntegerType(sizeof(T) * 8);
  }
}

template <typename F> struct AbiFunction;
template <typename R, typename... Args> struct AbiFunction<R(Args...)> {
  static FunctionType get(Builder &b) {
    if constexpr (std::is_void_v<R>)
      return b.getFunctionType({abiType<Args>(b)...}, {});
    else
      return b.getFunctionType({abiType<Args>(b)...}, {abiType<R>(b)});
  }
};

} // namespace moe::runtime_abi

/// The name and func.func type of runtime entry point `fn` (cpu_kernels.h,
/// gpu_entry_points.h).
#define MOE_RUNTIME_ENTRY_POINT(fn, builder) #fn, ::moe::runtime_abi::AbiFunction<decltype(::fn)>::get(builder)

#endif // MOE_CONVERSION_RUNTIMEABI_H
