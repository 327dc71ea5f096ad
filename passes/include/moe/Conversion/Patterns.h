//===- Patterns.h - the moe conversions' pattern sets -----------*- C++ -*-===//
//
// Each conversion pass applies one of these pattern sets with a
// ConversionTarget that makes its ops illegal; a new op's lowering is one
// pattern added to its family's set (docs/adding-a-pass.md).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_PATTERNS_H
#define MOE_CONVERSION_PATTERNS_H

#include "moe/Conversion/GPUKernelOptions.h"
#include "moe/Support/MLIR.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace moe {

/// Matrix products, routing, losses and dispatch -> experts -> combine chains
/// as calls of the runtime's CPU kernels (convert-moe-to-cpu-kernels).
void populateMoEToCPUKernelsPatterns(RewritePatternSet &patterns);

/// The backward's ops (moe-differentiate) other than the elementwise ones as
/// calls of the runtime's CPU backward kernels; part of
/// convert-moe-to-cpu-kernels.
void populateMoEGradientsToCPUKernelsPatterns(RewritePatternSet &patterns);

/// The same ops as launches of GPU kernels generated for the layer into
/// `gpu.module @moe_kernels` (convert-moe-to-gpu-kernels), with the pass's
/// `options` (copied into the patterns).
void populateMoEToGPUKernelsPatterns(RewritePatternSet &patterns, const GPUKernelOptions &options);

/// Elementwise ops, reductions, softmax and rmsnorm as linalg.generic on
/// tensors (convert-moe-to-linalg).
void populateMoEToLinalgPatterns(RewritePatternSet &patterns);

/// The cotangents of the elementwise ops, reductions and softmax as
/// linalg.generic on tensors; part of convert-moe-to-linalg.
void populateMoEGradientsToLinalgPatterns(RewritePatternSet &patterns);

/// Makes every op that a pattern of `patterns` rewrites illegal in `target`,
/// everything else legal: a conversion's ops are its patterns' roots, so a
/// new op's lowering is its pattern alone.
inline void addPatternRootsIllegal(ConversionTarget &target, RewritePatternSet &patterns) {
  for (const std::unique_ptr<RewritePattern> &pattern : patterns.getNativePatterns())
    if (std::optional<OperationName> root = pattern->getRootKind())
      target.addIllegalOp(*root);
  target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
}

} // namespace moe

#endif // MOE_CONVERSION_PATTERNS_H
