// RUN: moe-opt %s -split-input-file | FileCheck %s
// RUN: moe-opt %s -split-input-file -mlir-print-op-generic | moe-opt -split-input-file | FileCheck %s

// Tests that topk round-trips with and without its fused score, renormalisation and scale.
// CHECK-LABEL: func.func @topk
func.func @topk(%l: tensor<?x8xbf16>) -> (tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x3xf32>) {
  // CHECK: moe.topk %{{.*}} k = 2 : tensor<?x8xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  %v0, %i0 = moe.topk %l k = 2 : tensor<?x8xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.topk %{{.*}} k = 2 score = softmax renormalize : tensor<?x8xbf16>
  %v1, %i1 = moe.topk %l k = 2 score = softmax renormalize : tensor<?x8xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.topk %{{.*}} k = 3 score = sigmoid scale = 2.500000e+00 : tensor<?x8xbf16>
  %v2, %i2 = moe.topk %l k = 3 score = sigmoid scale = 2.5 : tensor<?x8xbf16> -> tensor<?x3xf32>, tensor<?x3xi32>
  return %v1, %i0, %v2 : tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x3xf32>
}

// -----

// Tests that DeepSeek-V3 routing (group_topk + gather) round-trips.
// CHECK-LABEL: func.func @group_topk_and_gather
func.func @group_topk_and_gather(%s: tensor<?x256xf32>) -> tensor<?x8xf32> {
  // CHECK: %[[IDX:.*]] = moe.group_topk %{{.*}} k = 8 groups = 8 top_groups = 4 : tensor<?x256xf32> -> tensor<?x8xi32>
  %e = moe.group_topk %s k = 8 groups = 8 top_groups = 4 : tensor<?x256xf32> -> tensor<?x8xi32>
  // CHECK: moe.gather %{{.*}}, %[[IDX]] : tensor<?x256xf32>, tensor<?x8xi32> -> tensor<?x8xf32>
  %w = moe.gather %s, %e : tensor<?x256xf32>, tensor<?x8xi32> -> tensor<?x8xf32>
  return %w : tensor<?x8xf32>
}

// -----

// Tests dropless dispatch, a SwiGLU expert and combine.
// CHECK-LABEL: func.func @dispatch_swiglu_combine
func.func @dispatch_swiglu_combine(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %wg: tensor<8x64x128xbf16>, %wu: tensor<8x64x128xbf16>, %wd: tensor<8x128x64xbf16>) -> tensor<?x64xbf16> {
  // CHECK: %[[R:.*]] = moe.dispatch %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>
  // CHECK: %[[Y:.*]] = moe.expert_ffn swiglu %[[R]], %{{.*}}, %{{.*}}, %{{.*}} : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>, tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16>
  %y = moe.expert_ffn swiglu %r, %wg, %wu, %wd : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>, tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16>
  // CHECK: moe.combine %[[Y]], %{{.*}} : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>, tensor<?x2xf32> -> tensor<?x64xbf16>
  %o = moe.combine %y, %w : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>, tensor<?x2xf32> -> tensor<?x64xbf16>
  return %o : tensor<?x64xbf16>
}

// -----

// Tests a capacity-limited dispatch with GeGLU and MLP experts.
// CHECK-LABEL: func.func @capacity_geglu_mlp
func.func @capacity_geglu_mlp(%x: tensor<16x32xf32>, %e: tensor<16x1xi32>,
    %g: tensor<4x32x64xf32>, %u: tensor<4x32x64xf32>, %d: tensor<4x64x32xf32>) {
  // CHECK: !moe.routed<tensor<16x32xf32>, experts = 4, k = 1, capacity = 1.250000e+00>
  %r = moe.dispatch %x, %e : tensor<16x32xf32>, tensor<16x1xi32> -> !moe.routed<tensor<16x32xf32>, experts = 4, k = 1, capacity = 1.25>
  // CHECK: moe.expert_ffn geglu
  %y = moe.expert_ffn geglu %r, %g, %u, %d : !moe.routed<tensor<16x32xf32>, experts = 4, k = 1, capacity = 1.25>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  // CHECK: moe.expert_ffn mlp(gelu) %{{.*}}, %{{.*}}, %{{.*}} :
  %z = moe.expert_ffn mlp(gelu) %r, %u, %d : !moe.routed<tensor<16x32xf32>, experts = 4, k = 1, capacity = 1.25>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

// Tests dense with and without bias, and rmsnorm.
// CHECK-LABEL: func.func @dense_rmsnorm
func.func @dense_rmsnorm(%x: tensor<?x16xf32>, %w: tensor<16x32xf32>, %b: tensor<32xf32>, %g: tensor<16xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x16xf32>) {
  // CHECK: moe.dense %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<16x32xf32> -> tensor<?x32xf32>
  %a = moe.dense %x, %w : tensor<?x16xf32>, tensor<16x32xf32> -> tensor<?x32xf32>
  // CHECK: moe.dense %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x16xf32>, tensor<16x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %c = moe.dense %x, %w bias %b : tensor<?x16xf32>, tensor<16x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  // CHECK: moe.rmsnorm %{{.*}}, %{{.*}} eps = 9.9999999999999995E-7 : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  %n = moe.rmsnorm %x, %g eps = 1.0e-6 : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  return %a, %c, %n : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x16xf32>
}

// -----

// Tests the elementwise, reduction and softmax ops with broadcasting.
// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%x: tensor<?x8xf32>, %s: tensor<f32>) -> tensor<?x8xf32> {
  // CHECK: moe.unary silu %{{.*}} : tensor<?x8xf32>
  %a = moe.unary silu %x : tensor<?x8xf32>
  // CHECK: moe.reduce max %{{.*}} dim = 1 : tensor<?x8xf32> -> tensor<?x1xf32>
  %m = moe.reduce max %a dim = 1 : tensor<?x8xf32> -> tensor<?x1xf32>
  // CHECK: moe.binary sub %{{.*}}, %{{.*}} : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
  %b = moe.binary sub %a, %m : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
  // CHECK: moe.binary pow %{{.*}}, %{{.*}} : tensor<f32>, tensor<?x8xf32> -> tensor<?x8xf32>
  %c = moe.binary pow %s, %b : tensor<f32>, tensor<?x8xf32> -> tensor<?x8xf32>
  // CHECK: moe.softmax %{{.*}} dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %p = moe.softmax %c dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  // CHECK: moe.softmax %{{.*}} dim = 0 log : tensor<?x8xf32> -> tensor<?x8xf32>
  %q = moe.softmax %p dim = 0 log : tensor<?x8xf32> -> tensor<?x8xf32>
  return %q : tensor<?x8xf32>
}

