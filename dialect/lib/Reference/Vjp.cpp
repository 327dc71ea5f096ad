//===- Vjp.cpp - the reference evaluator's derivative rules ---------------===//
#include "Vjp.h"

using namespace mlir;
using namespace moe;

namespace moe::reference::detail {
namespace {

double sigmoidGrad(double x) {
  double s = sigmoid(x);
  return s * (1 - s);
}
double siluGrad(double x) {
  double s = sigmoid(x);
  return s + x * s * (1 - s);
}
double geluGrad(double x) {
  const double c = std::sqrt(2.0 / M_PI);
  double inner = c * (x + 0.044715 * x * x * x), t = std::tanh(inner);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

double unaryGrad(UnaryFn fn, double x) {
  switch (fn) {
  case UnaryFn::neg:
    return -1;
  case UnaryFn::exp:
    return std::exp(x);
  case UnaryFn::log:
    return 1 / x;
  case UnaryFn::sqrt:
    return 0.5 / std::sqrt(x);
  case UnaryFn::tanh: {
    double t = std::tanh(x);
    return 1 - t * t;
  }
  case UnaryFn::abs:
    return x > 0 ? 1 : x < 0 ? -1 : 0;
  case UnaryFn::sigmoid:
    return sigmoidGrad(x);
  case UnaryFn::silu:
    return siluGrad(x);
  case UnaryFn::gelu:
    return geluGrad(x);
  case UnaryFn::relu:
    return x > 0 ? 1 : 0;
  }
  return 1;
}

double activationGrad(Activation act, double x) {
  switch (act) {
  case Activation::relu:
    return x > 0 ? 1 : 0;
  case Activation::gelu:
    return geluGrad(x);
  case Activation::silu:
    return siluGrad(x);
  }
  return 1;
}

/// d f(a, b) / da and / db.
std::pair<double, double> binaryGrad(BinaryFn fn, double a, double b) {
  switch (fn) {
  case BinaryFn::add:
    return {1, 1};
  case BinaryFn::sub:
    return {1, -1};
  case BinaryFn::mul:
    return {b, a};
  case BinaryFn::div:
    return {1 / b, -a / (b * b)};
  case BinaryFn::pow:
    return {b * std::pow(a, b - 1), a > 0 ? std::pow(a, b) * std::log(a) : 0.0};
  case BinaryFn::max: // a tie goes to the left operand, as the forward's std::max returns it
    return a >= b ? std::pair{1.0, 0.0} : std::pair{0.0, 1.0};
  case BinaryFn::min:
    return a <= b ? std::pair{1.0, 0.0} : std::pair{0.0, 1.0};
  }
  return {0, 0};
}

} // namespace

namespace vjp {

Vec unary(UnaryFn fn, const Tensor &x, const Vec &dy) {
  Vec dx = dy;
  for (size_t i = 0; i < dx.size(); ++i)
    dx[i] *= unaryGrad(fn, x.data[i]);
  return dx;
}

std::pair<Vec, Vec> binary(BinaryFn fn, const Tensor &l, const Tensor &r, const std::vector<int64_t> &out,
                           const Vec &dy) {
  Vec dl(l.data.size(), 0.0), dr(r.data.size(), 0.0);
  size_t rank = out.size();
  std::vector<int64_t> index(rank, 0);
  auto offset = [&](const Tensor &o) { return broadcastOffset(o, index); };
  int64_t n = 1;
  for (int64_t d : out)
    n *= d;
  // Broadcast operands sum their cotangents over the broadcast dimensions.
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (size_t d = rank; d-- > 0;) {
      index[d] = rem % out[d];
      rem /= out[d];
    }
    int64_t li = offset(l), ri = offset(r);
    auto [ga, gb] = binaryGrad(fn, l.data[li], r.data[ri]);
    dl[li] += dy[i] * ga;
    dr[ri] += dy[i] * gb;
  }
  return {dl, dr};
}

Vec reduce(ReduceFn fn, const Tensor &x, int64_t dim, const Vec &dy) {
  Vec dx(x.data.size(), 0.0);
  int64_t line = 0;
  Interpreter::forEachLine(x.shape, dim, [&](int64_t base, int64_t stride, int64_t n) {
    double g = dy[line++];
    if (fn == ReduceFn::max) {
      int64_t best = 0; // the first maximum, as the forward's std::max keeps it
      for (int64_t i = 1; i < n; ++i)
        if (x.data[base + i * stride] > x.data[base + best * stride])
          best = i;
      dx[base + best * stride] += g;
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      dx[base + i * stride] += fn == ReduceFn::mean ? g / static_cast<double>(n) : g;
  });
  return dx;
}

Vec softmax(const Tensor &y, int64_t dim, bool log, const Vec &dy) {
  Vec dx(dy.size(), 0.0);
  Interpreter::forEachLine(y.shape, dim, [&](int64_t base, int64_t stride, int64_t n) {
    double dot = 0, sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      dot += dy[base + i * stride] * y.data[base + i * stride];
      sum += dy[base + i * stride];
    }
    for (int64_t i = 0; i < n; ++i) {
      int64_t at = base + i * stride;
      dx[at] = log ? dy[at] - std::exp(y.data[at]) * sum : y.data[at] * (dy[at] - dot);
    }
  });
  return dx;
}

std::pair<Vec, Vec> dense(const Tensor &x, const Tensor &w, const Vec &dy) {
  int64_t m = x.shape[0], kd = x.shape[1], n = w.shape[1];
  Vec dx(m * kd, 0.0), dw(kd * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double g = dy[i * n + j];
      for (int64_t p = 0; p < kd; ++p) {
        dx[i * kd + p] += g * w.data[p * n + j];
        dw[p * n + j] += g * x.data[i * kd + p];
      }
    }
  return {dx, dw};
}

std::pair<Vec, Vec> rmsnorm(const Tensor &x, const Tensor &w, double eps, const Vec &dy) {
  int64_t rows = x.shape[0], cols = x.shape[1];
  Vec dx(x.data.size(), 0.0), dw(cols, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const double *xi = &x.data[i * cols];
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c)
      ss += xi[c] * xi[c];
    double s = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps), dot = 0;
    for (int64_t c = 0; c < cols; ++c) {
      dw[c] += dy[i * cols + c] * xi[c] * s;
      dot += dy[i * cols + c] * w.data[c] * xi[c];
    }
    // y_c = x_c s w_c, ds/dx_j = -s^3 x_j / cols.
    for (int64_t c = 0; c < cols; ++c)
      dx[i * cols + c] = dy[i * cols + c] * w.data[c] * s - xi[c] * s * s * s * dot / static_cast<double>(cols);
  }
  return {dx, dw};
}

