// tensor.cc - host tensors.
#include "moe/runtime/tensor.h"

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

Tensor convertFloat(const Tensor &t, moe_dtype_t to) {
  if (t.dtype == to)
    return t;
  Tensor out = Tensor::zeros(t.name, to, t.shape);
  int64_t n = t.numElements();
  for (int64_t i = 0; i < n; ++i) {
    float v = t.at(i);
    switch (to) {
    case MOE_BF16: reinterpret_cast<uint16_t *>(out.data.data())[i] = f32ToBf16(v); break;
    case MOE_F16: reinterpret_cast<uint16_t *>(out.data.data())[i] = f32ToF16(v); break;
    default: reinterpret_cast<float *>(out.data.data())[i] = v; break;
    }
  }
  return out;
}

} // namespace moe::runtime
