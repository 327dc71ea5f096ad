//===- ElementTypes.h - the element types of a layer, one mapping -*- C++ -*-===//
//
// A layer's tensors hold f32, f16, bf16 or i32 (moe-verify-input refuses the
// rest). The runtime's codes for them are moe_dtype_t (moe/runtime/dtype.h,
// the compiler <-> runtime contract); the GPU kernels' names are the
// lowercase spellings. This is the one place that maps MLIR types to both.
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

/// The kernels' spelling of a dtype: "f32", "f16", "bf16", "i32".
inline const char *kernelTypeName(moe_dtype_t dtype) {
  switch (dtype) {
  case MOE_F16:
    return "f16";
  case MOE_BF16:
    return "bf16";
  case MOE_I32:
    return "i32";
  default:
    return "f32";
  }
}

} // namespace moe

#endif // MOE_DIALECT_MOE_IR_ELEMENTTYPES_H
