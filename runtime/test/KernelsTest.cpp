// KernelsTest.cpp - the CPU kernels against straightforward double-precision
// loops on fresh random inputs: the GEMM (packed and in-place B, edge tiles,
// f32/bf16/f16 weights, one thread and several) and the fused MoE FFN.
#include "moe/runtime/cpu_kernels.h"
#include "moe/runtime/dtype.h"

#include "../src/cpu/gemm.h"
#include "../src/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace moe::runtime;

namespace {

std::vector<uint8_t> encode(const std::vector<float> &v, moe_dtype_t dtype) {
  std::vector<uint8_t> out(v.size() * moe_dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == MOE_F32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dtype == MOE_BF16 ? f32ToBf16(v[i]) : f32ToF16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

float decode(const std::vector<uint8_t> &bytes, size_t i, moe_dtype_t dtype) {
  if (dtype == MOE_F32) {
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, bytes.data() + 2 * i, 2);
  return dtype == MOE_BF16 ? bf16ToF32(h) : f16ToF32(h);
}

TEST(Kernels, GemmMatchesADoubleLoop) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal;
  struct Case {
    int64_t m, k, n;
  };
  for (Case c :
       {Case{1, 1, 1}, Case{5, 7, 33}, Case{6, 64, 32}, Case{24, 100, 64}, Case{25, 129, 95}, Case{200, 256, 130}}) {
    for (moe_dtype_t dtype : {MOE_F32, MOE_BF16, MOE_F16}) {
      for (int threads : {1, 3}) {
        cpu::setNumThreads(threads);
        std::vector<float> a(c.m * c.k), b(c.k * c.n), out(c.m * c.n, -1.0f);
        for (float &v : a)
          v = normal(rng);
        for (float &v : b)
          v = normal(rng);
        std::vector<uint8_t> bBytes = encode(b, dtype);
        cpu::gemm(a.data(), c.k, bBytes.data(), dtype, out.data(), c.n, c.m, c.k, c.n);
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = 0; j < c.n; ++j) {
            double want = 0, scale = 0;
            for (int64_t p = 0; p < c.k; ++p) {
              double term = static_cast<double>(a[i * c.k + p]) * decode(bBytes, p * c.n + j, dtype);
              want += term;
              scale += std::fabs(term);
            }
            ASSERT_NEAR(out[i * c.n + j], want, 1e-5 * scale + 1e-30)
                << "m=" << c.m << " k=" << c.k << " n=" << c.n << " dtype=" << moe_dtype_name(dtype) << " at (" << i
                << ", " << j << ")";
          }
      }
    }
  }
  cpu::setNumThreads(2);
}

TEST(Kernels, FusedMoEFfnMatchesADoubleLoop) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal;
  const int64_t tokens = 37, d = 24, f = 40, experts = 5, k = 2;
  std::vector<float> x(tokens * d), w0(experts * d * f), w1(experts * d * f), w2(experts * f * d), weights(tokens * k);
  for (auto *v : {&x, &w0, &w1, &w2, &weights})
    for (float &e : *v)
      e = normal(rng) * 0.3f;
  std::vector<int32_t> idx(tokens * k);
  for (int64_t t = 0; t < tokens; ++t) {
    idx[t * k] = static_cast<int32_t>(rng() % experts);
    idx[t * k + 1] = static_cast<int32_t>((idx[t * k] + 1 + rng() % (experts - 1)) % experts);
  }
  for (double capacity : {0.0, 0.6}) {
    std::vector<float> out(tokens * d);
    moe_cpu_moe_ffn(reinterpret_cast<int64_t>(x.data()), reinterpret_cast<int64_t>(idx.data()),
                    reinterpret_cast<int64_t>(weights.data()), reinterpret_cast<int64_t>(w0.data()),
                    reinterpret_cast<int64_t>(w1.data()), reinterpret_cast<int64_t>(w2.data()),
                    reinterpret_cast<int64_t>(out.data()), tokens, d, f, experts, k, /*swiglu*/ 0, capacity, MOE_F32,
                    MOE_F32, MOE_F32, MOE_F32);
    int64_t limit = capacity > 0 ? static_cast<int64_t>(std::ceil(capacity * tokens * k / experts)) : tokens * k;
    std::vector<int64_t> load(experts, 0);
    std::vector<double> want(tokens * d, 0.0);
    for (int64_t a = 0; a < tokens * k; ++a) {
      int64_t e = idx[a], t = a / k;
      if (load[e]++ >= limit)
        continue;
      std::vector<double> h(f);
      for (int64_t j = 0; j < f; ++j) {
        double g = 0, u = 0;
        for (int64_t p = 0; p < d; ++p) {
          g += x[t * d + p] * static_cast<double>(w0[(e * d + p) * f + j]);
          u += x[t * d + p] * static_cast<double>(w1[(e * d + p) * f + j]);
        }
        h[j] = g / (1 + std::exp(-g)) * u;
      }
      for (int64_t c = 0; c < d; ++c) {
        double y = 0;
        for (int64_t j = 0; j < f; ++j)
          y += h[j] * w2[(e * f + j) * d + c];
        want[t * d + c] += weights[a] * y;
      }
    }
    double maxDiff = 0, maxRef = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      maxDiff = std::max(maxDiff, std::fabs(out[i] - want[i]));
      maxRef = std::max(maxRef, std::fabs(want[i]));
    }
    EXPECT_LE(maxDiff / maxRef, 1e-5) << "capacity " << capacity;
  }
}

} // namespace