Vec topk(const Tensor &x, const Tensor &idx, std::optional<ScoreFn> score, bool renormalize, double scale,
         const Vec &dv) {
  int64_t rows = x.shape[0], cols = x.shape[1], k = idx.shape[1];
  Vec dx(x.data.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double *xr = &x.data[r * cols];
    std::vector<double> s(xr, xr + cols);
    if (score == ScoreFn::softmax) {
      double m = *std::max_element(s.begin(), s.end()), sum = 0;
      for (double &v : s)
        sum += (v = std::exp(v - m));
      for (double &v : s)
        v /= sum;
    } else if (score == ScoreFn::sigmoid) {
      for (double &v : s)
        v = sigmoid(v);
    }
    // d values / d scores at the selected experts.
    std::vector<double> ds(cols, 0.0);
    double total = 0, weighted = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t e = static_cast<int64_t>(idx.data[r * k + j]);
      total += s[e];
      weighted += dv[r * k + j] * s[e];
    }
    for (int64_t j = 0; j < k; ++j) {
      int64_t e = static_cast<int64_t>(idx.data[r * k + j]);
      double g = dv[r * k + j] * scale;
      ds[e] += renormalize ? g / total - scale * weighted / (total * total) : g;
    }
    // Through the score function.
    if (score == ScoreFn::softmax) {
      double dot = 0;
      for (int64_t c = 0; c < cols; ++c)
        dot += ds[c] * s[c];
      for (int64_t c = 0; c < cols; ++c)
        dx[r * cols + c] = s[c] * (ds[c] - dot);
    } else if (score == ScoreFn::sigmoid) {
      for (int64_t c = 0; c < cols; ++c)
        dx[r * cols + c] = ds[c] * s[c] * (1 - s[c]);
    } else {
      for (int64_t c = 0; c < cols; ++c)
        dx[r * cols + c] = ds[c];
    }
  }
  return dx;
}

