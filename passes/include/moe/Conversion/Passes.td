//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg", "::mlir::ModuleOp"> {
  let summary = "lower elementwise moe ops, reductions, softmax and rmsnorm to linalg";
  let description = [{
    Rewrites the moe ops that are loops over elements into `linalg.generic`
    on tensors, so upstream fusion, bufferization and vectorisation apply:
    `moe.unary`, `moe.binary` (Julia broadcasting becomes indexing maps with
    constant-0 results for stretched dimensions), `moe.reduce`, `moe.softmax`
    and `moe.rmsnorm`. Arithmetic is done in f32 whatever the storage type
    (bf16/f16 are extended on load and rounded once on store), as the
    language's numerics require; reductions accumulate in f32.

    ```mlir
    // moe-opt --convert-moe-to-linalg
    %y = moe.binary add %x, %b : tensor<?x8xf32>, tensor<1x8xf32> -> tensor<?x8xf32>
    // becomes
    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                                          affine_map<(d0, d1) -> (0, d1)>,
                                          affine_map<(d0, d1) -> (d0, d1)>], ...}
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::tensor::TensorDialect"];
}

def ConvertMoEToCPUKernels : Pass<"convert-moe-to-cpu-kernels", "::mlir::ModuleOp"> {
  let summary = "lower routing, expert and matrix ops to calls of the runtime's CPU kernels";
  let description = [{
    The data-dependent and matrix-product ops run as kernels of the runtime's
    CPU kernel library (tiled, vectorised, multi-threaded; `runtime/src/cpu`),
    the way IREE's microkernels do: `moe.dense`, `moe.topk`, `moe.group_topk`,
    `moe.gather`, `moe.load_balance_loss`, `moe.z_loss`, and each
    `moe.dispatch` -> `moe.expert_ffn` -> `moe.combine` chain, which becomes
    one call of the fused grouped-expert kernel (the routed value never
    materialises). Each operand is passed as its buffer's address
    (`bufferization.to_buffer` + `memref.extract_aligned_pointer_as_index`),
    with its sizes and an element-type code; results are fresh buffers
    returned to tensors with `bufferization.to_tensor restrict`. Kernels are
    declared as private functions `moe_cpu_*` that the runtime resolves when it
    loads the compiled layer.

    A routed value used other than by `moe.expert_ffn` and `moe.combine`, or
    by two expert FFNs in sequence, is reported as unsupported.

    ```mlir
    // moe-opt --convert-moe-to-cpu-kernels
    %w, %e = moe.topk %l k = 2 score = softmax renormalize : ...
    // becomes
    func.call @moe_cpu_topk(%lp, %wp, %ep, %rows, %cols, %k, %flags, %scale, %dtype) : ...
    ```
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect", "::mlir::tensor::TensorDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
