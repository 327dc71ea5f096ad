// elements.h - reading and writing tensor elements of any float dtype as f32.
#ifndef MOE_RUNTIME_CPU_ELEMENTS_H
#define MOE_RUNTIME_CPU_ELEMENTS_H

#include "moe/runtime/dtype.h"

#include <cstdint>
#include <cstring>

namespace moe::runtime::cpu {

template <typename T> inline T *ptr(int64_t address) { return reinterpret_cast<T *>(address); }

inline float loadF32(const void *base, int64_t i, int32_t dtype) {
  switch (dtype) {
  case MOE_F16:
    return f16ToF32(static_cast<const uint16_t *>(base)[i]);
  case MOE_BF16: {
    uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t *>(base)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  case MOE_I32:
    return static_cast<float>(static_cast<const int32_t *>(base)[i]);
  default:
    return static_cast<const float *>(base)[i];
  }
}

inline void storeF32(void *base, int64_t i, int32_t dtype, float v) {
  switch (dtype) {
  case MOE_F16:
    static_cast<uint16_t *>(base)[i] = f32ToF16(v);
    break;
  case MOE_BF16:
    static_cast<uint16_t *>(base)[i] = f32ToBf16(v);
    break;
  default:
    static_cast<float *>(base)[i] = v;
    break;
  }
}

/// Rounds v to what `dtype` can hold, as f32 (the value a store then a load gives).
inline float roundTo(float v, int32_t dtype) {
  switch (dtype) {
  case MOE_F16:
    return f16ToF32(f32ToF16(v));
  case MOE_BF16:
    return bf16ToF32(f32ToBf16(v));
  default:
    return v;
  }
}

/// Converts n contiguous elements starting at element `first` to f32.
inline void loadRow(const void *base, int64_t first, int64_t n, int32_t dtype, float *out) {
  if (dtype == MOE_F32) {
    std::memcpy(out, static_cast<const float *>(base) + first, n * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    out[i] = loadF32(base, first + i, dtype);
}

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_ELEMENTS_H
