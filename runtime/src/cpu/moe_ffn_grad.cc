// moe_ffn_grad.cc - the backward of the fused dispatch -> expert FFN ->
// combine (moe_cpu_moe_ffn_grad). The forward's plan again (the same
// capacity drops), then per expert, over its own rows only: the forward's
// pre-activations recomputed, dY = w * dout, the combine weights' cotangent
// <dout, y>, dX through the transposed weights, and the weight cotangents
// dW_e = X_e^T dG as blocked sums over tokens (gradient_sums.h): no atomics,
// the same bits whatever the thread count or the mesh.
#include "moe_ffn_grad.h"

#include "elements.h"
#include "gemm.h"
#include "gradient_sums.h"
#include "thread_pool.h"

#include <algorithm>
#include <cstring>

using namespace moe::runtime::cpu;

namespace {

/// Expert e's weight `which` (a [rows, cols] slice of a stacked tensor) as
/// f32: in place when the weights are f32, else converted into `storage`.
const float *weightAsF32(const Experts &ex, int64_t which, int64_t e, int64_t rows, int64_t cols,
                         std::vector<float> &storage) {
  int64_t base = which == 0 ? ex.w0 : which == 1 ? ex.w1 : ex.w2;
  if (ex.wDtype == MOE_F32)
    return ptr<float>(base) + e * rows * cols;
  storage.resize(static_cast<size_t>(rows * cols));
  loadRow(ptr<void>(base), e * rows * cols, rows * cols, ex.wDtype, storage.data());
  return storage.data();
}

/// out[m, n] = g[m, k] * w^T for w [n, k], formed as (w g^T)^T: the weight is
/// read in place as the product's A (never transposed, it is the large
/// operand) and the small activations are transposed instead. Each element
/// is one sequential f32 sum over k.
std::vector<float> timesTransposed(const float *g, const float *w, int64_t m, int64_t k, int64_t n, bool serial) {
  std::vector<float> gT = transposed(g, k, m, k), outT(static_cast<size_t>(n * m));
  (serial ? gemmSerial : gemmTall)(w, k, gT.data(), MOE_F32, outT.data(), m, n, k, m);
  return transposed(outT.data(), m, n, m);
}

} // namespace

void moe::runtime::cpu::backwardExpert(const Experts &ex, int64_t e, const ExpertGradRows &in, float *dxRows, float *dw,
                                       float *const dW[3], bool serial) {
  const int64_t d = ex.d, f = ex.f, m = static_cast<int64_t>(in.token.size());
  if (m == 0)
    return;
  auto product = serial ? gemmSerial : gemm;
  const std::vector<float> &xe = in.x, &go = in.dout, &cw = in.weight;
  // y (the forward's, rounded to the routed dtype as the forward rounds it),
  // and the products the backward reuses.
  const bool glu = ex.kind == MOE_FFN_SWIGLU || ex.kind == MOE_FFN_GEGLU;
  const size_t wBytes = moe_dtype_size(static_cast<moe_dtype_t>(ex.wDtype));
  std::vector<float> y, g, u, h;
  if (ex.kind == MOE_FFN_IDENTITY) {
    y = xe;
  } else {
    g.resize(static_cast<size_t>(m * f));
    product(xe.data(), d, ptr<char>(ex.w0) + e * d * f * wBytes, ex.wDtype, g.data(), f, m, d, f);
    if (glu) {
      u.resize(static_cast<size_t>(m * f));
      product(xe.data(), d, ptr<char>(ex.w1) + e * d * f * wBytes, ex.wDtype, u.data(), f, m, d, f);
    }
    h.resize(static_cast<size_t>(m * f));
    for (int64_t j = 0; j < m * f; ++j)
      h[j] = glu ? activate(ex.kind, g[j]) * u[j] : activate(ex.kind, g[j]);
    y.resize(static_cast<size_t>(m * d));
    product(h.data(), f, ptr<char>(glu ? ex.w2 : ex.w1) + e * f * d * wBytes, ex.wDtype, y.data(), d, m, f, d);
    for (float &v : y)
      v = roundTo(v, ex.xDtype);
  }
  // The combine's cotangents: <dout, y> for the weight, w * dout for the row.
  std::vector<float> dy(static_cast<size_t>(m * d));
  for (int64_t i = 0; i < m; ++i) {
    float dot = 0.0f;
    for (int64_t col = 0; col < d; ++col) {
      dot += go[i * d + col] * y[i * d + col];
      dy[i * d + col] = cw[i] * go[i * d + col];
    }
    dw[i] = dot;
  }
  if (ex.kind == MOE_FFN_IDENTITY) {
    std::copy(dy.begin(), dy.end(), dxRows);
    return;
  }
  // Down product: dH = dY Wd^T, dWd += H^T dY.
  const int64_t down = glu ? 2 : 1;
  std::vector<float> storage;
  std::vector<float> dh = timesTransposed(dy.data(), weightAsF32(ex, down, e, f, d, storage), m, d, f, serial);
  addBlockedOuterProducts(h.data(), dy.data(), in.token, f, d, dW[down] + e * f * d, serial);
  // Through the activation (and the GLU product) into the up products.
  std::vector<float> dg(static_cast<size_t>(m * f)), du;
  if (glu)
    du.resize(static_cast<size_t>(m * f));
  for (int64_t j = 0; j < m * f; ++j) {
    if (glu) {
      dg[j] = dh[j] * u[j] * activateGrad(ex.kind, g[j]);
      du[j] = dh[j] * activate(ex.kind, g[j]);
    } else {
      dg[j] = dh[j] * activateGrad(ex.kind, g[j]);
    }
  }
  addBlockedOuterProducts(xe.data(), dg.data(), in.token, d, f, dW[0] + e * d * f, serial);
  if (glu)
    addBlockedOuterProducts(xe.data(), du.data(), in.token, d, f, dW[1] + e * d * f, serial);
  // dX = dG W0^T (+ dU W1^T).
  std::vector<float> dx = timesTransposed(dg.data(), weightAsF32(ex, 0, e, d, f, storage), m, f, d, serial);
  if (glu) {
    std::vector<float> dxUp = timesTransposed(du.data(), weightAsF32(ex, 1, e, d, f, storage), m, f, d, serial);
    for (int64_t j = 0; j < m * d; ++j)
      dx[j] += dxUp[j];
  }
  std::copy(dx.begin(), dx.end(), dxRows);
}

