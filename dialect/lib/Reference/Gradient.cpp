//===- Gradient.cpp - reverse mode of the float64 reference evaluator -----===//
//
// reference::gradient: the exact forward (every value kept), then the ops in
// reverse, each adding its inputs' adjoints from its results' (a
// vector-Jacobian product written from the op's documented semantics, as the
// forward is). Checked against central finite differences of evaluateExact
// (test/unit/GradientTest.cpp), so it is the oracle the compiled backward
// will be tested against.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/Reference/Evaluator.h"

#include "Interpreter.h"

using namespace mlir;
using namespace moe;
using namespace moe::reference::detail;
using reference::Tensor;

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

class Backward {
public:
  Backward(Interpreter &forward, std::string &error) : fwd(forward), error(error) {}

  FailureOr<std::vector<Tensor>> run(func::FuncOp fn, ArrayRef<Tensor> cotangents) {
    Block &body = fn.getBody().front();
    Operation *ret = body.getTerminator();
    if (cotangents.size() != ret->getNumOperands())
      return fail(fn, "expects " + std::to_string(ret->getNumOperands()) + " cotangents, got " +
                          std::to_string(cotangents.size()));
    for (auto [v, c] : llvm::zip(ret->getOperands(), cotangents)) {
      if (c.data.size() != fwd.tensors[v].data.size())
        return fail(fn, "a cotangent has " + std::to_string(c.data.size()) + " elements, its output " +
                            std::to_string(fwd.tensors[v].data.size()));
      accumulate(v, c.data);
    }
    for (Operation &op : llvm::reverse(body.without_terminator()))
      if (failed(step(op)))
        return failure();
    std::vector<Tensor> grads;
    for (BlockArgument arg : body.getArguments()) {
      Tensor g{fwd.tensors[arg].shape, adjointOf(arg)};
      grads.push_back(std::move(g));
    }
    return grads;
  }

private:
  LogicalResult fail(Operation *op, const std::string &message) {
    error = op->getName().getStringRef().str() + " (backward): " + message;
    return failure();
  }

  const Tensor &value(Value v) { return fwd.tensors[v]; }

  /// The adjoint of `v` (zeros where nothing flowed back).
  std::vector<double> adjointOf(Value v) {
    auto it = adjoints.find(v);
    if (it != adjoints.end())
      return it->second;
    return std::vector<double>(fwd.tensors[v].data.size(), 0.0);
  }
  bool hasAdjoint(Value v) const { return adjoints.count(v) != 0; }

  void accumulate(Value v, const std::vector<double> &g) {
    auto [it, inserted] = adjoints.try_emplace(v, g);
    if (!inserted)
      for (size_t i = 0; i < g.size(); ++i)
        it->second[i] += g[i];
  }

  /// The adjoint rows of a routed value ([tokens * k, hidden]).
  std::vector<double> &routedAdjoint(Value v) {
    auto [it, inserted] = routedAdjoints.try_emplace(v);
    if (inserted)
      it->second.assign(fwd.routed[v].rows.size(), 0.0);
    return it->second;
  }

  LogicalResult step(Operation &op) {
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        // No gradient: constants, sizes, integer arithmetic, the routing choices.
        .Case<arith::ConstantOp, arith::AddIOp, tensor::DimOp, tensor::SplatOp, GroupTopKOp>(
            [](Operation *) { return success(); })
        .Case<arith::ExtFOp, arith::TruncFOp>([&](auto cast) {
          if (hasAdjoint(cast.getResult()))
            accumulate(cast.getIn(), adjointOf(cast.getResult()));
          return success();
        })
        .Case<tensor::ExpandShapeOp, tensor::CollapseShapeOp>([&](auto reshape) {
          if (hasAdjoint(reshape.getResult()))
            accumulate(reshape.getSrc(), adjointOf(reshape.getResult()));
          return success();
        })
        .Case([&](UnaryOp u) {
          if (!hasAdjoint(u.getResult()))
            return success();
          std::vector<double> g = adjointOf(u.getResult());
          const Tensor &x = value(u.getInput());
          for (size_t i = 0; i < g.size(); ++i)
            g[i] *= unaryGrad(u.getFn(), x.data[i]);
          accumulate(u.getInput(), g);
          return success();
        })
        .Case([&](BinaryOp b) { return binary(b); })
        .Case([&](ReduceOp r) { return reduce(r); })
        .Case([&](SoftmaxOp s) { return softmax(s); })
        .Case([&](DenseOp d) { return dense(d); })
        .Case([&](RMSNormOp r) { return rmsnorm(r); })
        .Case([&](TopKOp t) { return topk(t); })
        .Case([&](GatherOp g) {
          if (!hasAdjoint(g.getResult()))
            return success();
          const Tensor &x = value(g.getInput()), &idx = value(g.getIndices());
          std::vector<double> dy = adjointOf(g.getResult()), dx(x.data.size(), 0.0);
          for (int64_t r = 0; r < idx.shape[0]; ++r)
            for (int64_t j = 0; j < idx.shape[1]; ++j)
              dx[r * x.shape[1] + static_cast<int64_t>(idx.data[r * idx.shape[1] + j])] += dy[r * idx.shape[1] + j];
          accumulate(g.getInput(), dx);
          return success();
        })
        .Case([&](DispatchOp d) { return dispatch(d); })
        .Case([&](ExpertFfnOp f) { return expertFfn(f); })
        .Case([&](CombineOp c) { return combine(c); })
        .Case([&](LoadBalanceLossOp l) { return loadBalanceLoss(l); })
        .Case([&](ZLossOp z) { return zLoss(z); })
        .Default([&](Operation *other) { return fail(other, "has no gradient rule in the reference evaluator"); });
  }

