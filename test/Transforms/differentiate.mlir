// RUN: moe-opt %s --moe-differentiate --split-input-file --verify-diagnostics | FileCheck %s
// The printed backward parses again (every backward op round-trips).
// RUN: moe-opt %s --moe-differentiate --split-input-file | moe-opt --split-input-file --verify-diagnostics > /dev/null

// Tests the smallest backward: one rule (the recomputed silu, which it does
// not read, removed), the cotangent argument and the gradient result named.
// CHECK-LABEL: func.func @f_backward(
// CHECK-SAME:    %[[X:.*]]: tensor<?x8xf32> {moe.input = "x"}, %[[DY:.*]]: tensor<?x8xf32> {moe.cotangent = 0 : i64})
// CHECK-SAME:    -> (tensor<?x8xf32> {moe.gradient = "x"})
// CHECK-NOT:     moe.unary silu
// CHECK:         %[[DX:.*]] = moe.unary_grad silu %[[X]], %[[DY]] : tensor<?x8xf32>
// CHECK:         return %[[DX]]
func.func @f(%x: tensor<?x8xf32> {moe.input = "x"}) -> tensor<?x8xf32> {
  %y = moe.unary silu %x : tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Tests the routed chain, op by op in reverse: combine, experts, dispatch,
// the routing weights back through top-k into the router, and the two
// cotangents of x (through the experts and through the router) summed.
// CHECK-LABEL: func.func @moe_backward(
// CHECK:         %[[DR:.*]], %[[DW:.*]] = moe.combine_grad %{{.*}}, %{{.*}}, %{{.*}} : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x16xf32>
// CHECK:         %[[DXR:.*]], %[[DWS:.*]]:3 = moe.expert_ffn_grad swiglu %{{.*}}, %[[DR]], %{{.*}}, %{{.*}}, %{{.*}} :
// CHECK:         %[[DX1:.*]] = moe.dispatch_grad %[[DXR]] : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2> -> tensor<?x16xf32>
// CHECK:         %[[DL:.*]] = moe.topk_grad %{{.*}}, %{{.*}}, %[[DW]] k = 2 score = softmax renormalize
// CHECK:         %[[DX2:.*]], %[[DROUTER:.*]] = moe.dense_grad %{{.*}}, %{{.*}}, %[[DL]]
// CHECK:         %[[DX:.*]] = moe.binary add %[[DX1]], %[[DX2]]
// CHECK:         return %[[DX]], %[[DROUTER]], %[[DWS]]#0, %[[DWS]]#1, %[[DWS]]#2
func.func @moe(%x: tensor<?x16xf32> {moe.input = "x"}, %router: tensor<16x4xf32> {moe.param = "router.weight"},
               %g: tensor<4x16x8xf32> {moe.param = "experts.w_gate"}, %u: tensor<4x16x8xf32> {moe.param = "experts.w_up"},
               %d: tensor<4x8x16xf32> {moe.param = "experts.w_down"}) -> tensor<?x16xf32> {
  %l = moe.dense %x, %router : tensor<?x16xf32>, tensor<16x4xf32> -> tensor<?x4xf32>
  %w, %e = moe.topk %l k = 2 score = softmax renormalize : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
  %o = moe.combine %y, %w : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %o : tensor<?x16xf32>
}

// -----

// Tests a bias (the column sums of dy, as its [n]), a cast inverted (a bf16
// input widened to f32 gets its cotangent narrowed), a reshape inverted, and
// zeros for an input nothing flows back to.
// CHECK-LABEL: func.func @glue_backward(
// CHECK:         %[[DX:.*]], %[[DW:.*]] = moe.dense_grad
// CHECK:         %[[SUMS:.*]] = moe.reduce sum %{{.*}} dim = 0 : tensor<?x4xf32> -> tensor<1x4xf32>
// CHECK:         %[[DB:.*]] = tensor.collapse_shape %[[SUMS]] {{\[\[}}0, 1]] : tensor<1x4xf32> into tensor<4xf32>
// CHECK:         %[[DXB:.*]] = arith.truncf %[[DX]] : tensor<?x8xf32> to tensor<?x8xbf16>
// CHECK:         %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[UNUSED:.*]] = tensor.splat %[[ZERO]][%{{.*}}] : tensor<?x3xf32>
// CHECK:         return %[[DXB]], %{{.*}}, %[[DB]], %[[UNUSED]]
func.func @glue(%x: tensor<?x8xbf16> {moe.input = "x"}, %w: tensor<8x4xf32> {moe.param = "w"},
                %b: tensor<4xf32> {moe.param = "b"}, %unused: tensor<?x3xf32> {moe.input = "z"}) -> tensor<?x4xf32> {
  %xf = arith.extf %x : tensor<?x8xbf16> to tensor<?x8xf32>
  %y = moe.dense %xf, %w bias %b : tensor<?x8xf32>, tensor<8x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests the auxiliary losses: load_balance_loss through its probabilities
// only, z_loss through its logits, the index input without a gradient.
// CHECK-LABEL: func.func @losses_backward(
// CHECK-SAME:    -> (tensor<?x4xf32> {moe.gradient = "logits"})
// CHECK:         moe.z_loss_grad
// CHECK:         moe.load_balance_loss_grad
// CHECK:         moe.softmax_grad
func.func @losses(%l: tensor<?x4xf32> {moe.input = "logits"}, %e: tensor<?x1xi32> {moe.input = "e"}) -> (tensor<f32>, tensor<f32>) {
  %p = moe.softmax %l dim = 1 : tensor<?x4xf32> -> tensor<?x4xf32>
  %lb = moe.load_balance_loss %p, %e : tensor<?x4xf32>, tensor<?x1xi32> -> tensor<f32>
  %z = moe.z_loss %l : tensor<?x4xf32> -> tensor<f32>
  return %lb, %z : tensor<f32>, tensor<f32>
}


// -----

// Tests a balance-updated bias (update = :balance): its experts' load, the
// assignments of the group_topk it chooses, is one more result after the
// gradients, named by the parameter.
// CHECK-LABEL: func.func @balance_backward(
// CHECK-SAME:    tensor<4xf32> {moe.gradient = "bias"}, tensor<4xf32> {moe.load = "bias"})
// CHECK:         %[[E:.*]] = moe.group_topk
// CHECK:         %[[ONES:.*]] = tensor.splat %{{.*}}[%{{.*}}] : tensor<?x2xf32>
// CHECK:         %[[PER:.*]] = moe.gather_grad %[[E]], %[[ONES]] : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x4xf32>
// CHECK:         %[[SUM:.*]] = moe.reduce sum %[[PER]] dim = 0
// CHECK:         %[[LOAD:.*]] = tensor.collapse_shape %[[SUM]]
// CHECK:         return {{.*}}, %[[LOAD]]
func.func @balance(%s: tensor<?x4xf32> {moe.input = "s"},
                   %bias: tensor<4xf32> {moe.param = "bias", moe.trainable = false, moe.update = "balance"})
    -> tensor<?x2xf32> {
  %b = tensor.expand_shape %bias [[0, 1]] output_shape [1, 4] : tensor<4xf32> into tensor<1x4xf32>
  %c = moe.binary add %s, %b : tensor<?x4xf32>, tensor<1x4xf32> -> tensor<?x4xf32>
  %e = moe.group_topk %c k = 2 groups = 2 top_groups = 1 : tensor<?x4xf32> -> tensor<?x2xi32>
  %w = moe.gather %s, %e : tensor<?x4xf32>, tensor<?x2xi32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}
