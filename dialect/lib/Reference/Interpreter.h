//===- Interpreter.h - the reference evaluator's interpreter ----*- C++ -*-===//
//
// The float64 interpreter behind reference::evaluate and reference::gradient
// (private to the library): each op computed straight from its documented
// semantics, every value kept for a backward pass.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_REFERENCE_INTERPRETER_H
#define MOE_REFERENCE_INTERPRETER_H

#include "moe/Dialect/MoE/Reference/Evaluator.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoETypes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe::reference::detail {

using namespace mlir;
using reference::Tensor;

/// The rows of a routed value: every (token, slot) assignment, whether it was
/// kept under the capacity, and the row it currently carries.
struct Routed {
  int64_t tokens = 0, hidden = 0, experts = 0, k = 0;
  std::vector<int64_t> expert; ///< [tokens * k], the chosen expert of each assignment
  std::vector<char> kept;      ///< [tokens * k]
  std::vector<double> rows;    ///< [tokens * k, hidden]
};

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

inline double applyUnary(UnaryFn fn, double x) {
  switch (fn) {
  case UnaryFn::neg:
    return -x;
  case UnaryFn::exp:
    return std::exp(x);
  case UnaryFn::log:
    return std::log(x);
  case UnaryFn::sqrt:
    return std::sqrt(x);
  case UnaryFn::tanh:
    return std::tanh(x);
  case UnaryFn::abs:
    return std::fabs(x);
  case UnaryFn::sigmoid:
    return sigmoid(x);
  case UnaryFn::silu:
    return x * sigmoid(x);
  case UnaryFn::gelu:
    return gelu(x);
  case UnaryFn::relu:
    return x > 0 ? x : 0.0;
  }
  return x;
}

inline double applyBinary(BinaryFn fn, double a, double b) {
  switch (fn) {
  case BinaryFn::add:
    return a + b;
  case BinaryFn::sub:
    return a - b;
  case BinaryFn::mul:
    return a * b;
  case BinaryFn::div:
    return a / b;
  case BinaryFn::pow:
    return std::pow(a, b);
  case BinaryFn::max:
    return std::max(a, b);
  case BinaryFn::min:
    return std::min(a, b);
  }
  return a;
}

inline double activate(Activation act, double x) {
  switch (act) {
  case Activation::relu:
    return x > 0 ? x : 0.0;
  case Activation::gelu:
    return gelu(x);
  case Activation::silu:
    return x * sigmoid(x);
  }
  return x;
}

inline Type elementTypeOf(Value v) { return cast<ShapedType>(v.getType()).getElementType(); }

/// Indices of the k largest values of `row`, descending, ties to the lower index.
inline std::vector<int64_t> topIndices(const std::vector<double> &row, int64_t k) {
  std::vector<int64_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
  order.resize(k);
  return order;
}

/// The element of `o` that broadcasts to multi-index `index` of the result
/// (a dimension of size 1 stays at 0; a 0-d tensor is its one element).
inline int64_t broadcastOffset(const Tensor &o, const std::vector<int64_t> &index) {
  int64_t off = 0;
  for (size_t d = 0; d < o.shape.size(); ++d)
    off = off * o.shape[d] + (o.shape[d] == 1 ? 0 : index[d]);
  return off;
}

class Interpreter;
/// The backward ops (MoEGradOps.td), by the rules reference::gradient uses
/// (Vjp.cpp); any other op is refused as unsupported.
LogicalResult evaluateGradOp(Interpreter &interpreter, Operation &op);

class Interpreter {
public:
  /// `exact`: no rounding to the storage types (float64 throughout), the
  /// function that gradients and finite differences are taken of.
  explicit Interpreter(std::string &error, bool exact = false) : error(error), exact(exact) {}

  FailureOr<std::vector<Tensor>> run(func::FuncOp fn, ArrayRef<Tensor> args) {
    Block &body = fn.getBody().front();
    if (args.size() != body.getNumArguments())
      return fail(fn, "expects " + std::to_string(body.getNumArguments()) + " arguments, got " +
                          std::to_string(args.size()));
    for (auto [arg, value] : llvm::zip(body.getArguments(), args)) {
      auto type = cast<RankedTensorType>(arg.getType());
      if (static_cast<int64_t>(value.shape.size()) != type.getRank() ||
          static_cast<int64_t>(value.data.size()) != value.numElements())
        return fail(fn, "argument #" + std::to_string(arg.getArgNumber()) + " has the wrong rank or size");
      for (auto [want, got] : llvm::zip(type.getShape(), value.shape))
        if (!ShapedType::isDynamic(want) && want != got)
          return fail(fn, "argument #" + std::to_string(arg.getArgNumber()) + " has the wrong shape");
      tensors[arg] = value;
    }
    for (Operation &op : body.without_terminator())
      if (failed(step(op)))
        return failure();
    std::vector<Tensor> results;
    for (Value v : body.getTerminator()->getOperands())
      results.push_back(tensors.lookup(v));
    return results;
  }