// -----

// Tests the auxiliary losses.
// CHECK-LABEL: func.func @losses
func.func @losses(%p: tensor<?x8xf32>, %e: tensor<?x2xi32>) -> (tensor<f32>, tensor<f32>) {
  // CHECK: moe.load_balance_loss %{{.*}}, %{{.*}} : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  %l = moe.load_balance_loss %p, %e : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  // CHECK: moe.z_loss %{{.*}} : tensor<?x8xf32> -> tensor<f32>
  %z = moe.z_loss %p : tensor<?x8xf32> -> tensor<f32>
  return %l, %z : tensor<f32>, tensor<f32>
}

// -----

// Tests the mesh and the four collectives on its axes.
// CHECK: moe.mesh @mesh axes = ["dp", "ep"] shape = [2, 4]
moe.mesh @mesh axes = ["dp", "ep"] shape = [2, 4]
// CHECK-LABEL: func.func @collectives
func.func @collectives(%x: tensor<8x64xf32>, %w: tensor<2048x8xbf16>, %l: tensor<f32>) {
  // CHECK: moe.all_to_all %{{.*}} on @mesh axes = ["ep"] split_dim = 0 concat_dim = 1 : tensor<8x64xf32> -> tensor<2x256xf32>
  %a = moe.all_to_all %x on @mesh axes = ["ep"] split_dim = 0 concat_dim = 1 : tensor<8x64xf32> -> tensor<2x256xf32>
  // CHECK: moe.all_gather %{{.*}} on @mesh axes = ["dp"] gather_dim = 0 : tensor<2048x8xbf16> -> tensor<4096x8xbf16>
  %g = moe.all_gather %w on @mesh axes = ["dp"] gather_dim = 0 : tensor<2048x8xbf16> -> tensor<4096x8xbf16>
  // CHECK: moe.reduce_scatter %{{.*}} on @mesh axes = ["dp"] scatter_dim = 0 reduction = sum : tensor<4096x8xbf16> -> tensor<2048x8xbf16>
  %s = moe.reduce_scatter %g on @mesh axes = ["dp"] scatter_dim = 0 reduction = sum : tensor<4096x8xbf16> -> tensor<2048x8xbf16>
  // CHECK: moe.all_reduce %{{.*}} on @mesh axes = ["dp"] reduction = max : tensor<f32>
  %r = moe.all_reduce %l on @mesh axes = ["dp"] reduction = max : tensor<f32>
  // CHECK: moe.row_offset %{{.*}} on @mesh axes = ["dp"] : tensor<2048x8xbf16>
  %o = moe.row_offset %w on @mesh axes = ["dp"] : tensor<2048x8xbf16>
  return
}

// -----

// Tests the argument attributes that bind a layer to its inputs and parameters.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: moe.input = "x"
// CHECK-SAME: moe.param = "bias", moe.trainable = false
func.func @layer(%x: tensor<?x8xf32> {moe.input = "x"}, %b: tensor<8xf32> {moe.param = "bias", moe.trainable = false}) {
  return
}

// -----

// Tests the expert-parallel exchange on routed values: rows to the rank of
// their expert (expert_shards = the group size), and back.
// CHECK: moe.mesh @mesh2
moe.mesh @mesh2 axes = ["rep", "dp", "ep"] shape = [1, 1, 4]
// CHECK-LABEL: func.func @routed_exchange
func.func @routed_exchange(%x: tensor<?x64xf32>, %e: tensor<?x2xi32>, %w_in: tensor<2x64x128xf32>,
                           %w_out: tensor<2x128x64xf32>) -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5> {
  %r = moe.dispatch %x, %e : tensor<?x64xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5>
  // CHECK: moe.all_to_all %{{.*}} on @mesh2 axes = ["ep"] : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.500000e+00> -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.500000e+00, expert_shards = 4>
  %t = moe.all_to_all %r on @mesh2 axes = ["ep"] : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5>
      -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5, expert_shards = 4>
  // CHECK: moe.expert_ffn mlp(relu) {{.*}} tensor<2x64x128xf32>, tensor<2x128x64xf32>
  %y = moe.expert_ffn mlp(relu) %t, %w_in, %w_out
      : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5, expert_shards = 4>, tensor<2x64x128xf32>, tensor<2x128x64xf32>
  %b = moe.all_to_all %y on @mesh2 axes = ["ep"] : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5, expert_shards = 4>
      -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5>
  return %b : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, capacity = 1.5>
}