  LogicalResult binary(BinaryOp b) {
    if (!hasAdjoint(b.getResult()))
      return success();
    const Tensor &l = value(b.getLhs()), &r = value(b.getRhs()), &out = value(b.getResult());
    std::vector<double> dy = adjointOf(b.getResult()), dl(l.data.size(), 0.0), dr(r.data.size(), 0.0);
    size_t rank = out.shape.size();
    std::vector<int64_t> index(rank, 0);
    auto offset = [&](const Tensor &o) {
      int64_t off = 0;
      for (size_t d = 0; d < o.shape.size(); ++d)
        off = off * o.shape[d] + (o.shape[d] == 1 ? 0 : index[d]);
      return off;
    };
    // Broadcast operands sum their adjoints over the broadcast dimensions.
    for (int64_t i = 0; i < out.numElements(); ++i) {
      int64_t rem = i;
      for (size_t d = rank; d-- > 0;) {
        index[d] = rem % out.shape[d];
        rem /= out.shape[d];
      }
      int64_t li = offset(l), ri = offset(r);
      auto [ga, gb] = binaryGrad(b.getFn(), l.data[li], r.data[ri]);
      dl[li] += dy[i] * ga;
      dr[ri] += dy[i] * gb;
    }
    accumulate(b.getLhs(), dl);
    accumulate(b.getRhs(), dr);
    return success();
  }

  LogicalResult reduce(ReduceOp r) {
    if (!hasAdjoint(r.getResult()))
      return success();
    const Tensor &x = value(r.getInput());
    std::vector<double> dy = adjointOf(r.getResult()), dx(x.data.size(), 0.0);
    int64_t line = 0;
    Interpreter::forEachLine(x.shape, static_cast<int64_t>(r.getDim()), [&](int64_t base, int64_t stride, int64_t n) {
      double g = dy[line++];
      if (r.getFn() == ReduceFn::max) {
        int64_t best = 0; // the first maximum, as the forward's std::max keeps it
        for (int64_t i = 1; i < n; ++i)
          if (x.data[base + i * stride] > x.data[base + best * stride])
            best = i;
        dx[base + best * stride] += g;
        return;
      }
      for (int64_t i = 0; i < n; ++i)
        dx[base + i * stride] += r.getFn() == ReduceFn::mean ? g / static_cast<double>(n) : g;
    });
    accumulate(r.getInput(), dx);
    return success();
  }

