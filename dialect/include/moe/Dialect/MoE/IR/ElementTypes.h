//===- ElementTypes.h - the element types of a layer, one mapping -*- C++ -*-===//
//
// A layer's tensors hold f32, f16, bf16 or i32 (moe-verify-input refuses the
// rest). The runtime's codes for them are moe_dtype_t (moe/runtime/dtype.h,
// the compiler <-> runtime contract, with their names, sizes and
// conversions); this is the one place that maps MLIR types to and from them.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_IR_ELEMENTTYPES_H
#define MOE_DIALECT_MOE_IR_ELEMENTTYPES_H

#include "moe/Support/MLIR.h"
#include "moe/runtime/dtype.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/TypeUtilities.h"

#include <optional>

namespace moe {

/// The runtime's code for `type`'s element type (a shaped type's, or the
/// type itself), or nullopt for one a layer cannot hold.
inline std::optional<moe_dtype_t> runtimeDType(Type type) {
  Type e = getElementTypeOrSelf(type);
  if (e.isF32())
    return MOE_F32;
  if (e.isF16())
    return MOE_F16;
  if (e.isBF16())
    return MOE_BF16;
  if (e.isInteger(32))
    return MOE_I32;
  return std::nullopt;
}

/// The MLIR element type of a dtype.
inline Type elementType(moe_dtype_t dtype, MLIRContext *context) {
  switch (dtype) {
  case MOE_F32:
    return Float32Type::get(context);
  case MOE_F16:
    return Float16Type::get(context);
  case MOE_BF16:
    return BFloat16Type::get(context);
  case MOE_I32:
    return IntegerType::get(context, 32);
  }
  return {};
}

/// The kernels' spelling of a dtype: "f32", "f16", "bf16", "i32".
inline const char *kernelTypeName(moe_dtype_t dtype) { return ::moe::runtime::languageName(dtype); }

} // namespace moe

#endif // MOE_DIALECT_MOE_IR_ELEMENTTYPES_H