Vec gather(const Tensor &idx, int64_t cols, const Vec &dy) {
  Vec dx(idx.shape[0] * cols, 0.0);
  for (int64_t r = 0; r < idx.shape[0]; ++r)
    for (int64_t j = 0; j < idx.shape[1]; ++j)
      dx[r * cols + static_cast<int64_t>(idx.data[r * idx.shape[1] + j])] += dy[r * idx.shape[1] + j];
  return dx;
}

std::pair<Vec, Vec> combine(const Routed &r, const Tensor &w, const Vec &dout) {
  Vec dRows(r.rows.size(), 0.0), dw(w.data.size(), 0.0);
  for (int64_t a = 0; a < r.tokens * r.k; ++a) {
    if (!r.kept[a])
      continue; // a dropped assignment contributes zero: its weight and row get zero
    const double *g = &dout[(a / r.k) * r.hidden];
    for (int64_t col = 0; col < r.hidden; ++col) {
      dw[a] += g[col] * r.rows[a * r.hidden + col];
      dRows[a * r.hidden + col] += w.data[a] * g[col];
    }
  }
  return {dRows, dw};
}

std::pair<Vec, std::vector<Vec>> expertFfn(FfnKind kind, std::optional<Activation> activation, const Routed &in,
                                           const std::vector<const Tensor *> &w, int64_t inner, const Vec &dyRows,
                                           const Tensor *up) {
  std::vector<Vec> dw;
  for (const Tensor *t : w)
    dw.emplace_back(t->data.size(), 0.0);
  Vec dxRows(in.rows.size(), 0.0);
  const int64_t d = in.hidden;
  const bool glu = kind != FfnKind::mlp;
  const Tensor &down = *w.back();
  Vec &dDown = dw.back();
  for (int64_t a = 0; a < static_cast<int64_t>(in.expert.size()); ++a) {
    if (!in.kept[a])
      continue;
    int64_t e = in.expert[a];
    const double *x = &in.rows[a * d], *dy = &dyRows[a * d];
    // The forward's pre-activations (kept, or again), then the chain rule.
    std::vector<double> g(inner, 0.0), u(inner, 0.0), h(inner), dh(inner, 0.0);
    const int64_t upWidth = glu ? 2 * inner : inner;
    for (int64_t j = 0; j < inner; ++j) {
      if (up) {
        g[j] = up->data[a * upWidth + j];
        if (glu)
          u[j] = up->data[a * upWidth + inner + j];
      } else {
        for (int64_t p = 0; p < d; ++p) {
          g[j] += x[p] * w[0]->data[(e * d + p) * inner + j];
          if (glu)
            u[j] += x[p] * w[1]->data[(e * d + p) * inner + j];
        }
      }
      switch (kind) {
      case FfnKind::swiglu:
        h[j] = g[j] * sigmoid(g[j]) * u[j];
        break;
      case FfnKind::geglu:
        h[j] = gelu(g[j]) * u[j];
        break;
      case FfnKind::mlp:
        h[j] = activate(*activation, g[j]);
        break;
      }
    }
    for (int64_t j = 0; j < inner; ++j)
      for (int64_t c = 0; c < d; ++c) {
        dh[j] += dy[c] * down.data[(e * inner + j) * d + c];
        dDown[(e * inner + j) * d + c] += h[j] * dy[c];
      }
    for (int64_t j = 0; j < inner; ++j) {
      double dg = 0, du = 0;
      switch (kind) {
      case FfnKind::swiglu:
        dg = dh[j] * u[j] * siluGrad(g[j]);
        du = dh[j] * g[j] * sigmoid(g[j]);
        break;
      case FfnKind::geglu:
        dg = dh[j] * u[j] * geluGrad(g[j]);
        du = dh[j] * gelu(g[j]);
        break;
      case FfnKind::mlp:
        dg = dh[j] * activationGrad(*activation, g[j]);
        break;
      }
      for (int64_t p = 0; p < d; ++p) {
        dw[0][(e * d + p) * inner + j] += x[p] * dg;
        dxRows[a * d + p] += dg * w[0]->data[(e * d + p) * inner + j];
        if (glu) {
          dw[1][(e * d + p) * inner + j] += x[p] * du;
          dxRows[a * d + p] += du * w[1]->data[(e * d + p) * inner + j];
        }
      }
    }
  }
  return {dxRows, dw};
}

