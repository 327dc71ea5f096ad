// moe_ffn.cc - the fused dispatch -> expert FFN -> combine kernel (dropless
// or with a capacity), MegaBlocks-style: the assignments are grouped by
// expert in (token, slot) order, each expert runs its FFN as GEMMs over its
// own rows only (no padding), and combine sums each token's slots in order.
#include "moe_ffn.h"

#include "elements.h"
#include "gemm.h"
#include "thread_pool.h"

#include <algorithm>
#include <cmath>
#include <functional>

using namespace moe::runtime::cpu;

namespace moe::runtime::cpu {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

namespace {

float gelu(float x) { return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))); }

float geluGrad(float x) {
  const float c = 0.7978845608028654f;
  float t = std::tanh(c * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
}

} // namespace

float activate(int32_t kind, float g) {
  switch (kind) {
  case MOE_FFN_SWIGLU:
  case MOE_FFN_MLP_SILU:
    return g * sigmoid(g);
  case MOE_FFN_GEGLU:
  case MOE_FFN_MLP_GELU:
    return gelu(g);
  default:
    return g > 0 ? g : 0.0f; // MOE_FFN_MLP_RELU
  }
}

float activateGrad(int32_t kind, float g) {
  switch (kind) {
  case MOE_FFN_SWIGLU:
  case MOE_FFN_MLP_SILU: {
    float s = sigmoid(g);
    return s + g * s * (1.0f - s);
  }
  case MOE_FFN_GEGLU:
  case MOE_FFN_MLP_GELU:
    return geluGrad(g);
  default:
    return g > 0 ? 1.0f : 0.0f; // MOE_FFN_MLP_RELU
  }
}

ExpertPlan planExperts(const int32_t *indices, int64_t tokens, int64_t k, int64_t experts, double capacity) {
  const int64_t assignments = tokens * k;
  const int64_t limit = capacityLimit(capacity, assignments, experts);
  ExpertPlan plan;
  plan.rowsOf.resize(experts);
  plan.tokenOf.resize(experts);
  plan.kept.assign(assignments, 0);
  for (int64_t a = 0; a < assignments; ++a) {
    int64_t e = indices[a];
    if (e < 0 || e >= experts || static_cast<int64_t>(plan.rowsOf[e].size()) >= limit)
      continue;
    plan.rowsOf[e].push_back(a);
    plan.tokenOf[e].push_back(a / k);
    plan.kept[a] = 1;
  }
  return plan;
}

namespace {

/// Expert `e`'s FFN on rows src[i] of x ([*, d], xDtype), into rows dst[i]
/// of y ([*, d] f32, rounded to xDtype). `serial` keeps it on this thread.
/// Every output element is one sequential sum whatever the rows around it,
/// so a row's result does not depend on which rank or batch computes it.
void runExpert(const Experts &ex, int64_t e, const void *x, const std::vector<int64_t> &src,
               const std::vector<int64_t> &dst, float *y, bool serial) {
  const int64_t d = ex.d, f = ex.f, m = static_cast<int64_t>(src.size());
  if (m == 0)
    return;
  auto forRows = [&](const std::function<void(int64_t)> &fn) {
    if (serial)
      for (int64_t i = 0; i < m; ++i)
        fn(i);
    else
      parallelFor(m, fn);
  };
  auto product = serial ? gemmSerial : gemm;
  size_t wBytes = moe_dtype_size(static_cast<moe_dtype_t>(ex.wDtype));
  bool glu = ex.kind == MOE_FFN_SWIGLU || ex.kind == MOE_FFN_GEGLU;
  std::vector<float> xe(static_cast<size_t>(m * d));
  forRows([&](int64_t i) { loadRow(x, src[i] * d, d, ex.xDtype, xe.data() + i * d); });
  std::vector<float> ye;
  if (ex.kind == MOE_FFN_IDENTITY) {
    ye = std::move(xe);
  } else {
    // h = act(xe * W0[e]) (.* xe * W1[e] for GLUs); y = h * Wdown[e].
    const char *gate = ptr<char>(ex.w0) + e * d * f * wBytes;
    std::vector<float> h(static_cast<size_t>(m * f)), up;
    product(xe.data(), d, gate, ex.wDtype, h.data(), f, m, d, f);
    if (glu) {
      up.resize(static_cast<size_t>(m * f));
      product(xe.data(), d, ptr<char>(ex.w1) + e * d * f * wBytes, ex.wDtype, up.data(), f, m, d, f);
    }
    forRows([&](int64_t i) {
      for (int64_t j = i * f; j < (i + 1) * f; ++j)
        h[j] = glu ? activate(ex.kind, h[j]) * up[j] : activate(ex.kind, h[j]);
    });
    const char *down = ptr<char>(glu ? ex.w2 : ex.w1) + e * f * d * wBytes;
    ye.resize(static_cast<size_t>(m * d));
    product(h.data(), f, down, ex.wDtype, ye.data(), d, m, f, d);
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < d; ++c)
      y[dst[i] * d + c] = roundTo(ye[i * d + c], ex.xDtype);
}

} // namespace

