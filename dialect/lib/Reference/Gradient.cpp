//===- Gradient.cpp - reverse mode of the float64 reference evaluator -----===//
//
// reference::gradient: the exact forward (every value kept), then the ops in
// reverse, each adding its inputs' adjoints from its results' by its rule in
// Vjp.cpp (written from the op's documented semantics, as the forward is).
// Checked against central finite differences of evaluateExact
// (test/unit/GradientTest.cpp), so it is the oracle the compiled backward is
// tested against.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/Reference/Evaluator.h"

#include "Vjp.h"

using namespace mlir;
using namespace moe;
using namespace moe::reference::detail;
using reference::Tensor;

namespace {

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
    for (BlockArgument arg : body.getArguments())
      grads.push_back(Tensor{fwd.tensors[arg].shape, adjointOf(arg)});
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
  bool has(Value v) const { return adjoints.count(v) != 0 || routedAdjoints.count(v) != 0; }

  void accumulate(Value v, const std::vector<double> &g) {
    auto [it, inserted] = adjoints.try_emplace(v, g);
    if (!inserted)
      for (size_t i = 0; i < g.size(); ++i)
        it->second[i] += g[i];
  }
  void accumulateRows(Value v, const std::vector<double> &g) {
    auto [it, inserted] = routedAdjoints.try_emplace(v, g);
    if (!inserted)
      for (size_t i = 0; i < g.size(); ++i)
        it->second[i] += g[i];
  }

  LogicalResult step(Operation &op) {
    bool any = false;
    for (Value r : op.getResults())
      any = any || has(r);
    if (!any)
      return success();
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        // No gradient: constants, sizes, integer arithmetic, the routing choices.
        .Case<arith::ConstantOp, arith::AddIOp, tensor::DimOp, tensor::SplatOp, GroupTopKOp>(
            [](Operation *) { return success(); })
        .Case<arith::ExtFOp, arith::TruncFOp>([&](auto cast) {
          accumulate(cast.getIn(), adjointOf(cast.getResult()));
          return success();
        })
        .Case<tensor::ExpandShapeOp, tensor::CollapseShapeOp>([&](auto reshape) {
          accumulate(reshape.getSrc(), adjointOf(reshape.getResult()));
          return success();
        })
        .Case([&](UnaryOp u) {
          accumulate(u.getInput(), vjp::unary(u.getFn(), value(u.getInput()), adjointOf(u.getResult())));
          return success();
        })
        .Case([&](BinaryOp b) {
          auto [dl, dr] = vjp::binary(b.getFn(), value(b.getLhs()), value(b.getRhs()), value(b.getResult()).shape,
                                      adjointOf(b.getResult()));
          accumulate(b.getLhs(), dl);
          accumulate(b.getRhs(), dr);
          return success();
        })
        .Case([&](ReduceOp r) {
          accumulate(r.getInput(), vjp::reduce(r.getFn(), value(r.getInput()), static_cast<int64_t>(r.getDim()),
                                               adjointOf(r.getResult())));
          return success();
        })
        .Case([&](SoftmaxOp s) {
          accumulate(s.getInput(), vjp::softmax(value(s.getResult()), static_cast<int64_t>(s.getDim()), s.getLog(),
                                                adjointOf(s.getResult())));
          return success();
        })
        .Case([&](DenseOp d) {
          std::vector<double> dy = adjointOf(d.getResult());
          auto [dx, dw] = vjp::dense(value(d.getInput()), value(d.getWeight()), dy);
          accumulate(d.getInput(), dx);
          accumulate(d.getWeight(), dw);
          if (d.getBias()) {
            int64_t n = value(d.getWeight()).shape[1];
            std::vector<double> db(n, 0.0);
            for (size_t i = 0; i < dy.size(); ++i)
              db[i % n] += dy[i];
            accumulate(d.getBias(), db);
          }
          return success();
        })
        .Case([&](RMSNormOp r) {
          auto [dx, dw] = vjp::rmsnorm(value(r.getInput()), value(r.getWeight()), r.getEps().convertToDouble(),
                                       adjointOf(r.getResult()));
          accumulate(r.getInput(), dx);
          accumulate(r.getWeight(), dw);
          return success();
        })
        .Case([&](TopKOp t) {
          std::optional<ScoreFn> score;
          if (auto s = t.getScore())
            score = *s;
          accumulate(t.getLogits(), vjp::topk(value(t.getLogits()), value(t.getIndices()), score, t.getRenormalize(),
                                              t.getScaleOrOne(), adjointOf(t.getValues())));
          return success();
        })
        .Case([&](GatherOp g) {
          accumulate(g.getInput(),
                     vjp::gather(value(g.getIndices()), value(g.getInput()).shape[1], adjointOf(g.getResult())));
          return success();
        })
        .Case([&](DispatchOp d) {
          accumulate(d.getInput(), vjp::dispatch(fwd.routed[d.getRouted()], routedAdjoints[d.getRouted()]));
          return success();
        })
        .Case([&](ExpertFfnOp f) {
          std::vector<const Tensor *> w;
          for (Value v : f.getWeights())
            w.push_back(&value(v));
          std::optional<Activation> act;
          if (auto a = f.getActivation())
            act = *a;
          auto [dRows, dw] = vjp::expertFfn(f.getKind(), act, fwd.routed[f.getRouted()], w, f.getInnerDim(),
                                            routedAdjoints[f.getResult()]);
          accumulateRows(f.getRouted(), dRows);
          for (auto [v, g] : llvm::zip(f.getWeights(), dw))
            accumulate(v, g);
          return success();
        })
        .Case([&](CombineOp c) {
          auto [dRows, dw] = vjp::combine(fwd.routed[c.getRouted()], value(c.getWeights()), adjointOf(c.getResult()));
          accumulateRows(c.getRouted(), dRows);
          accumulate(c.getWeights(), dw);
          return success();
        })
        .Case([&](LoadBalanceLossOp l) {
          accumulate(l.getProbs(),
                     vjp::loadBalanceLoss(value(l.getProbs()), value(l.getIndices()), adjointOf(l.getLoss())[0]));
          return success();
        })
        .Case([&](ZLossOp z) {
          accumulate(z.getLogits(), vjp::zLoss(value(z.getLogits()), adjointOf(z.getLoss())[0]));
          return success();
        })
        .Default([&](Operation *other) { return fail(other, "has no gradient rule in the reference evaluator"); });
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
