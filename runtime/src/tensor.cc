// tensor.cc - host tensors.
#include "moe/runtime/tensor.h"

#include "cpu/elements.h"

#include <algorithm>

#include <cstring>

namespace moe::runtime {

float Tensor::at(int64_t i) const {
  switch (dtype) {
  case MOE_F16: {
    uint16_t v;
    std::memcpy(&v, data.data() + i * 2, 2);
    return f16ToF32(v);
  }
  case MOE_BF16: {
    uint16_t v;
    std::memcpy(&v, data.data() + i * 2, 2);
    return bf16ToF32(v);
  }
  case MOE_I32: {
    int32_t v;
    std::memcpy(&v, data.data() + i * 4, 4);
    return static_cast<float>(v);
  }
  default: {
    float v;
    std::memcpy(&v, data.data() + i * 4, 4);
    return v;
  }
  }
}

Tensor Tensor::zeros(std::string name, moe_dtype_t dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.assign(static_cast<size_t>(t.numElements()) * moe_dtype_size(dtype), 0);
  return t;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace moe::runtime

namespace moe::runtime {

void storeFloats(Tensor &t, int64_t at, const float *values, int64_t count, float scale) {
  void *base = t.data.data();
  switch (t.dtype) {
  case MOE_BF16:
    for (int64_t i = 0; i < count; ++i)
      reinterpret_cast<uint16_t *>(base)[at + i] = f32ToBf16(values[i] * scale);
    break;
  case MOE_F16:
    for (int64_t i = 0; i < count; ++i)
      reinterpret_cast<uint16_t *>(base)[at + i] = f32ToF16(values[i] * scale);
    break;
  default:
    for (int64_t i = 0; i < count; ++i)
      reinterpret_cast<float *>(base)[at + i] = values[i] * scale;
    break;
  }
}

void loadFloats(const Tensor &t, int64_t at, int64_t count, float *out) {
  cpu::loadRow(t.data.data(), at, count, t.dtype, out);
}

Tensor convertFloat(const Tensor &t, moe_dtype_t to) {
  if (t.dtype == to)
    return t;
  Tensor out = Tensor::zeros(t.name, to, t.shape);
  // In pieces: a bounded buffer, the same values as element by element.
  std::vector<float> piece(1 << 16);
  for (int64_t i = 0, n = t.numElements(); i < n; i += static_cast<int64_t>(piece.size())) {
    int64_t count = std::min<int64_t>(n - i, static_cast<int64_t>(piece.size()));
    loadFloats(t, i, count, piece.data());
    storeFloats(out, i, piece.data(), count);
  }
  return out;
}

Tensor sliceRows(const Tensor &t, int64_t begin, int64_t count) {
  Tensor out;
  out.name = t.name;
  out.dtype = t.dtype;
  out.shape = t.shape;
  out.shape[0] = count;
  size_t rowBytes = t.shape[0] ? t.data.size() / static_cast<size_t>(t.shape[0]) : 0;
  out.data.assign(t.data.begin() + static_cast<ptrdiff_t>(begin * rowBytes),
                  t.data.begin() + static_cast<ptrdiff_t>((begin + count) * rowBytes));
  return out;
}

} // namespace moe::runtime
