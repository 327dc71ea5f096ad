// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-split-k=true' | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu-kernels | FileCheck %s --check-prefix=OFF

// Tests split-k for a router's product (Qwen3-30B-A3B's, 2048 -> 128): summed
// in 16 fixed chunks of two k steps (GemmConfig::kChunks). Up to the cost
// model's 2048 rows the host launches one block per (tile, chunk), whose f32
// chunk sums ([16][rows][128]) the sum kernel adds in chunk order; past them
// the whole kernel, which adds the same chunk sums in the same order.
// CHECK-LABEL: func.func @router(
// CHECK:         %[[ROWS:.*]] = tensor.dim %arg0, %c0
// CHECK:         %[[FEW:.*]] = arith.cmpi ule, %[[ROWS]], %c2048 : index
// CHECK:         scf.if %[[FEW]] {
// CHECK:           %[[PARTIALS:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK:           gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k2048_n128_identity_se_splitk16 blocks in (%{{.*}}, %c16, %{{.*}}) threads in (%c256,
// CHECK-SAME:        %[[PARTIALS]] : memref<?xf32>
// CHECK:           gpu.launch_func  @moe_kernels::@moe_split_k_sum_f32_f32 blocks in
// CHECK-SAME:        args(%[[PARTIALS]] : memref<?xf32>, %{{.*}} : memref<?xf32>, %{{.*}} : index, %c16 : index)
// CHECK:         } else {
// CHECK:           gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k2048_n128_identity_se_kc16 blocks in (%{{.*}}, %c1
// CHECK:         }
// The whole kernel: an outer loop over the 16 chunks carrying the totals, an
// inner one over a chunk's k steps.
// CHECK:       gpu.func @moe_gemm_wgmma64_bf16_f32_wf32_k2048_n128_identity_se_kc16(
// CHECK:         scf.for %{{.*}} = %c0 to %c16 step %c1
// CHECK:           scf.for
// CHECK:             wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// The split kernel: its chunk from the grid's y, its rows shifted by y * rows.
// CHECK:       gpu.func @moe_gemm_wgmma64_bf16_f32_wf32_k2048_n128_identity_se_splitk16(
// CHECK:         gpu.block_id  y
// CHECK:       gpu.func @moe_split_k_sum_f32_f32(
// CHECK:         scf.for %{{.*}} = %c0 to %arg3 step %c1 iter_args(%{{.*}} = %cst) -> (f32)

// Off (the default until checked on a GPU): one launch of the engine chosen, no chunks.
// OFF-LABEL: func.func @router(
// OFF-NOT:     scf.if
// OFF:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_bf16_f32_wf32_k2048_n128_identity_se{{(_ws)?}} blocks
// OFF-NOT:     split_k_sum
func.func @router(%x: tensor<?x2048xbf16>, %w: tensor<2048x128xbf16>) -> tensor<?x128xf32> {
  %y = moe.dense %x, %w : tensor<?x2048xbf16>, tensor<2048x128xbf16> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}