  /// Every value of the last run, for the backward.
  llvm::DenseMap<Value, Tensor> tensors;
  llvm::DenseMap<Value, Routed> routed;

  LogicalResult fail(Operation *op, const std::string &message) {
    error = op->getName().getStringRef().str() + ": " + message;
    return failure();
  }

  const Tensor &in(Value v) { return tensors[v]; }

  void set(Value v, Tensor t) {
    Type elt = elementTypeOf(v);
    if (!exact)
      for (double &x : t.data)
        x = reference::roundTo(elt, x);
    tensors[v] = std::move(t);
  }

private:
  LogicalResult step(Operation &op) {
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](arith::ConstantOp c) {
          Tensor t;
          if (auto dense = dyn_cast<DenseElementsAttr>(c.getValue())) {
            t.shape.assign(dense.getType().getShape().begin(), dense.getType().getShape().end());
            if (dense.getElementType().isIntOrIndex())
              for (const APInt &v : dense.getValues<APInt>())
                t.data.push_back(static_cast<double>(v.getSExtValue()));
            else
              for (const APFloat &v : dense.getValues<APFloat>())
                t.data.push_back(v.convertToDouble());
          } else if (auto i = dyn_cast<IntegerAttr>(c.getValue())) {
            t.data = {static_cast<double>(i.getInt())};
          } else if (auto f = dyn_cast<FloatAttr>(c.getValue())) {
            t.data = {f.getValueAsDouble()};
          } else {
            return fail(&op, "unsupported constant");
          }
          tensors[c.getResult()] = t;
          return success();
        })
        .Case<arith::ExtFOp, arith::TruncFOp>([&](auto cast) {
          set(cast.getResult(), in(cast.getIn()));
          return success();
        })
        .Case([&](arith::AddIOp add) {
          Tensor t = in(add.getLhs());
          const Tensor &r = in(add.getRhs());
          for (size_t i = 0; i < t.data.size(); ++i)
            t.data[i] += r.data[i];
          tensors[add.getResult()] = t;
          return success();
        })
        .Case([&](tensor::DimOp dim) {
          auto index = getConstantIntValue(dim.getIndex());
          if (!index)
            return fail(&op, "dynamic dimension index");
          tensors[dim.getResult()] = Tensor{{}, {static_cast<double>(in(dim.getSource()).shape[*index])}};
          return success();
        })
        .Case([&](tensor::SplatOp splat) {
          auto type = splat.getType();
          Tensor t;
          auto dynamic = splat.getDynamicSizes().begin();
          for (int64_t d : type.getShape())
            t.shape.push_back(ShapedType::isDynamic(d) ? static_cast<int64_t>(in(*dynamic++).data[0]) : d);
          t.data.assign(t.numElements(), in(splat.getInput()).data[0]);
          tensors[splat.getResult()] = t;
          return success();
        })
        .Case([&](tensor::ExpandShapeOp expand) {
          Tensor t = in(expand.getSrc());
          auto type = expand.getResultType();
          std::vector<int64_t> shape;
          for (auto [group, reassociation] : llvm::enumerate(expand.getReassociationIndices())) {
            int64_t staticProduct = 1, dynamicAt = -1;
            for (int64_t d : reassociation) {
              if (ShapedType::isDynamic(type.getDimSize(d)))
                dynamicAt = d;
              else
                staticProduct *= type.getDimSize(d);
            }
            for (int64_t d : reassociation)
              shape.push_back(d == dynamicAt ? t.shape[group] / staticProduct : type.getDimSize(d));
          }
          t.shape = shape;
          tensors[expand.getResult()] = t;
          return success();
        })
        .Case([&](tensor::CollapseShapeOp collapse) {
          Tensor t = in(collapse.getSrc());
          std::vector<int64_t> shape;
          for (const ReassociationIndices &group : collapse.getReassociationIndices()) {
            int64_t size = 1;
            for (int64_t d : group)
              size *= t.shape[d];
            shape.push_back(size);
          }
          t.shape = shape;
          tensors[collapse.getResult()] = t;
          return success();
        })
        .Case([&](UnaryOp u) {
          Tensor t = in(u.getInput());
          for (double &x : t.data)
            x = applyUnary(u.getFn(), x);
          set(u.getResult(), t);
          return success();
        })
        .Case([&](BinaryOp b) { return binary(b); })
        .Case([&](ReduceOp r) { return reduce(r); })
        .Case([&](SoftmaxOp s) { return softmax(s); })
        .Case([&](DenseOp d) { return dense(d); })
        .Case([&](RMSNormOp r) { return rmsnorm(r); })
        .Case([&](TopKOp t) { return topk(t); })
        .Case([&](GroupTopKOp g) { return groupTopk(g); })
        .Case([&](GatherOp g) {
          const Tensor &x = in(g.getInput()), &idx = in(g.getIndices());
          Tensor t{{idx.shape[0], idx.shape[1]}, {}};
          for (int64_t r = 0; r < idx.shape[0]; ++r)
            for (int64_t j = 0; j < idx.shape[1]; ++j)
              t.data.push_back(x.data[r * x.shape[1] + static_cast<int64_t>(idx.data[r * idx.shape[1] + j])]);
          set(g.getResult(), t);
          return success();
        })
        .Case([&](DispatchOp d) { return dispatch(d); })
        .Case([&](ExpertFfnOp f) { return expertFfn(f); })
        .Case([&](CombineOp c) { return combine(c); })
        .Case([&](LoadBalanceLossOp l) { return loadBalanceLoss(l); })
        .Case([&](ZLossOp z) {
          const Tensor &x = in(z.getLogits());
          int64_t rows = x.shape[0], cols = x.shape[1];
          double total = 0;
          for (int64_t r = 0; r < rows; ++r) {
            double m = *std::max_element(&x.data[r * cols], &x.data[r * cols] + cols), s = 0;
            for (int64_t c = 0; c < cols; ++c)
              s += std::exp(x.data[r * cols + c] - m);
            double lse = m + std::log(s);
            total += lse * lse;
          }
          set(z.getLoss(), Tensor{{}, {total / static_cast<double>(rows)}});
          return success();
        })
        // The backward ops, or the refusal of an op neither knows.
        .Default([&](Operation *other) { return evaluateGradOp(*this, *other); });
  }

  LogicalResult binary(BinaryOp b) {
    const Tensor &l = in(b.getLhs()), &r = in(b.getRhs());
    Tensor t;
    size_t rank = std::max(l.shape.size(), r.shape.size());
    for (size_t d = 0; d < rank; ++d) {
      int64_t ls = l.shape.empty() ? 1 : l.shape[d], rs = r.shape.empty() ? 1 : r.shape[d];
      t.shape.push_back(std::max(ls, rs));
    }
    t.data.resize(t.numElements());
    std::vector<int64_t> index(rank, 0);
    auto offset = [&](const Tensor &o) { return broadcastOffset(o, index); };
    for (int64_t i = 0; i < t.numElements(); ++i) {
      int64_t rem = i;
      for (size_t d = rank; d-- > 0;) {
        index[d] = rem % t.shape[d];
        rem /= t.shape[d];
      }
      t.data[i] = applyBinary(b.getFn(), l.data[offset(l)], r.data[offset(r)]);
    }
    set(b.getResult(), t);
    return success();
  }

