// moe_ffn_grad.cc - the backward of the fused dispatch -> expert FFN ->
// combine (moe_cpu_moe_ffn_grad). The forward's plan again (the same
// capacity drops), then per expert, over its own rows only: the forward's
// pre-activations recomputed, dY = w * dout, the combine weights' cotangent
// <dout, y>, dX through the transposed weights, and the weight cotangents
// dW_e = X_e^T dG as blocked sums over tokens (gradient_sums.h): no atomics,
// the same bits whatever the thread count or the mesh.
#include "elements.h"
#include "gemm.h"
#include "gradient_sums.h"
#include "moe_ffn.h"
#include "thread_pool.h"

#include <algorithm>
#include <cstring>

using namespace moe::runtime::cpu;

namespace {

/// The tensors of one backward call.
struct FfnGradCall {
  Experts ex;
  int64_t k;
  const void *x, *weights, *dout;
  int32_t weightsDtype, doutDtype;
  float *dxRows; ///< [assignments, d]: each kept assignment's cotangent
  float *dw;     ///< [assignments]: each combine weight's cotangent
  float *dW[3];  ///< f32 accumulators of the stacked weights' cotangents
};

/// Expert e's weight `which` (a [rows, cols] slice of a stacked tensor) as
/// f32: in place when the weights are f32, else converted into `storage`.
const float *weightAsF32(const FfnGradCall &c, int64_t which, int64_t e, int64_t rows, int64_t cols,
                         std::vector<float> &storage) {
  int64_t base = which == 0 ? c.ex.w0 : which == 1 ? c.ex.w1 : c.ex.w2;
  if (c.ex.wDtype == MOE_F32)
    return ptr<float>(base) + e * rows * cols;
  storage.resize(static_cast<size_t>(rows * cols));
  loadRow(ptr<void>(base), e * rows * cols, rows * cols, c.ex.wDtype, storage.data());
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

void backwardExpert(const FfnGradCall &c, const ExpertPlan &plan, int64_t e, bool serial) {
  const std::vector<int64_t> &rows = plan.rowsOf[e], &tokens = plan.tokenOf[e];
  const int64_t d = c.ex.d, f = c.ex.f, m = static_cast<int64_t>(rows.size());
  if (m == 0)
    return;
  auto product = serial ? gemmSerial : gemm;
  std::vector<float> xe(static_cast<size_t>(m * d)), go(static_cast<size_t>(m * d)), cw(m);
  for (int64_t i = 0; i < m; ++i) {
    loadRow(c.x, tokens[i] * d, d, c.ex.xDtype, xe.data() + i * d);
    loadRow(c.dout, tokens[i] * d, d, c.doutDtype, go.data() + i * d);
    cw[i] = loadF32(c.weights, rows[i], c.weightsDtype);
  }
  // y (the forward's, rounded to the routed dtype as the forward rounds it),
  // and the products the backward reuses.
  const bool glu = c.ex.kind == MOE_FFN_SWIGLU || c.ex.kind == MOE_FFN_GEGLU;
  const size_t wBytes = moe_dtype_size(static_cast<moe_dtype_t>(c.ex.wDtype));
  std::vector<float> y, g, u, h;
  if (c.ex.kind == MOE_FFN_IDENTITY) {
    y = xe;
  } else {
    g.resize(static_cast<size_t>(m * f));
    product(xe.data(), d, ptr<char>(c.ex.w0) + e * d * f * wBytes, c.ex.wDtype, g.data(), f, m, d, f);
    if (glu) {
      u.resize(static_cast<size_t>(m * f));
      product(xe.data(), d, ptr<char>(c.ex.w1) + e * d * f * wBytes, c.ex.wDtype, u.data(), f, m, d, f);
    }
    h.resize(static_cast<size_t>(m * f));
    for (int64_t j = 0; j < m * f; ++j)
      h[j] = glu ? activate(c.ex.kind, g[j]) * u[j] : activate(c.ex.kind, g[j]);
    y.resize(static_cast<size_t>(m * d));
    product(h.data(), f, ptr<char>(glu ? c.ex.w2 : c.ex.w1) + e * f * d * wBytes, c.ex.wDtype, y.data(), d, m, f, d);
    for (float &v : y)
      v = roundTo(v, c.ex.xDtype);
  }
  // The combine's cotangents: <dout, y> for the weight, w * dout for the row.
  std::vector<float> dy(static_cast<size_t>(m * d));
  for (int64_t i = 0; i < m; ++i) {
    float dot = 0.0f;
    for (int64_t col = 0; col < d; ++col) {
      dot += go[i * d + col] * y[i * d + col];
      dy[i * d + col] = cw[i] * go[i * d + col];
    }
    c.dw[rows[i]] = dot;
  }
  float *dxRows = c.dxRows;
  auto scatterRows = [&](const std::vector<float> &dx) {
    for (int64_t i = 0; i < m; ++i)
      std::copy(dx.begin() + i * d, dx.begin() + (i + 1) * d, dxRows + rows[i] * d);
  };
  if (c.ex.kind == MOE_FFN_IDENTITY) {
    scatterRows(dy);
    return;
  }
  // Down product: dH = dY Wd^T, dWd += H^T dY.
  const int64_t down = glu ? 2 : 1;
  std::vector<float> storage;
  std::vector<float> dh = timesTransposed(dy.data(), weightAsF32(c, down, e, f, d, storage), m, d, f, serial);
  addBlockedOuterProducts(h.data(), dy.data(), tokens, f, d, c.dW[down] + e * f * d, serial);
  // Through the activation (and the GLU product) into the up products.
  std::vector<float> dg(static_cast<size_t>(m * f)), du;
  if (glu)
    du.resize(static_cast<size_t>(m * f));
  for (int64_t j = 0; j < m * f; ++j) {
    if (glu) {
      dg[j] = dh[j] * u[j] * activateGrad(c.ex.kind, g[j]);
      du[j] = dh[j] * activate(c.ex.kind, g[j]);
    } else {
      dg[j] = dh[j] * activateGrad(c.ex.kind, g[j]);
    }
  }
  addBlockedOuterProducts(xe.data(), dg.data(), tokens, d, f, c.dW[0] + e * d * f, serial);
  if (glu)
    addBlockedOuterProducts(xe.data(), du.data(), tokens, d, f, c.dW[1] + e * d * f, serial);
  // dX = dG W0^T (+ dU W1^T).
  std::vector<float> dx = timesTransposed(dg.data(), weightAsF32(c, 0, e, d, f, storage), m, f, d, serial);
  if (glu) {
    std::vector<float> dxUp = timesTransposed(du.data(), weightAsF32(c, 1, e, d, f, storage), m, f, d, serial);
    for (int64_t j = 0; j < m * d; ++j)
      dx[j] += dxUp[j];
  }
  scatterRows(dx);
}

} // namespace

extern "C" void moe_cpu_moe_ffn_grad(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                                     int64_t dout, int64_t dx, int64_t dweights, int64_t dw0, int64_t dw1, int64_t dw2,
                                     int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k, int32_t kind,
                                     double capacity, int32_t xDtype, int32_t weightsDtype, int32_t wDtype,
                                     int32_t doutDtype) {
  const int64_t assignments = tokens * k;
  ExpertPlan plan = planExperts(ptr<int32_t>(indices), tokens, k, experts, capacity);
  const bool glu = kind == MOE_FFN_SWIGLU || kind == MOE_FFN_GEGLU;
  const int64_t nWeights = kind == MOE_FFN_IDENTITY ? 0 : glu ? 3 : 2;
  std::vector<float> dxRows(static_cast<size_t>(assignments * d), 0.0f), dw(assignments, 0.0f);
  // The weights' cotangents accumulate in f32: in the outputs themselves
  // when they are f32, else in buffers rounded to the weights' type at the end.
  const int64_t out[3] = {dw0, dw1, dw2};
  std::vector<std::vector<float>> storage(3);
  float *dW[3] = {nullptr, nullptr, nullptr};
  for (int64_t i = 0; i < nWeights; ++i) {
    if (wDtype == MOE_F32) {
      dW[i] = ptr<float>(out[i]);
      std::memset(dW[i], 0, static_cast<size_t>(experts * d * f) * sizeof(float));
    } else {
      storage[i].assign(static_cast<size_t>(experts * d * f), 0.0f);
      dW[i] = storage[i].data();
    }
  }
  FfnGradCall call{{d, f, kind, xDtype, wDtype, w0, w1, w2},
                   k,
                   ptr<void>(x),
                   ptr<void>(weights),
                   ptr<void>(dout),
                   weightsDtype,
                   doutDtype,
                   dxRows.data(),
                   dw.data(),
                   {dW[0], dW[1], dW[2]}};
  // As the forward: many small experts one per thread, few large ones in turn.
  bool manySmall = experts >= 4 * numThreads() && assignments / std::max<int64_t>(experts, 1) < 128;
  if (manySmall)
    parallelFor(experts, [&](int64_t e) { backwardExpert(call, plan, e, true); });
  else
    for (int64_t e = 0; e < experts; ++e)
      backwardExpert(call, plan, e, false);
  // dx[t] sums the token's kept slots in slot order; dropped ones get zero.
  parallelFor(tokens, [&](int64_t t) {
    for (int64_t col = 0; col < d; ++col) {
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (plan.kept[t * k + j])
          acc += dxRows[(t * k + j) * d + col];
      storeF32(ptr<void>(dx), t * d + col, xDtype, acc);
    }
  });
  for (int64_t a = 0; a < assignments; ++a)
    storeF32(ptr<void>(dweights), a, weightsDtype, dw[a]);
  if (wDtype != MOE_F32)
    for (int64_t i = 0; i < nWeights; ++i)
      parallelFor(experts, [&](int64_t e) {
        for (int64_t j = e * d * f; j < (e + 1) * d * f; ++j)
          storeF32(ptr<void>(out[i]), j, wDtype, dW[i][j]);
      });
}