Vec dispatch(const Routed &r, const Vec &dRows) {
  Vec dx(r.tokens * r.hidden, 0.0);
  for (int64_t a = 0; a < r.tokens * r.k; ++a)
    if (r.kept[a])
      for (int64_t c = 0; c < r.hidden; ++c)
        dx[(a / r.k) * r.hidden + c] += dRows[a * r.hidden + c];
  return dx;
}

Vec loadBalanceLoss(const Tensor &p, const Tensor &idx, double g) {
  int64_t tokens = p.shape[0], experts = p.shape[1], k = idx.shape[1];
  Vec fraction(experts, 0.0), dp(p.data.size(), 0.0);
  for (double e : idx.data)
    fraction[static_cast<int64_t>(e)] += 1.0 / static_cast<double>(tokens * k);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < experts; ++e)
      dp[t * experts + e] = g * static_cast<double>(experts) * fraction[e] / static_cast<double>(tokens);
  return dp;
}

Vec zLoss(const Tensor &x, double g) {
  int64_t rows = x.shape[0], cols = x.shape[1];
  Vec dx(x.data.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double *xr = &x.data[r * cols];
    double m = *std::max_element(xr, xr + cols), s = 0;
    for (int64_t c = 0; c < cols; ++c)
      s += std::exp(xr[c] - m);
    double lse = m + std::log(s);
    for (int64_t c = 0; c < cols; ++c)
      dx[r * cols + c] = g * 2 * lse * std::exp(xr[c] - lse) / static_cast<double>(rows);
  }
  return dx;
}

} // namespace vjp

namespace {

std::optional<ScoreFn> scoreOf(TopKGradOp op) {
  if (auto s = op.getScore())
    return *s;
  return std::nullopt;
}

/// A routed cotangent: the primal's routing with the rows' cotangents.
Routed withRows(const Routed &primal, vjp::Vec rows) {
  Routed r = primal;
  r.rows = std::move(rows);
  return r;
}

} // namespace

