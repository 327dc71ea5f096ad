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

def ConvertMoEToGPUKernels : Pass<"convert-moe-to-gpu-kernels", "::mlir::ModuleOp"> {
  let summary = "lower routing, dispatch, expert and matrix ops to generated GPU kernels";
  let description = [{
    The GPU counterpart of `convert-moe-to-cpu-kernels`. Each data-dependent
    or matrix-product op becomes `gpu.launch_func` of a kernel generated for
    its static sizes and element types into `gpu.module @moe_kernels`
    (`passes/lib/Conversion/GPUKernels`):

    - `moe.topk` (score, top-k, renormalisation, scale) and `moe.group_topk`:
      one fused kernel each, a warp per token (a thread per token for k > 32);
    - `moe.dense`: a tensor-core GEMM for bf16/f16 (mma.sync m16n8k16 with a
      4-stage cp.async pipeline, or with `gemm=wgmma` on sm_90a warpgroup
      MMA on 128-byte-swizzled shared memory), an FMA GEMM otherwise;
    - each `moe.dispatch` -> `moe.expert_ffn` -> `moe.combine` chain: per-expert
      counts, offsets and the GEMM tile list and a stable permutation, all on
      the device (no host synchronisation); a grouped GEMM over the tile list
      that gathers token rows in its A loads and applies SwiGLU/GeGLU (gate
      and up in one block) or the activation in its epilogue; the down GEMM
      with the routing weight in its epilogue; a combine that sums each
      token's slots in order (no atomics: bitwise reproducible);
    - `moe.gather`, `moe.load_balance_loss`, `moe.z_loss`.

    Intermediate buffers are `memref.alloc`s that `moe-gpu-host-memory`
    turns into device allocations.

    ```mlir
    // moe-opt --convert-moe-to-gpu-kernels
    %w, %e = moe.topk %l k = 2 score = softmax renormalize : ...
    // becomes
    gpu.launch_func @moe_kernels::@moe_topk_f32_f32_e8_k2_s1_r1_x1000000
        blocks in (%g, %c1, %c1) threads in (%c128, %c1, %c1) args(%lp : memref<?xf32>, ...)
    ```
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90a\"",
           "the CUDA architecture the kernels are for (sm_80, sm_90, sm_90a, ...)">,
    Option<"gemm", "gemm", "::moe::GemmEngine", /*default=*/"::moe::GemmEngine::Auto",
           "tensor-core instructions of the GEMMs",
           [{::llvm::cl::values(
             clEnumValN(::moe::GemmEngine::Auto, "auto", "wgmma on sm_90a, else mma (the default)"),
             clEnumValN(::moe::GemmEngine::Mma, "mma", "mma.sync, sm_80 and later"),
             clEnumValN(::moe::GemmEngine::Wgmma, "wgmma",
                        "warpgroup MMA, sm_90a; 64-deep stages, mma.sync where k is not a multiple of 64"))}]>,
    Option<"gemmKTile", "gemm-k-tile", "int64_t", /*default=*/"32",
           "mma.sync: k depth of the GEMMs' pipeline stages, 32 (4 stages, the default) or 64 (3 stages)">,
    Option<"gemmN", "gemm-n", "int64_t", /*default=*/"0",
           "wgmma: B columns a GEMM block multiplies, 128 (two blocks an SM) or 256 (one); 0: from the shapes">,
    Option<"gemmEpilogue", "gemm-epilogue", "::moe::GemmEpilogue",
           /*default=*/"::moe::GemmEpilogue::Staged", "wgmma: how a block's outputs reach C",
           [{::llvm::cl::values(
             clEnumValN(::moe::GemmEpilogue::Staged, "staged",
                        "through shared memory, 16-byte row chunks (the default)"),
             clEnumValN(::moe::GemmEpilogue::Direct, "direct", "each thread stores its element pairs"))}]>,
    Option<"gemmTma", "gemm-tma", "bool", /*default=*/"false",
           "wgmma: load B (the weights) by TMA, one thread issuing and an mbarrier a stage counting, through "
           "tensor maps the runtime makes (moeCudaTensorMap)">,
    Option<"gemmPersistent", "gemm-persistent", "bool", /*default=*/"false",
           "wgmma, 256-column blocks, 2-byte outputs, k of 192 or more: one block an SM walks its tiles as one "
           "stream of k steps (the next tile's copies overlap this one's end); the grid is the SM count "
           "(moeCudaMultiprocessors)">,
    Option<"gemmWarpSpecialized", "gemm-warp-specialized", "::moe::GemmWarpSpecialization",
           /*default=*/"::moe::GemmWarpSpecialization::Auto",
           "wgmma, 256-column blocks, 2-byte outputs, B n-major without TMA: one block an SM of a producer "
           "warpgroup (cp.async into a ring of stages, mbarriers full/empty, tiles from a device counter) and "
           "two consumer warpgroups (wgmma, the epilogue overlapping the next tile's loads)",
           [{::llvm::cl::values(
             clEnumValN(::moe::GemmWarpSpecialization::Auto, "auto",
                        "for products with k of at most 2048 (the default)"),
             clEnumValN(::moe::GemmWarpSpecialization::Always, "true", "for every product that has the form"),
             clEnumValN(::moe::GemmWarpSpecialization::Never, "false", "never: one block a tile"))}]>,
    Option<"gemmSplitK", "gemm-split-k", "bool", /*default=*/"false",
           "wgmma: a router's dense product (at most 256 columns, no epilogue) is summed in fixed k chunks and, "
           "up to the cost model's row count, split along them at run time, its f32 chunk sums added in chunk "
           "order by a second kernel; the same bits either way (docs/gpu.md, \"Split-k\"). Off until checked "
           "on a GPU">,
    Option<"gemmDenseGlu", "gemm-dense-glu", "bool", /*default=*/"false",
           "tensor cores: a gated product written out, silu.(x W_gate) .* (x W_up) (a shared expert's SwiGLU), "
           "as one GEMM of both weights with SwiGLU in its epilogue (f32, rounded once), the up product and "
           "the elementwise kernels gone. Off until checked on a GPU">
  ];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect", "::mlir::math::MathDialect",
                           "::mlir::func::FuncDialect", "::mlir::tensor::TensorDialect"];
}

