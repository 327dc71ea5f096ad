//===- MoEGPUMapParallelLoops.cpp - moe-gpu-map-parallel-loops --*- C++ -*-===//
//
// Each outermost scf.parallel of a host function becomes a gpu.launch with
// one thread per iteration (linearised, 256 threads per block).
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMAPPARALLELLOOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr int64_t kThreads = 256;

struct MoEGPUMapParallelLoops : moe::impl::MoEGPUMapParallelLoopsBase<MoEGPUMapParallelLoops> {
  void runOnOperation() override {
    SmallVector<scf::ParallelOp> loops;
    getOperation().walk([&](scf::ParallelOp loop) {
      if (!loop->getParentOfType<scf::ParallelOp>() && !loop->getParentOfType<gpu::LaunchOp>() &&
          loop.getNumReductions() == 0)
        loops.push_back(loop);
    });
    for (scf::ParallelOp loop : loops)
      map(loop);
  }

  void map(scf::ParallelOp loop) {
    OpBuilder b(loop);
    Location loc = loop.getLoc();
    auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    // Iterations per dimension and in all.
    SmallVector<Value> counts;
    Value total = c(1);
    for (auto [lb, ub, step] : llvm::zip(loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
      Value span = arith::SubIOp::create(b, loc, ub, lb);
      Value n = arith::CeilDivUIOp::create(b, loc, span, step);
      counts.push_back(n);
      total = arith::MulIOp::create(b, loc, total, n);
    }
    Value blocks = arith::CeilDivUIOp::create(b, loc, total, c(kThreads));
    Value one = c(1);
    auto launch = gpu::LaunchOp::create(b, loc, blocks, one, one, c(kThreads), one, one);
    b.setInsertionPointToStart(&launch.getBody().front());
    Value linear = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, launch.getBlockIds().x, c(kThreads)), launch.getThreadIds().x);
    Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, total);
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    gpu::TerminatorOp::create(b, loc);

    // The iteration: the last dimension varies fastest.
    b.setInsertionPoint(guard.thenBlock()->getTerminator());
    IRMapping mapping;
    Value rest = linear;
    SmallVector<Value> ivs(counts.size());
    for (size_t d = counts.size(); d-- > 0;) {
      Value i = d == 0 ? rest : arith::RemUIOp::create(b, loc, rest, counts[d]).getResult();
      if (d > 0)
        rest = arith::DivUIOp::create(b, loc, rest, counts[d]);
      ivs[d] = arith::AddIOp::create(b, loc, loop.getLowerBound()[d],
                                     arith::MulIOp::create(b, loc, i, loop.getStep()[d]));
    }
    for (auto [iv, value] : llvm::zip(loop.getInductionVars(), ivs))
      mapping.map(iv, value);
    for (Operation &op : loop.getBody()->without_terminator())
      b.clone(op, mapping);
    loop.erase();
  }
};

} // namespace