LogicalResult evaluateGradOp(Interpreter &in, Operation &op) {
  auto value = [&](Value v) -> const Tensor & { return in.tensors[v]; };
  auto put = [&](Value v, const Tensor &like, vjp::Vec data) { in.set(v, Tensor{like.shape, std::move(data)}); };
  return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
      .Case([&](UnaryGradOp g) {
        put(g.getResult(), value(g.getInput()), vjp::unary(g.getFn(), value(g.getInput()), value(g.getGrad()).data));
        return success();
      })
      .Case([&](BinaryGradOp g) {
        auto [dl, dr] = vjp::binary(g.getFn(), value(g.getLhs()), value(g.getRhs()), value(g.getGrad()).shape,
                                    value(g.getGrad()).data);
        put(g.getLhsGrad(), value(g.getLhs()), dl);
        put(g.getRhsGrad(), value(g.getRhs()), dr);
        return success();
      })
      .Case([&](ReduceGradOp g) {
        put(g.getResult(), value(g.getInput()),
            vjp::reduce(g.getFn(), value(g.getInput()), static_cast<int64_t>(g.getDim()), value(g.getGrad()).data));
        return success();
      })
      .Case([&](SoftmaxGradOp g) {
        put(g.getResult(), value(g.getOutput()),
            vjp::softmax(value(g.getOutput()), static_cast<int64_t>(g.getDim()), g.getLog(), value(g.getGrad()).data));
        return success();
      })
      .Case([&](DenseGradOp g) {
        auto [dx, dw] = vjp::dense(value(g.getInput()), value(g.getWeight()), value(g.getGrad()).data);
        put(g.getInputGrad(), value(g.getInput()), dx);
        put(g.getWeightGrad(), value(g.getWeight()), dw);
        return success();
      })
      .Case([&](RMSNormGradOp g) {
        auto [dx, dw] = vjp::rmsnorm(value(g.getInput()), value(g.getWeight()), g.getEps().convertToDouble(),
                                     value(g.getGrad()).data);
        put(g.getInputGrad(), value(g.getInput()), dx);
        put(g.getWeightGrad(), value(g.getWeight()), dw);
        return success();
      })
      .Case([&](TopKGradOp g) {
        double scale = g.getScale() ? g.getScale()->convertToDouble() : 1.0;
        put(g.getResult(), value(g.getLogits()),
            vjp::topk(value(g.getLogits()), value(g.getIndices()), scoreOf(g), g.getRenormalize(), scale,
                      value(g.getGrad()).data));
        return success();
      })
      .Case([&](GatherGradOp g) {
        const Tensor &idx = value(g.getIndices());
        int64_t cols = g.getResult().getType().getDimSize(1);
        put(g.getResult(), Tensor{{idx.shape[0], cols}, {}}, vjp::gather(idx, cols, value(g.getGrad()).data));
        return success();
      })
      .Case([&](CombineGradOp g) {
        const Routed &y = in.routed[g.getRouted()];
        auto [dRows, dw] = vjp::combine(y, value(g.getWeights()), value(g.getGrad()).data);
        in.routed[g.getRoutedGrad()] = withRows(y, std::move(dRows));
        put(g.getWeightsGrad(), value(g.getWeights()), dw);
        return success();
      })
      .Case([&](ExpertFfnGradOp g) {
        const Routed &x = in.routed[g.getRouted()];
        std::vector<const Tensor *> w;
        for (Value v : g.getWeights())
          w.push_back(&value(v));
        std::optional<Activation> act;
        if (auto a = g.getActivation())
          act = *a;
        int64_t inner = cast<RankedTensorType>(g.getWeights().front().getType()).getDimSize(2);
        auto [dRows, dw] = vjp::expertFfn(g.getKind(), act, x, w, inner, in.routed[g.getGrad()].rows,
                                          g.getUp() ? &value(g.getUp()) : nullptr);
        in.routed[g.getRoutedGrad()] = withRows(x, std::move(dRows));
        for (auto [result, weight, d] : llvm::zip(g.getWeightsGrad(), w, dw))
          put(result, *weight, d);
        return success();
      })
      .Case([&](DispatchGradOp g) {
        const Routed &r = in.routed[g.getGrad()];
        put(g.getResult(), Tensor{{r.tokens, r.hidden}, {}}, vjp::dispatch(r, r.rows));
        return success();
      })
      .Case([&](LoadBalanceLossGradOp g) {
        put(g.getResult(), value(g.getProbs()),
            vjp::loadBalanceLoss(value(g.getProbs()), value(g.getIndices()), value(g.getGrad()).data[0]));
        return success();
      })
      .Case([&](ZLossGradOp g) {
        put(g.getResult(), value(g.getLogits()), vjp::zLoss(value(g.getLogits()), value(g.getGrad()).data[0]));
        return success();
      })
      .Default([&](Operation *other) { return in.fail(other, "not supported by the reference evaluator"); });
}

} // namespace moe::reference::detail