def MoEGPUMapParallelLoops : Pass<"moe-gpu-map-parallel-loops", "::mlir::func::FuncOp"> {
  let summary = "run each outermost scf.parallel as a gpu.launch of 256-thread blocks";
  let description = [{
    The elementwise glue of a layer (after `convert-linalg-to-parallel-loops`)
    is a set of `scf.parallel` nests over arbitrary, often dynamic, bounds.
    Each outermost one becomes a `gpu.launch` over its iteration space,
    linearised: one thread per iteration, 256 threads per block,
    ceil(iterations / 256) blocks, the iteration recovered by division and
    remainder (the last dimension fastest, so neighbouring threads touch
    neighbouring elements). Inner loops (reductions) stay sequential in the
    thread. Loops with reductions of their own are left alone.

    Scalar glue has no loop at all: a 0-d op (`0.01 * load_balance_loss(p, e)`)
    lowers to host loads, arithmetic and a store. Each such store, with the
    loads and arithmetic computing its value, becomes a launch of one thread,
    so host code never touches device memory.

    ```mlir
    // moe-opt --pass-pipeline='builtin.module(func.func(moe-gpu-map-parallel-loops))'
    scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c8) step (%c1, %c1) { ... }
    // becomes
    gpu.launch blocks(%bx, ...) in (%gx = %blocks, ...) threads(%tx, ...) in (%c256, ...) { ... }

    %v = memref.load %a[] : memref<f32>
    %s = arith.mulf %v, %c : f32
    memref.store %s, %b[] : memref<f32>
    // becomes
    gpu.launch blocks(...) in (%c1, %c1, %c1) threads(...) in (%c1, %c1, %c1) { load, mulf, store }
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::arith::ArithDialect", "::mlir::scf::SCFDialect"];
}

def MoEGPUHostMemory : Pass<"moe-gpu-host-memory", "::mlir::ModuleOp"> {
  let summary = "put the host code's buffers on the device";
  let description = [{
    After bufferization, a GPU layer's host function allocates its
    intermediate and result buffers with `memref.alloc` and may copy with
    `memref.copy`; its kernels need device memory. This pass turns them into
    `gpu.alloc` and `gpu.memcpy` (made asynchronous by `gpu-async-region`) and
    drops `memref.dealloc`: the runtime releases a call's buffers after its
    results are read (stream order makes that safe). Host code that would
    read or write device memory itself (a `memref.load`/`memref.store` left
    outside kernels) is an error naming the op.

    ```mlir
    // moe-opt --moe-gpu-host-memory
    %b = memref.alloc(%n) : memref<?x8xf32>
    // becomes
    %b = gpu.alloc (%n) : memref<?x8xf32>
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def MoEGPUMergeKernelModules : Pass<"moe-gpu-merge-kernel-modules", "::mlir::ModuleOp"> {
  let summary = "gather every kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` puts each outlined kernel in a `gpu.module` of its
    own; this pass moves them all into `@moe_kernels` (created if absent) and
    retargets the launches, so a layer is one PTX module: loaded once, and
    `moec --emit=ptx` prints one file that `ptxas` accepts.

    ```mlir
    // moe-opt --moe-gpu-merge-kernel-modules
    gpu.launch_func @Layer_kernel::@Layer_kernel ...
    // becomes
    gpu.launch_func @moe_kernels::@Layer_kernel ...
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def MoEGPUModuleToBinary : Pass<"moe-gpu-module-to-binary", "::mlir::ModuleOp"> {
  let summary = "serialize each gpu.module to PTX, its kernels compiled in parallel";
  let description = [{
    Upstream's `gpu-module-to-binary{format=isa}` for the one kernel module a
    layer has, with its kernels split over threads: the LLVM optimisation and
    NVPTX code generation of a module of large GEMM kernels is most of a GPU
    compile, and runs on one core upstream. The kernels are partitioned by
    size (largest first, onto the lightest part), each part is a copy of the
    module keeping only its kernels, and the parts are serialized by the NVVM
    target concurrently (the context's thread pool). The PTX texts are then
    merged: one header, module-scope declarations once, the kernels in their
    module order with their basic-block labels and local depots numbered as
    one module would number them, so the result is what a serial compile
    prints. A module with device functions other than kernels is serialized
    whole.

    ```mlir
    // moe-opt --moe-gpu-module-to-binary
    gpu.module @moe_kernels [#nvvm.target<chip = "sm_90a">] { llvm.func @k0() ... llvm.func @k1() ... }
    // becomes
    gpu.binary @moe_kernels [#gpu.object<#nvvm.target<chip = "sm_90a">, "//\n// Generated by LLVM NVPTX ...">]
    ```
  }];
  let options = [
    Option<"parts", "parts", "unsigned", "0",
           "kernel groups compiled concurrently (0: one a hardware thread, at most one a kernel)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
