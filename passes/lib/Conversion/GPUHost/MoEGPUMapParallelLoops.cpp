//===- MoEGPUMapParallelLoops.cpp - moe-gpu-map-parallel-loops --*- C++ -*-===//
//
// Each outermost scf.parallel of a host function becomes a gpu.launch with
// one thread per iteration (linearised, 256 threads per block). Scalar glue
// (a 0-d linalg op lowers to loads, arithmetic and a store with no loop, e.g.
// `0.01 * load_balance_loss(p, e)`) becomes a launch of one thread.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Support/MLIR.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-gpu-map-parallel-loops"

namespace moe {
#define GEN_PASS_DEF_MOEGPUMAPPARALLELLOOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe

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
    LLVM_DEBUG(llvm::dbgs() << "mapping " << loops.size() << " parallel loops to launches\n");
    for (scf::ParallelOp loop : loops)
      map(loop);
    SmallVector<memref::StoreOp> scalarStores;
    getOperation().walk([&](memref::StoreOp store) {
      if (!store->getParentOfType<gpu::LaunchOp>() && !store->getParentOfType<scf::ParallelOp>())
        scalarStores.push_back(store);
    });
    LLVM_DEBUG(llvm::dbgs() << "launching " << scalarStores.size() << " scalar stores on one thread\n");
    for (memref::StoreOp store : scalarStores)
      launchOneThread(store);
  }

  /// Moves a host store, with the loads and pure arithmetic that compute its
  /// value in the same block, into a one-thread gpu.launch placed where the
  /// store was: stream order keeps it after the kernels writing what it
  /// loads. Ops still used on the host stay there (they are cloned).
  void launchOneThread(memref::StoreOp store) {
    Block *block = store->getBlock();
    SetVector<Operation *> slice;
    SmallVector<Value> worklist(store->getOperands().begin(), store->getOperands().end());
    while (!worklist.empty()) {
      Operation *def = worklist.pop_back_val().getDefiningOp();
      if (!def || def->getBlock() != block || slice.contains(def) || def->getNumRegions() != 0)
        continue;
      bool movable = isa<memref::LoadOp>(def) ||
                     (isPure(def) && !isa<memref::DimOp, arith::ConstantOp>(def) &&
                      llvm::all_of(def->getResultTypes(), [](Type t) { return t.isIntOrIndexOrFloat(); }));
      if (!movable)
        continue;
      slice.insert(def);
      worklist.append(def->getOperands().begin(), def->getOperands().end());
    }
    OpBuilder b(store);
    Location loc = store.getLoc();
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
    b.setInsertionPointToStart(&launch.getBody().front());
    IRMapping mapping;
    SmallVector<Operation *> ordered(slice.begin(), slice.end());
    llvm::sort(ordered, [](Operation *x, Operation *y) { return x->isBeforeInBlock(y); });
    for (Operation *op : ordered)
      b.clone(*op, mapping);
    b.clone(*store, mapping);
    gpu::TerminatorOp::create(b, loc);
    store.erase();
    for (auto it = ordered.rbegin(); it != ordered.rend(); ++it)
      if ((*it)->use_empty())
        (*it)->erase();
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
    Value linear = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, launch.getBlockIds().x, c(kThreads)),
                                         launch.getThreadIds().x);
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
      ivs[d] =
          arith::AddIOp::create(b, loc, loop.getLowerBound()[d], arith::MulIOp::create(b, loc, i, loop.getStep()[d]));
    }
    for (auto [iv, value] : llvm::zip(loop.getInductionVars(), ivs))
      mapping.map(iv, value);
    for (Operation &op : loop.getBody()->without_terminator())
      b.clone(op, mapping);
    loop.erase();
  }
};

} // namespace