public:
  /// Iterates over the 1-d lines of `t` along `dim`: fn(base offset, stride, length).
  template <typename Fn> static void forEachLine(const std::vector<int64_t> &shape, int64_t dim, Fn fn) {
    int64_t inner = 1, outer = 1;
    for (size_t d = dim + 1; d < shape.size(); ++d)
      inner *= shape[d];
    for (int64_t d = 0; d < dim; ++d)
      outer *= shape[d];
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i)
        fn(o * shape[dim] * inner + i, inner, shape[dim]);
  }

private:
  LogicalResult reduce(ReduceOp r) {
    const Tensor &x = in(r.getInput());
    int64_t dim = static_cast<int64_t>(r.getDim());
    Tensor t{x.shape, {}};
    t.shape[dim] = 1;
    t.data.resize(t.numElements());
    int64_t line = 0;
    forEachLine(x.shape, dim, [&](int64_t base, int64_t stride, int64_t n) {
      double acc = r.getFn() == ReduceFn::max ? -INFINITY : 0.0;
      for (int64_t i = 0; i < n; ++i) {
        double v = x.data[base + i * stride];
        acc = r.getFn() == ReduceFn::max ? std::max(acc, v) : acc + v;
      }
      t.data[line++] = r.getFn() == ReduceFn::mean ? acc / static_cast<double>(n) : acc;
    });
    // forEachLine visits lines in the row-major order of the reduced shape.
    set(r.getResult(), t);
    return success();
  }

  LogicalResult softmax(SoftmaxOp s) {
    Tensor t = in(s.getInput());
    forEachLine(t.shape, static_cast<int64_t>(s.getDim()), [&](int64_t base, int64_t stride, int64_t n) {
      double m = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i)
        m = std::max(m, t.data[base + i * stride]);
      for (int64_t i = 0; i < n; ++i)
        sum += std::exp(t.data[base + i * stride] - m);
      for (int64_t i = 0; i < n; ++i) {
        double &v = t.data[base + i * stride];
        v = s.getLog() ? v - m - std::log(sum) : std::exp(v - m) / sum;
      }
    });
    set(s.getResult(), t);
    return success();
  }

  LogicalResult dense(DenseOp d) {
    const Tensor &x = in(d.getInput()), &w = in(d.getWeight());
    int64_t m = x.shape[0], kd = x.shape[1], n = w.shape[1];
    Tensor t{{m, n}, std::vector<double>(m * n, 0.0)};
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = d.getBias() ? in(d.getBias()).data[j] : 0.0;
        for (int64_t p = 0; p < kd; ++p)
          acc += x.data[i * kd + p] * w.data[p * n + j];
        t.data[i * n + j] = acc;
      }
    set(d.getResult(), t);
    return success();
  }

  LogicalResult rmsnorm(RMSNormOp r) {
    Tensor t = in(r.getInput());
    const Tensor &w = in(r.getWeight());
    int64_t rows = t.shape[0], cols = t.shape[1];
    double eps = r.getEps().convertToDouble();
    for (int64_t i = 0; i < rows; ++i) {
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c)
        ss += t.data[i * cols + c] * t.data[i * cols + c];
      double scale = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
      for (int64_t c = 0; c < cols; ++c)
        t.data[i * cols + c] *= scale * w.data[c];
    }
    set(r.getResult(), t);
    return success();
  }

  LogicalResult topk(TopKOp op) {
    const Tensor &x = in(op.getLogits());
    int64_t rows = x.shape[0], cols = x.shape[1], k = static_cast<int64_t>(op.getK());
    Tensor values{{rows, k}, {}}, indices{{rows, k}, {}};
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<double> s(x.data.begin() + r * cols, x.data.begin() + (r + 1) * cols);
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
      std::vector<int64_t> top = topIndices(s, k);
      double total = 0;
      for (int64_t e : top)
        total += s[e];
      for (int64_t e : top) {
        double v = op.getRenormalize() ? s[e] / total : s[e];
        values.data.push_back(v * op.getScaleOrOne());
        indices.data.push_back(static_cast<double>(e));
      }
    }
    set(op.getValues(), values);
    tensors[op.getIndices()] = indices;
    return success();
  }

  LogicalResult groupTopk(GroupTopKOp op) {
    const Tensor &x = in(op.getScores());
    int64_t rows = x.shape[0], experts = x.shape[1], k = static_cast<int64_t>(op.getK());
    int64_t groups = static_cast<int64_t>(op.getGroups()), size = experts / groups;
    Tensor indices{{rows, k}, {}};
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<double> s(x.data.begin() + r * experts, x.data.begin() + (r + 1) * experts);
      std::vector<double> groupScore(groups);
      for (int64_t g = 0; g < groups; ++g) {
        std::vector<double> members(s.begin() + g * size, s.begin() + (g + 1) * size);
        std::vector<int64_t> best = topIndices(members, std::min<int64_t>(2, size));
        for (int64_t b : best)
          groupScore[g] += members[b];
      }
      std::vector<int64_t> keptGroups = topIndices(groupScore, static_cast<int64_t>(op.getTopGroups()));
      std::vector<double> masked(experts, -INFINITY);
      for (int64_t g : keptGroups)
        for (int64_t e = g * size; e < (g + 1) * size; ++e)
          masked[e] = s[e];
      for (int64_t e : topIndices(masked, k))
        indices.data.push_back(static_cast<double>(e));
    }
    tensors[op.getIndices()] = indices;
    return success();
  }

  LogicalResult dispatch(DispatchOp d) {
    const Tensor &x = in(d.getInput()), &idx = in(d.getIndices());
    RoutedType type = d.getRouted().getType();
    Routed r;
    r.tokens = x.shape[0];
    r.hidden = x.shape[1];
    r.experts = type.getExperts();
    r.k = type.getK();
    int64_t capacity = INT64_MAX;
    if (FloatAttr c = type.getCapacity())
      capacity = static_cast<int64_t>(
          std::ceil(c.getValueAsDouble() * static_cast<double>(r.tokens * r.k) / static_cast<double>(r.experts)));
    std::vector<int64_t> load(r.experts, 0);
    for (int64_t a = 0; a < r.tokens * r.k; ++a) {
      int64_t e = static_cast<int64_t>(idx.data[a]);
      if (e < 0 || e >= r.experts)
        return fail(d, "expert index " + std::to_string(e) + " out of range");
      r.expert.push_back(e);
      r.kept.push_back(load[e]++ < capacity);
      int64_t t = a / r.k;
      r.rows.insert(r.rows.end(), x.data.begin() + t * r.hidden, x.data.begin() + (t + 1) * r.hidden);
    }
    routed[d.getRouted()] = std::move(r);
    return success();
  }

  LogicalResult expertFfn(ExpertFfnOp f) {
    Routed r = routed[f.getRouted()];
    std::vector<const Tensor *> w;
    for (Value v : f.getWeights())
      w.push_back(&in(v));
    int64_t d = r.hidden, inner = f.getInnerDim(), upWidth = f.getUpWidth();
    Type elt = cast<RoutedType>(f.getResult().getType()).getElementType();
    // The kept up products ([tokens, k, upWidth]; a dropped row stays zero).
    Tensor up{{r.tokens, r.k, upWidth}, std::vector<double>(r.expert.size() * upWidth, 0.0)};
    auto rounded = [&](double v) { return exact ? v : reference::roundTo(elt, v); };
    for (int64_t a = 0; a < static_cast<int64_t>(r.expert.size()); ++a) {
      if (!r.kept[a])
        continue;
      int64_t e = r.expert[a];
      const double *x = &r.rows[a * d];
      std::vector<double> h(inner);
      for (int64_t j = 0; j < inner; ++j) {
        double g = 0, u = 0;
        for (int64_t p = 0; p < d; ++p) {
          g += x[p] * w[0]->data[(e * d + p) * inner + j];
          if (f.getKind() != FfnKind::mlp)
            u += x[p] * w[1]->data[(e * d + p) * inner + j];
        }
        up.data[a * upWidth + j] = rounded(g);
        if (f.getKind() != FfnKind::mlp)
          up.data[a * upWidth + inner + j] = rounded(u);
        switch (f.getKind()) {
        case FfnKind::swiglu:
          h[j] = g * sigmoid(g) * u;
          break;
        case FfnKind::geglu:
          h[j] = gelu(g) * u;
          break;
        case FfnKind::mlp:
          h[j] = activate(*f.getActivation(), g);
          break;
        }
      }
      const Tensor &down = *w.back();
      std::vector<double> y(d, 0.0);
      for (int64_t c = 0; c < d; ++c) {
        for (int64_t j = 0; j < inner; ++j)
          y[c] += h[j] * down.data[(e * inner + j) * d + c];
        r.rows[a * d + c] = exact ? y[c] : reference::roundTo(elt, y[c]);
      }
    }
    if (f.getUp())
      set(f.getUp(), up);
    routed[f.getResult()] = std::move(r);
    return success();
  }

  LogicalResult combine(CombineOp c) {
    const Routed &r = routed[c.getRouted()];
    const Tensor &w = in(c.getWeights());
    Tensor t{{r.tokens, r.hidden}, std::vector<double>(r.tokens * r.hidden, 0.0)};
    for (int64_t tok = 0; tok < r.tokens; ++tok)
      for (int64_t j = 0; j < r.k; ++j) {
        int64_t a = tok * r.k + j;
        if (!r.kept[a])
          continue;
        for (int64_t col = 0; col < r.hidden; ++col)
          t.data[tok * r.hidden + col] += w.data[a] * r.rows[a * r.hidden + col];
      }
    set(c.getResult(), t);
    return success();
  }

  LogicalResult loadBalanceLoss(LoadBalanceLossOp l) {
    const Tensor &p = in(l.getProbs()), &idx = in(l.getIndices());
    int64_t tokens = p.shape[0], experts = p.shape[1], k = idx.shape[1];
    std::vector<double> fraction(experts, 0.0), meanProb(experts, 0.0);
    for (double e : idx.data)
      fraction[static_cast<int64_t>(e)] += 1.0 / static_cast<double>(tokens * k);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t e = 0; e < experts; ++e)
        meanProb[e] += p.data[t * experts + e] / static_cast<double>(tokens);
    double loss = 0;
    for (int64_t e = 0; e < experts; ++e)
      loss += fraction[e] * meanProb[e];
    set(l.getLoss(), Tensor{{}, {static_cast<double>(experts) * loss}});
    return success();
  }

  std::string &error;
  bool exact;
};

} // namespace moe::reference::detail

#endif // MOE_REFERENCE_INTERPRETER_H
