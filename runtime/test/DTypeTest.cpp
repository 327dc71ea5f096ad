// DTypeTest.cpp - dtype names/sizes and the bf16/f16 conversions, checked
// against exhaustive round trips and known bit patterns.
#include "moe/runtime/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace moe::runtime;

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(moe_dtype_size(MOE_F32), 4u);
  EXPECT_EQ(moe_dtype_size(MOE_BF16), 2u);
  EXPECT_EQ(moe_dtype_size(static_cast<moe_dtype_t>(42)), 0u);
  EXPECT_EQ(parseDType("BF16"), MOE_BF16);
  EXPECT_EQ(parseDType("I32"), MOE_I32);
  EXPECT_FALSE(parseDType("F64").has_value());
  EXPECT_FALSE(parseDType("bf16").has_value()); // safetensors names are upper case
}

TEST(DType, Bf16KnownValues) {
  EXPECT_EQ(f32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(f32ToBf16(-2.0f), 0xc000);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625: rounds up to even.
  EXPECT_EQ(f32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(NAN))));
  EXPECT_EQ(bf16ToF32(f32ToBf16(INFINITY)), INFINITY);
}

TEST(DType, Bf16RoundTripIsExactForEveryBf16) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16ToF32(static_cast<uint16_t>(b));
    if (std::isnan(f))
      continue;
    ASSERT_EQ(f32ToBf16(f), b) << "bits " << b;
  }
}

TEST(DType, F16RoundTripIsExactForEveryF16) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f))
      continue;
    ASSERT_EQ(f32ToF16(f), h) << "bits " << h;
  }
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(f32ToF16(65504.0f), 0x7bff);              // largest finite
  EXPECT_EQ(f32ToF16(65536.0f), 0x7c00);              // overflows to inf
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -26)), 0x0000); // underflows to zero
  EXPECT_FLOAT_EQ(f16ToF32(0x3555), 0.333251953125f);
}

TEST(DType, NarrowingErrorIsWithinHalfAnUlpOnRandomInputs) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 10.0f);
  for (int i = 0; i < 100000; ++i) {
    float x = dist(rng);
    float b = bf16ToF32(f32ToBf16(x));
    float h = f16ToF32(f32ToF16(x));
    ASSERT_LE(std::fabs(b - x), std::fabs(x) * std::ldexp(1.0f, -8)) << x;
    ASSERT_LE(std::fabs(h - x), std::max(std::fabs(x) * std::ldexp(1.0f, -11), std::ldexp(1.0f, -25))) << x;
  }
}