  LogicalResult softmax(SoftmaxOp s) {
    if (!hasAdjoint(s.getResult()))
      return success();
    const Tensor &y = value(s.getResult());
    std::vector<double> dy = adjointOf(s.getResult()), dx(dy.size(), 0.0);
    Interpreter::forEachLine(y.shape, static_cast<int64_t>(s.getDim()), [&](int64_t base, int64_t stride, int64_t n) {
      double dot = 0, sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        dot += dy[base + i * stride] * y.data[base + i * stride];
        sum += dy[base + i * stride];
      }
      for (int64_t i = 0; i < n; ++i) {
        int64_t at = base + i * stride;
        dx[at] = s.getLog() ? dy[at] - std::exp(y.data[at]) * sum : y.data[at] * (dy[at] - dot);
      }
    });
    accumulate(s.getInput(), dx);
    return success();
  }

  LogicalResult dense(DenseOp d) {
    if (!hasAdjoint(d.getResult()))
      return success();
    const Tensor &x = value(d.getInput()), &w = value(d.getWeight());
    int64_t m = x.shape[0], kd = x.shape[1], n = w.shape[1];
    std::vector<double> dy = adjointOf(d.getResult()), dx(m * kd, 0.0), dw(kd * n, 0.0), db(n, 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double g = dy[i * n + j];
        db[j] += g;
        for (int64_t p = 0; p < kd; ++p) {
          dx[i * kd + p] += g * w.data[p * n + j];
          dw[p * n + j] += g * x.data[i * kd + p];
        }
      }
    accumulate(d.getInput(), dx);
    accumulate(d.getWeight(), dw);
    if (d.getBias())
      accumulate(d.getBias(), db);
    return success();
  }

  LogicalResult rmsnorm(RMSNormOp r) {
    if (!hasAdjoint(r.getResult()))
      return success();
    const Tensor &x = value(r.getInput()), &w = value(r.getWeight());
    int64_t rows = x.shape[0], cols = x.shape[1];
    double eps = r.getEps().convertToDouble();
    std::vector<double> dy = adjointOf(r.getResult()), dx(x.data.size(), 0.0), dw(cols, 0.0);
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
    accumulate(r.getInput(), dx);
    accumulate(r.getWeight(), dw);
    return success();
  }

  /// The values carry the gradient back through renormalisation and the
  /// score function into the logits; the indices carry none.
  LogicalResult topk(TopKOp op) {
    if (!hasAdjoint(op.getValues()))
      return success();
    const Tensor &x = value(op.getLogits()), &idx = value(op.getIndices());
    int64_t rows = x.shape[0], cols = x.shape[1], k = static_cast<int64_t>(op.getK());
    double scale = op.getScaleOrOne();
    std::vector<double> dv = adjointOf(op.getValues()), dx(x.data.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double *xr = &x.data[r * cols];
      std::vector<double> s(xr, xr + cols);
      if (op.getScore() == ScoreFn::softmax) {
        double m = *std::max_element(s.begin(), s.end()), sum = 0;
        for (double &v : s)
          sum += (v = std::exp(v - m));
        for (double &v : s)
          v /= sum;
      } else if (op.getScore() == ScoreFn::sigmoid) {
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
        ds[e] += op.getRenormalize() ? g / total - scale * weighted / (total * total) : g;
      }
      // Through the score function.
      if (op.getScore() == ScoreFn::softmax) {
        double dot = 0;
        for (int64_t c = 0; c < cols; ++c)
          dot += ds[c] * s[c];
        for (int64_t c = 0; c < cols; ++c)
          dx[r * cols + c] = s[c] * (ds[c] - dot);
      } else if (op.getScore() == ScoreFn::sigmoid) {
        for (int64_t c = 0; c < cols; ++c)
          dx[r * cols + c] = ds[c] * s[c] * (1 - s[c]);
      } else {
        for (int64_t c = 0; c < cols; ++c)
          dx[r * cols + c] = ds[c];
      }
    }
    accumulate(op.getLogits(), dx);
    return success();
  }

  /// Each assignment's row is its token's: the token gets the sum.
  LogicalResult dispatch(DispatchOp d) {
    auto it = routedAdjoints.find(d.getRouted());
    if (it == routedAdjoints.end())
      return success();
    const Routed &r = fwd.routed[d.getRouted()];
    std::vector<double> dx(r.tokens * r.hidden, 0.0);
    for (int64_t a = 0; a < r.tokens * r.k; ++a)
      if (r.kept[a])
        for (int64_t c = 0; c < r.hidden; ++c)
          dx[(a / r.k) * r.hidden + c] += it->second[a * r.hidden + c];
    accumulate(d.getInput(), dx);
    return success();
  }

  LogicalResult expertFfn(ExpertFfnOp f) {
    auto it = routedAdjoints.find(f.getResult());
    if (it == routedAdjoints.end())
      return success();
    const std::vector<double> &dyRows = it->second;
    const Routed &in = fwd.routed[f.getRouted()];
    std::vector<const Tensor *> w;
    for (Value v : f.getWeights())
      w.push_back(&value(v));
    std::vector<std::vector<double>> dw;
    for (const Tensor *t : w)
      dw.emplace_back(t->data.size(), 0.0);
    std::vector<double> &dxRows = routedAdjoint(f.getRouted());
    const int64_t d = in.hidden, inner = f.getInnerDim();
    const bool glu = f.getKind() != FfnKind::mlp;
    const Tensor &down = *w.back();
    std::vector<double> &dDown = dw.back();
    for (int64_t a = 0; a < static_cast<int64_t>(in.expert.size()); ++a) {
      if (!in.kept[a])
        continue;
      int64_t e = in.expert[a];
      const double *x = &in.rows[a * d], *dy = &dyRows[a * d];
      // The forward's pre-activations again, then the chain rule.
      std::vector<double> g(inner, 0.0), u(inner, 0.0), h(inner), dh(inner, 0.0);
      for (int64_t j = 0; j < inner; ++j) {
        for (int64_t p = 0; p < d; ++p) {
          g[j] += x[p] * w[0]->data[(e * d + p) * inner + j];
          if (glu)
            u[j] += x[p] * w[1]->data[(e * d + p) * inner + j];
        }
        switch (f.getKind()) {
        case FfnKind::swiglu:
          h[j] = g[j] * sigmoid(g[j]) * u[j];
          break;
        case FfnKind::geglu:
          h[j] = gelu(g[j]) * u[j];
          break;
        case FfnKind::mlp:
          h[j] = activate(*f.getActivation(), g[j]);
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
        switch (f.getKind()) {
        case FfnKind::swiglu:
          dg = dh[j] * u[j] * siluGrad(g[j]);
          du = dh[j] * g[j] * sigmoid(g[j]);
          break;
        case FfnKind::geglu:
          dg = dh[j] * u[j] * geluGrad(g[j]);
          du = dh[j] * gelu(g[j]);
          break;
        case FfnKind::mlp:
          dg = dh[j] * activationGrad(*f.getActivation(), g[j]);
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
    for (auto [v, g] : llvm::zip(f.getWeights(), dw))
      accumulate(v, g);
    return success();
  }

  /// A dropped assignment contributes zero: its weight and row get zero.
  LogicalResult combine(CombineOp c) {
    if (!hasAdjoint(c.getResult()))
      return success();
    const Routed &r = fwd.routed[c.getRouted()];
    const Tensor &w = value(c.getWeights());
    std::vector<double> dout = adjointOf(c.getResult()), dw(w.data.size(), 0.0);
    std::vector<double> &dRows = routedAdjoint(c.getRouted());
    for (int64_t a = 0; a < r.tokens * r.k; ++a) {
      if (!r.kept[a])
        continue;
      const double *g = &dout[(a / r.k) * r.hidden];
      for (int64_t col = 0; col < r.hidden; ++col) {
        dw[a] += g[col] * r.rows[a * r.hidden + col];
        dRows[a * r.hidden + col] += w.data[a] * g[col];
      }
    }
    accumulate(c.getWeights(), dw);
    return success();
  }

  /// Through the probabilities only: the assignment fractions are counts.
  LogicalResult loadBalanceLoss(LoadBalanceLossOp l) {
    if (!hasAdjoint(l.getLoss()))
      return success();
    const Tensor &p = value(l.getProbs()), &idx = value(l.getIndices());
    int64_t tokens = p.shape[0], experts = p.shape[1], k = idx.shape[1];
    double g = adjointOf(l.getLoss())[0];
    std::vector<double> fraction(experts, 0.0), dp(p.data.size(), 0.0);
    for (double e : idx.data)
      fraction[static_cast<int64_t>(e)] += 1.0 / static_cast<double>(tokens * k);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t e = 0; e < experts; ++e)
        dp[t * experts + e] = g * static_cast<double>(experts) * fraction[e] / static_cast<double>(tokens);
    accumulate(l.getProbs(), dp);
    return success();
  }

  LogicalResult zLoss(ZLossOp z) {
    if (!hasAdjoint(z.getLoss()))
      return success();
    const Tensor &x = value(z.getLogits());
    int64_t rows = x.shape[0], cols = x.shape[1];
    double g = adjointOf(z.getLoss())[0];
    std::vector<double> dx(x.data.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double *xr = &x.data[r * cols];
      double m = *std::max_element(xr, xr + cols), s = 0;
      for (int64_t c = 0; c < cols; ++c)
        s += std::exp(xr[c] - m);
      double lse = m + std::log(s);
      for (int64_t c = 0; c < cols; ++c)
        dx[r * cols + c] = g * 2 * lse * std::exp(xr[c] - lse) / static_cast<double>(rows);
    }
    accumulate(z.getLogits(), dx);
    return success();
  }

  Interpreter &fwd;
  std::string &error;
  llvm::DenseMap<Value, std::vector<double>> adjoints;
  llvm::DenseMap<Value, std::vector<double>> routedAdjoints;
};

} // namespace

FailureOr<std::vector<Tensor>> reference::gradient(func::FuncOp fn, ArrayRef<Tensor> args, ArrayRef<Tensor> cotangents,
                                                   std::vector<Tensor> *outputs, std::string &error) {
  Interpreter forward(error, /*exact=*/true);
  FailureOr<std::vector<Tensor>> results = forward.run(fn, args);
  if (failed(results))
    return failure();
  if (outputs)
    *outputs = *results;
  return Backward(forward, error).run(fn, cotangents);
}
