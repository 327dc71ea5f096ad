/* moe/runtime/dtype.h - element types the runtime stores and converts.
 *
 * bf16 and f16 are storage types: arithmetic happens in f32. Conversions to
 * the narrow types round to nearest even, as hardware and PyTorch do. */
#ifndef MOE_RUNTIME_DTYPE_H
#define MOE_RUNTIME_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_dtype_t { MOE_F32 = 0, MOE_F16 = 1, MOE_BF16 = 2, MOE_I32 = 3 } moe_dtype_t;

/* Bytes per element, or 0 for an unknown dtype. */
size_t moe_dtype_size(moe_dtype_t dtype);

/* The safetensors / MLIR spelling: "F32", "F16", "BF16", "I32"; NULL if unknown. */
const char *moe_dtype_name(moe_dtype_t dtype);

#ifdef __cplusplus
} /* extern "C" */

#include <optional>
#include <string_view>

namespace moe::runtime {
/// Every dtype, in code order: what a loop over the dtypes walks.
constexpr moe_dtype_t kDTypes[] = {MOE_F32, MOE_F16, MOE_BF16, MOE_I32};

/// A safetensors name ("F32", "BF16", ...) as its dtype.
std::optional<moe_dtype_t> parseDType(std::string_view name);

/// A floating-point dtype (weights of one convert to another on load).
bool isFloatDType(moe_dtype_t dtype);

/// The relative error a computation whose narrowest value has this dtype is
/// checked against the float64 reference with: 1e-5 for f32, 1e-2 for the
/// 16-bit floats, 0 (exact) for i32.
double checkTolerance(moe_dtype_t dtype);

/// The .moe language's (and the GPU kernels') spelling: "f32", "f16",
/// "bf16", "i32"; nullptr if unknown.
const char *languageName(moe_dtype_t dtype);
std::optional<moe_dtype_t> parseLanguageName(std::string_view name);

uint16_t f32ToBf16(float value);
float bf16ToF32(uint16_t bits);
uint16_t f32ToF16(float value);
float f16ToF32(uint16_t bits);
} // namespace moe::runtime
#endif

#endif /* MOE_RUNTIME_DTYPE_H */
