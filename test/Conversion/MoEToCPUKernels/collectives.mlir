// RUN: moe-opt %s --convert-moe-to-cpu-kernels --split-input-file --verify-diagnostics | FileCheck %s

// Tests that an FSDP all-gather becomes a moe_comm_all_gather of the chunk's
// bytes (32 f32 = 128) over dp and ep (mask 2 | 4 = 6), into a fresh buffer.
// CHECK-LABEL: func.func @fsdp_gather(
// CHECK:         %[[OUT:.*]] = memref.alloc() : memref<128xf32>
// CHECK:         call @moe_comm_all_gather(%{{.*}}, %{{.*}}, %c128_i64, %c6_i32)
// CHECK-NOT:     moe.mesh
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 2, 2]
func.func @fsdp_gather(%w: tensor<32xf32>) -> tensor<128xf32> {
  %g = moe.all_gather %w on @mesh axes = ["dp", "ep"] gather_dim = 0 : tensor<32xf32> -> tensor<128xf32>
  return %g : tensor<128xf32>
}

// -----

// Tests that a gather of uneven token rows asks for the gathered row count
// first (a collective), allocates that many rows, then gathers the rows
// (8 f32 = 32 bytes a row) over the whole mesh (mask 7).
// CHECK-LABEL: func.func @rows_gather(
// CHECK:         %[[N:.*]] = call @moe_comm_gathered_rows(%{{.*}}, %c7_i32) : (i64, i32) -> i64
// CHECK:         %[[I:.*]] = arith.index_cast %[[N]] : i64 to index
// CHECK:         memref.alloc(%[[I]]) : memref<?x8xf32>
// CHECK:         call @moe_comm_all_gather_rows(%{{.*}}, %{{.*}}, %{{.*}}, %c32_i64, %c7_i32{{.*}})
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [2, 1, 2]
func.func @rows_gather(%p: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %g = moe.all_gather %p on @mesh axes = ["rep", "dp", "ep"] gather_dim = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
  return %g : tensor<?x8xf32>
}

// -----

// Tests the all-reduce (4 elements, dtype 0 = f32, reduction 1 = max, over
// ep = mask 4), the reduce-scatter (chunk 2, sum) and the tensor all-to-all
// (8 x 4 f32 over 2 ranks: chunks of 64 bytes).
// CHECK-LABEL: func.func @reductions(
// CHECK:         call @moe_comm_all_reduce(%{{.*}}, %{{.*}}, %{{.*}}, %c0_i32, %c1_i32, %c4_i32)
// CHECK:         call @moe_comm_reduce_scatter(%{{.*}}, %{{.*}}, %c2_i64, %c0_i32{{.*}}, %c0_i32{{.*}}, %c4_i32{{.*}})
// CHECK:         call @moe_comm_all_to_all(%{{.*}}, %{{.*}}, %c64_i64, %c4_i32{{.*}})
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
func.func @reductions(%x: tensor<4xf32>, %y: tensor<8x4xf32>) -> (tensor<4xf32>, tensor<2xf32>, tensor<8x4xf32>) {
  %r = moe.all_reduce %x on @mesh axes = ["ep"] reduction = max : tensor<4xf32>
  %s = moe.reduce_scatter %x on @mesh axes = ["ep"] scatter_dim = 0 reduction = sum : tensor<4xf32> -> tensor<2xf32>
  %a = moe.all_to_all %y on @mesh axes = ["ep"] split_dim = 0 concat_dim = 0 : tensor<8x4xf32> -> tensor<8x4xf32>
  return %r, %s, %a : tensor<4xf32>, tensor<2xf32>, tensor<8x4xf32>
}

// -----

// Tests that the expert-parallel chain (dispatch, all-to-all, experts on the
// rank's 4 of 8, all-to-all back, combine) is one moe_cpu_moe_ffn_ep call
// with the global expert count and the exchange's group (ep, mask 4).
// CHECK-LABEL: func.func @expert_parallel(
// CHECK:         call @moe_cpu_moe_ffn_ep({{.*}}, %c8_i64, %c2_i64, %c2_i32, %cst{{.*}}, %c0_i32, %c0_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}, %c4_i32)
// CHECK-NOT:     moe.all_to_all
// CHECK-NOT:     moe.expert_ffn
moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
func.func @expert_parallel(%x: tensor<?x16xf32>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>, %w_in: tensor<4x16x32xf32>,
                           %w_out: tensor<4x32x16xf32>) -> tensor<?x16xf32> {
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
  %r2 = moe.all_to_all %r on @mesh axes = ["ep"] : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
      -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2, expert_shards = 2>
  %y = moe.expert_ffn mlp(relu) %r2, %w_in, %w_out
      : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2, expert_shards = 2>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  %y2 = moe.all_to_all %y on @mesh axes = ["ep"] : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2, expert_shards = 2>
      -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
  %out = moe.combine %y2, %w : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %out : tensor<?x16xf32>
}

// -----

// Tests that an axis the runtime's meshes do not have is refused by name.
moe.mesh @mesh axes = ["tp"] shape = [2]
func.func @unknown_axis(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{the CPU runtime's meshes have the axes rep, dp and ep; got ["tp"]}}
  %r = moe.all_reduce %x on @mesh axes = ["tp"] reduction = sum : tensor<4xf32>
  return %r : tensor<4xf32>
}
