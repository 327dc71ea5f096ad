// tensor.h - a named host tensor (row-major, owning its bytes).
#ifndef MOE_RUNTIME_TENSOR_H
#define MOE_RUNTIME_TENSOR_H

#include "moe/runtime/dtype.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moe::runtime {

struct Tensor {
  std::string name;
  moe_dtype_t dtype = MOE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  /// The element at flat index i as f32 (any dtype).
  float at(int64_t i) const;
  /// Allocates zeroed storage for `shape`.
  static Tensor zeros(std::string name, moe_dtype_t dtype, std::vector<int64_t> shape);
};

/// Stores `count` floats times `scale` at element `at` of the float tensor
/// `t`, rounded to its dtype (nearest even for bf16 and f16).
void storeFloats(Tensor &t, int64_t at, const float *values, int64_t count, float scale = 1.0f);

/// Elements [at, at + count) of `t` as f32 into `out` (any dtype; the
/// values at() gives, in one pass).
void loadFloats(const Tensor &t, int64_t at, int64_t count, float *out);

/// Rows [begin, begin + count) of `t` along its first dimension (a rank's
/// tokens, a batch's block of them), a copy with the same name.
Tensor sliceRows(const Tensor &t, int64_t begin, int64_t count);

/// `t` converted to the float type `to` (F32, F16, BF16; rounding to nearest
/// even, as PyTorch's .to() does); the same tensor when it already is.
Tensor convertFloat(const Tensor &t, moe_dtype_t to);

/// "[4, 4096]".
std::string shapeString(const std::vector<int64_t> &shape);

} // namespace moe::runtime

#endif // MOE_RUNTIME_TENSOR_H