/// Every expert's rows. Many small experts (DeepSeek/Qwen-style): one expert
/// per thread at a time, each GEMM serial, so no fork/join per GEMM. Few large
/// experts (Mixtral): experts in turn, each GEMM spread over the threads.
/// Either way every output element is the same sequential sum.
void runExperts(const Experts &ex, const void *x, const std::vector<std::vector<int64_t>> &src,
                const std::vector<std::vector<int64_t>> &dst, float *y) {
  int64_t experts = static_cast<int64_t>(src.size()), rows = 0;
  for (const auto &r : src)
    rows += static_cast<int64_t>(r.size());
  bool manySmall = experts >= 4 * numThreads() && rows / std::max<int64_t>(experts, 1) < 128;
  if (manySmall)
    parallelFor(experts, [&](int64_t e) { runExpert(ex, e, x, src[e], dst[e], y, true); });
  else
    for (int64_t e = 0; e < experts; ++e)
      runExpert(ex, e, x, src[e], dst[e], y, false);
}

/// out[t] = sum over slots j in order of weights[t, j] * y[t * k + j] (kept
/// assignments only), in f32: no atomics, the same order on every mesh.
void combineSlots(const std::vector<float> &y, const std::vector<char> &kept, int64_t weights, int32_t weightsDtype,
                  int64_t out, int32_t outDtype, int64_t tokens, int64_t d, int64_t k) {
  parallelFor(tokens, [&](int64_t t) {
    // The token's k routing weights, converted once rather than once per column.
    thread_local std::vector<float> w;
    w.resize(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j)
      w[j] = loadF32(ptr<void>(weights), t * k + j, weightsDtype);
    for (int64_t c = 0; c < d; ++c) {
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        int64_t a = t * k + j;
        if (kept[a])
          acc += w[j] * y[a * d + c];
      }
      storeF32(ptr<void>(out), t * d + c, outDtype, acc);
    }
  });
}

/// The most assignments an expert keeps: ceil(capacity * assignments / experts), or all.
int64_t capacityLimit(double capacity, int64_t assignments, int64_t experts) {
  if (capacity <= 0)
    return assignments;
  return static_cast<int64_t>(std::ceil(capacity * static_cast<double>(assignments) / static_cast<double>(experts)));
}

int64_t planArrivals(const ExpertCounts &counts, const std::vector<int64_t> &group, int64_t firstExpert,
                     const std::vector<int64_t> &localExperts, int64_t rowBytes,
                     std::vector<std::vector<int64_t>> &rowsOf, std::vector<int64_t> &recvBytes) {
  int64_t received = 0;
  for (size_t s = 0; s < group.size(); ++s)
    for (int64_t le : localExperts) {
      int64_t n = counts.kept(group[s], firstExpert + le);
      for (int64_t i = 0; i < n; ++i)
        rowsOf[le].push_back(received + i);
      received += n;
      recvBytes[s] += n * rowBytes;
    }
  return received;
}

moe_status_t keepRowsOnMesh(Communicator &comm, const Mesh &mesh, const int32_t *indices, int64_t tokens, int64_t k,
                            int64_t experts, double capacity, ExpertCounts &counts, KeptRows &kept) {
  const int64_t assignments = tokens * k, me = comm.rank();
  // Counts per (rank, expert), and tokens, from every rank of the world.
  std::vector<int64_t> mine(experts + 1, 0);
  for (int64_t a = 0; a < assignments; ++a)
    if (indices[a] >= 0 && indices[a] < experts)
      ++mine[indices[a]];
  mine[experts] = tokens;
  if (moe_status_t s = counts.gather(comm, mesh, mine, experts, k, capacity))
    return s;
  // The first kept(me, e) assignments of each expert, in (token, slot) order.
  kept.of.assign(static_cast<size_t>(experts), {});
  kept.mask.assign(static_cast<size_t>(assignments), 0);
  for (int64_t a = 0; a < assignments; ++a) {
    int64_t e = indices[a];
    if (e < 0 || e >= experts || static_cast<int64_t>(kept.of[e].size()) >= counts.kept(me, e))
      continue;
    kept.of[e].push_back(a);
    kept.mask[a] = 1;
  }
  return MOE_OK;
}

} // namespace moe::runtime::cpu

extern "C" void moe_cpu_moe_ffn(int64_t x, int64_t indices, int64_t weights, int64_t w0, int64_t w1, int64_t w2,
                                int64_t out, int64_t tokens, int64_t d, int64_t f, int64_t experts, int64_t k,
                                int32_t kind, double capacity, int32_t xDtype, int32_t weightsDtype, int32_t wDtype,
                                int32_t outDtype) {
  const int64_t assignments = tokens * k;
  ExpertPlan plan = planExperts(ptr<int32_t>(indices), tokens, k, experts, capacity);
  // y[a, :] for every kept assignment, rounded to the routed (x) dtype.
  std::vector<float> y(static_cast<size_t>(assignments * d), 0.0f);
  Experts ex{d, f, kind, xDtype, wDtype, w0, w1, w2};
  runExperts(ex, ptr<void>(x), plan.tokenOf, plan.rowsOf, y.data());
  combineSlots(y, plan.kept, weights, weightsDtype, out, outDtype, tokens, d, k);
}
