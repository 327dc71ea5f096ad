// dtype.cc - element type names, sizes and f32 <-> bf16/f16 conversion.
#include "moe/runtime/dtype.h"

#include <cmath>
#include <cstring>

// C callers may pass any integer as an enum: read its bytes as an int (a load
// of an out-of-range enum value, even copying it, is undefined in C++).
#define MOE_ENUM_CODE(value, code)                                                                                     \
  int code;                                                                                                            \
  std::memcpy(&code, &value, sizeof code)

extern "C" size_t moe_dtype_size(moe_dtype_t dtype) {
  MOE_ENUM_CODE(dtype, code);
  switch (code) {
  case MOE_F32:
    return 4;
  case MOE_F16:
    return 2;
  case MOE_BF16:
    return 2;
  case MOE_I32:
    return 4;
  }
  return 0;
}

extern "C" const char *moe_dtype_name(moe_dtype_t dtype) {
  MOE_ENUM_CODE(dtype, code);
  switch (code) {
  case MOE_F32:
    return "F32";
  case MOE_F16:
    return "F16";
  case MOE_BF16:
    return "BF16";
  case MOE_I32:
    return "I32";
  }
  return nullptr;
}

namespace moe::runtime {

std::optional<moe_dtype_t> parseDType(std::string_view name) {
  for (moe_dtype_t d : kDTypes)
    if (name == moe_dtype_name(d))
      return d;
  return std::nullopt;
}

bool isFloatDType(moe_dtype_t dtype) { return dtype == MOE_F32 || dtype == MOE_F16 || dtype == MOE_BF16; }

double checkTolerance(moe_dtype_t dtype) {
  switch (dtype) {
  case MOE_F32:
    return 1e-5;
  case MOE_F16:
  case MOE_BF16:
    return 1e-2;
  case MOE_I32:
    return 0.0;
  }
  return 0.0;
}

const char *languageName(moe_dtype_t dtype) {
  switch (dtype) {
  case MOE_F32:
    return "f32";
  case MOE_F16:
    return "f16";
  case MOE_BF16:
    return "bf16";
  case MOE_I32:
    return "i32";
  }
  return nullptr;
}

std::optional<moe_dtype_t> parseLanguageName(std::string_view name) {
  for (moe_dtype_t d : kDTypes)
    if (name == languageName(d))
      return d;
  return std::nullopt;
}

static uint32_t bitsOf(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

static float floatOf(uint32_t u) {
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

uint16_t f32ToBf16(float value) {
  uint32_t u = bitsOf(value);
  if (std::isnan(value))
    return static_cast<uint16_t>((u >> 16) | 0x40); // keep it a (quiet) NaN
  // Round to nearest, ties to even, on the 16 bits that are dropped.
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float bf16ToF32(uint16_t bits) { return floatOf(static_cast<uint32_t>(bits) << 16); }

uint16_t f32ToF16(float value) {
  uint32_t u = bitsOf(value);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t exp = (u >> 23) & 0xff;
  uint32_t mant = u & 0x7fffff;
  if (exp == 0xff) // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 0x1f) // overflow to inf
    return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) { // subnormal or zero in f16
    if (e < -10)
      return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, which is the correct rounding
  return static_cast<uint16_t>(sign | half);
}

float f16ToF32(uint16_t bits) {
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1f;
  uint32_t mant = bits & 0x3ff;
  if (exp == 0x1f)
    return floatOf(sign | 0x7f800000 | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return floatOf(sign);
    // Subnormal: value = mant * 2^-24.
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  return floatOf(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

} // namespace moe::runtime