moe::runtime::cpu::ExpertGradAccumulators::ExpertGradAccumulators(const Experts &ex, int64_t experts, int64_t dw0,
                                                                  int64_t dw1, int64_t dw2)
    : ex_(ex), experts_(experts), out_{dw0, dw1, dw2} {
  const bool glu = ex.kind == MOE_FFN_SWIGLU || ex.kind == MOE_FFN_GEGLU;
  count_ = ex.kind == MOE_FFN_IDENTITY ? 0 : glu ? 3 : 2;
  for (int64_t i = 0; i < count_; ++i) {
    if (ex.wDtype == MOE_F32) {
      dW[i] = ptr<float>(out_[i]);
      std::memset(dW[i], 0, static_cast<size_t>(experts * ex.d * ex.f) * sizeof(float));
    } else {
      storage_[i].assign(static_cast<size_t>(experts * ex.d * ex.f), 0.0f);
      dW[i] = storage_[i].data();
    }
  }
}

void moe::runtime::cpu::ExpertGradAccumulators::store() {
  if (ex_.wDtype == MOE_F32)
    return;
  const int64_t size = ex_.d * ex_.f;
  for (int64_t i = 0; i < count_; ++i)
    parallelFor(experts_, [&](int64_t e) {
      for (int64_t j = e * size; j < (e + 1) * size; ++j)
        storeF32(ptr<void>(out_[i]), j, ex_.wDtype, dW[i][j]);
    });
}

void moe::runtime::cpu::sumSlotGradients(const std::vector<float> &dxRows, const std::vector<char> &kept,
                                         const std::vector<float> &dw, int64_t dx, int32_t xDtype, int64_t dweights,
                                         int32_t weightsDtype, int64_t tokens, int64_t d, int64_t k) {
  parallelFor(tokens, [&](int64_t t) {
    for (int64_t col = 0; col < d; ++col) {
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (kept[t * k + j])
          acc += dxRows[(t * k + j) * d + col];
      storeF32(ptr<void>(dx), t * d + col, xDtype, acc);
    }
  });
  for (int64_t a = 0; a < tokens * k; ++a)
    storeF32(ptr<void>(dweights), a, weightsDtype, dw[a]);
}

extern "C" void moe_cpu_moe_ffn_grad(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                                     int64_t dout, int64_t dx, int64_t dweights, int64_t dw0, int64_t dw1, int64_t dw2,
                                     int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind,
                                     double capacity, int32_t xDtype, int32_t weightsDtype, int32_t wDtype,
                                     int32_t doutDtype) {
  const int64_t assignments = tokens * k;
  ExpertPlan plan = planExperts(ptr<int32_t>(indices), tokens, k, experts, capacity);
  const Experts ex{d, f, kind, xDtype, wDtype, w0, w1, w2};
  ExpertGradAccumulators acc(ex, experts, dw0, dw1, dw2);
  std::vector<float> dxRows(static_cast<size_t>(assignments * d), 0.0f), dw(assignments, 0.0f);
  auto one = [&](int64_t e, bool serial) {
    const std::vector<int64_t> &rows = plan.rowsOf[e];
    ExpertGradRows in;
    in.token = plan.tokenOf[e];
    const int64_t m = static_cast<int64_t>(rows.size());
    in.x.resize(static_cast<size_t>(m * d));
    in.dout.resize(static_cast<size_t>(m * d));
    in.weight.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      loadRow(ptr<void>(x), in.token[i] * d, d, xDtype, in.x.data() + i * d);
      loadRow(ptr<void>(dout), in.token[i] * d, d, doutDtype, in.dout.data() + i * d);
      in.weight[i] = loadF32(ptr<void>(weights), rows[i], weightsDtype);
    }
    std::vector<float> dxe(static_cast<size_t>(m * d)), dwe(static_cast<size_t>(m));
    backwardExpert(ex, e, in, dxe.data(), dwe.data(), acc.dW, serial);
    for (int64_t i = 0; i < m; ++i) {
      std::copy(dxe.begin() + i * d, dxe.begin() + (i + 1) * d, dxRows.begin() + rows[i] * d);
      dw[rows[i]] = dwe[i];
    }
  };
  // As the forward: many small experts one per thread, few large ones in turn.
  if (manySmallExperts(experts, assignments))
    parallelFor(experts, [&](int64_t e) { one(e, true); });
  else
    for (int64_t e = 0; e < experts; ++e)
      one(e, false);
  // dx[t] sums the token's kept slots in slot order; dropped ones get zero.
  sumSlotGradients(dxRows, plan.kept, dw, dx, xDtype, dweights, weightsDtype, tokens, d, k);
  acc.store();
}
