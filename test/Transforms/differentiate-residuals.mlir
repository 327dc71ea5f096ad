// RUN: moe-opt %s --moe-differentiate=keep-up-products --split-input-file | FileCheck %s
// The printed functions parse again.
// RUN: moe-opt %s --moe-differentiate=keep-up-products --split-input-file | moe-opt --split-input-file > /dev/null
// Without the option nothing is kept.
// RUN: moe-opt %s --moe-differentiate --split-input-file | FileCheck %s --check-prefix=RECOMPUTE
// RUN: moe-opt %s --moe-differentiate="keep-up-products keep-tensors" --split-input-file | FileCheck %s --check-prefix=TENSORS

// Tests the residuals: @moe_train returns the forward's output and the
// experts' up products ([tokens, k, 2f], marked moe.residual = 0); the
// backward takes them after the cotangent, its expert_ffn_grad reads them,
// and the routing (dense, topk, dispatch) is recomputed.
// CHECK-LABEL: func.func @moe(
// CHECK-NOT:     moe.residual
// CHECK:         return
// CHECK-LABEL: func.func @moe_train(
// CHECK-SAME:      -> (tensor<?x16xf32>, tensor<?x2x16xf32> {moe.residual = 0 : i64})
// CHECK:         %[[Y:.*]], %[[UP:.*]] = moe.expert_ffn swiglu %{{.*}} : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32> -> tensor<?x2x16xf32>
// CHECK:         %[[O:.*]] = moe.combine %[[Y]]
// CHECK:         return %[[O]], %[[UP]]
// CHECK-LABEL: func.func @moe_backward(
// CHECK-SAME:      %{{.*}}: tensor<?x16xf32> {moe.cotangent = 0 : i64}, %[[R:.*]]: tensor<?x2x16xf32> {moe.residual = 0 : i64})
// CHECK:         moe.topk
// CHECK:         moe.dispatch
// CHECK:         moe.expert_ffn_grad swiglu %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} up(%[[R]] : tensor<?x2x16xf32>)
// RECOMPUTE-NOT: @moe_train
// RECOMPUTE-NOT: moe.residual
// RECOMPUTE:     moe.expert_ffn_grad swiglu %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}}, %{{[^ ]*}} :
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

// Tests an mlp expert (up products f wide) of bf16 rows, and a layer with no
// experts: it keeps nothing and gets no @..._train.
// CHECK-LABEL: func.func @mlp_train(
// CHECK-SAME:      -> (tensor<?x16xbf16>, tensor<?x1x32xbf16> {moe.residual = 0 : i64})
// CHECK-LABEL: func.func @mlp_backward(
// CHECK:         moe.expert_ffn_grad mlp(gelu) {{.*}} up(%{{.*}} : tensor<?x1x32xbf16>)
// CHECK-NOT:   @dense_train
func.func @mlp(%x: tensor<?x16xbf16> {moe.input = "x"}, %e: tensor<?x1xi32> {moe.input = "e"},
               %wi: tensor<2x16x32xbf16> {moe.param = "experts.w_in"}, %wo: tensor<2x32x16xbf16> {moe.param = "experts.w_out"},
               %w: tensor<?x1xf32> {moe.input = "w"}) -> tensor<?x16xbf16> {
  %r = moe.dispatch %x, %e : tensor<?x16xbf16>, tensor<?x1xi32> -> !moe.routed<tensor<?x16xbf16>, experts = 2, k = 1>
  %y = moe.expert_ffn mlp(gelu) %r, %wi, %wo : !moe.routed<tensor<?x16xbf16>, experts = 2, k = 1>, tensor<2x16x32xbf16>, tensor<2x32x16xbf16>
  %o = moe.combine %y, %w : !moe.routed<tensor<?x16xbf16>, experts = 2, k = 1>, tensor<?x1xf32> -> tensor<?x16xbf16>
  return %o : tensor<?x16xbf16>
}
func.func @dense(%x: tensor<?x16xf32> {moe.input = "x"}, %w: tensor<16x4xf32> {moe.param = "w"}) -> tensor<?x4xf32> {
  %y = moe.dense %x, %w : tensor<?x16xf32>, tensor<16x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests keep-tensors (the CPU's and the GPU's choice): the router's logits and
// the top-k's values and indices are residuals too, after the up products;
// the backward recomputes only the dispatch (a view) and takes the rest.
// TENSORS-LABEL: func.func @moe_train(
// TENSORS-SAME:      -> (tensor<?x16xf32>, tensor<?x2x16xf32> {moe.residual = 0 : i64}, tensor<?x2xf32> {moe.residual = 1 : i64}, tensor<?x2xi32> {moe.residual = 2 : i64}, tensor<?x4xf32> {moe.residual = 3 : i64})
// TENSORS:         return %{{.*}}, %up, %values, %indices, %0
// TENSORS-LABEL: func.func @moe_backward(
// TENSORS-SAME:      %[[W:[a-z0-9]*]]: tensor<?x2xf32> {moe.residual = 1 : i64}, %[[E:[a-z0-9]*]]: tensor<?x2xi32> {moe.residual = 2 : i64}, %[[L:[a-z0-9]*]]: tensor<?x4xf32> {moe.residual = 3 : i64})
// TENSORS-NOT:     moe.dense %
// TENSORS-NOT:     moe.topk %
// TENSORS:         moe.dispatch %{{.*}}, %[[E]]
// TENSORS:         moe.combine_grad %{{.*}}, %[[W]]
// TENSORS:         moe.topk_grad %[[L]], %[[E]]
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
