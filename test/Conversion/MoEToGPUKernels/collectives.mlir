// RUN: moe-opt %s --convert-moe-to-gpu-kernels="chip=sm_80" --split-input-file --verify-diagnostics | FileCheck %s

// Tests that an FSDP all-gather of device buffers becomes the runtime's
// moe_comm_all_gather (the NCCL communicator takes device addresses) of the
// chunk's bytes (32 f32 = 128) over dp and ep (mask 6), into a fresh buffer.
// CHECK-LABEL: func.func @fsdp_gather(
// CHECK:         memref.alloc() : memref<128xf32>
// CHECK:         memref.extract_aligned_pointer_as_index
// CHECK:         call @moe_comm_all_gather(%{{.*}}, %{{.*}}, %{{.*}}, %c6_i32) : (i64, i64, i64, i32) -> ()
// CHECK-NOT:     moe.mesh
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 2, 2]
func.func @fsdp_gather(%w: tensor<32xf32>) -> tensor<128xf32> {
  %g = moe.all_gather %w on @mesh axes = ["dp", "ep"] gather_dim = 0 : tensor<32xf32> -> tensor<128xf32>
  return %g : tensor<128xf32>
}

// -----

// Tests that a gather of uneven token rows (the auxiliary losses') asks for
// the gathered row count first, allocates that many rows on the device, then
// gathers the rows (8 f32 = 32 bytes a row) over the whole mesh (mask 7).
// CHECK-LABEL: func.func @rows_gather(
// CHECK:         %[[N:.*]] = call @moe_comm_gathered_rows(%{{.*}}, %c7_i32) : (i64, i32) -> i64
// CHECK:         %[[I:.*]] = arith.index_cast %[[N]] : i64 to index
// CHECK:         memref.alloc(%[[I]]) : memref<?x8xf32>
// CHECK:         call @moe_comm_all_gather_rows(%{{.*}}, %{{.*}}, %{{.*}}, %c32_i64, %c7_i32)
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [2, 1, 2]
func.func @rows_gather(%p: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %g = moe.all_gather %p on @mesh axes = ["rep", "dp", "ep"] gather_dim = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
  return %g : tensor<?x8xf32>
}

// -----

// Tests the expert-parallel chain (8 experts, this rank's 4, over ep: mask 4):
// the uncapped count kernel, the world's counts through moe_gpu_ep_plan (the
// capacity 1.25 applied there), the schedule and the permute that keeps the
// planned rows (_kept), the pack kernel into send buffers of the planned
// size, the dispatch, a schedule over the 4 local experts, the two grouped
// GEMMs on the received rows, the return trip and the combine.
// CHECK:       func.func private @moe_gpu_ep_return(i64, i64, i64, i64)
// CHECK-LABEL: func.func @expert_parallel(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_count_e8_k2_c0_m128 blocks
// CHECK:         %[[CAP:.*]] = arith.constant 1.250000e+00 : f64
// CHECK:         %[[PLAN:.*]] = call @moe_gpu_ep_plan(%{{.*}}, %c8_i64, %c2_i64, %[[CAP]], %{{.*}}, %c4_i32) : (i64, i64, i64, f64, i64, i32) -> i64
// CHECK:         gpu.launch_func  @moe_kernels::@moe_schedule_e8_k2_c0_m128_kept blocks
// CHECK:         gpu.launch_func  @moe_kernels::@moe_permute_e8_k2_c0_m128_kept blocks
// CHECK:         call @moe_gpu_ep_sent_rows(%[[PLAN]])
// CHECK:         call @moe_gpu_ep_received_rows(%[[PLAN]])
// CHECK:         gpu.launch_func  @moe_kernels::@moe_pack_bf16_f32_d64_k2 blocks
// CHECK:         call @moe_gpu_ep_dispatch(%[[PLAN]], {{.*}}, %c128_i64, %c4_i64)
// CHECK:         gpu.launch_func  @moe_kernels::@moe_schedule_e4_k2_c0_m128 blocks
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_
// CHECK:         call @moe_gpu_ep_return(%[[PLAN]], %{{.*}}, %{{.*}}, %c128_i64{{.*}})
// CHECK:         gpu.launch_func  @moe_kernels::@moe_combine_bf16_f32_bf16_bf16_d64_k2 blocks
// CHECK-NOT:     moe.all_to_all
// CHECK-NOT:     moe.expert_ffn
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
func.func @expert_parallel(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                           %w_in: tensor<4x64x128xbf16>, %w_out: tensor<4x128x64xbf16>) -> tensor<?x64xbf16> {
  %r = moe.dispatch %x, %e
      : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25>
  %r2 = moe.all_to_all %r on @mesh axes = ["ep"] : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25>
      -> !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25, expert_shards = 2>
  %y = moe.expert_ffn mlp(relu) %r2, %w_in, %w_out
      : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25, expert_shards = 2>,
        tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %y2 = moe.all_to_all %y on @mesh axes = ["ep"]
      : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25, expert_shards = 2>
      -> !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25>
  %out = moe.combine %y2, %w : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2, capacity = 1.25>, tensor<?x2xf32>
      -> tensor<?x64xbf16>
  return %out : tensor<?x64xbf16>
}

// -----

// Tests that the collectives moe-place-on-mesh does not emit are refused by
// name on the GPU.
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
func.func @all_reduce(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{the GPU backend does not lower moe.all_reduce (moe-place-on-mesh does not emit it; the CPU backend lowers it)}}
  %r = moe.all_reduce %x on @mesh axes = ["ep"] reduction = sum : tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
func.func @tensor_all_to_all(%y: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // expected-error @+1 {{the GPU backend lowers moe.all_to_all of routed values (around moe.expert_ffn) only, not of 'tensor<8x4xf32>'}}
  %a = moe.all_to_all %y on @mesh axes = ["ep"] split_dim = 0 concat_dim = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %a : tensor<8x4xf32>
}

// -----

moe.mesh @mesh axes = ["tp"] shape = [2]
func.func @unknown_axis(%x: tensor<4xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{the GPU runtime's meshes have the axes rep, dp and ep; got ["tp"]}}
  %g = moe.all_gather %x on @mesh axes = ["tp"] gather_dim = 0 : tensor<4xf32> -> tensor<8xf32>
  return %g : tensor<8xf32>
}
