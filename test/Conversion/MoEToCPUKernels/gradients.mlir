// RUN: moe-opt %s --convert-moe-to-cpu-kernels --split-input-file --verify-diagnostics | FileCheck %s

// Tests the routed chain's backward as one fused call: combine_grad ->
// expert_ffn_grad -> dispatch_grad of the recomputed dispatch -> expert_ffn,
// which are gone afterwards; the three results (dx, the combine weights' and
// the stacked weights' cotangents) are the call's buffers.
// CHECK-LABEL: func.func @chain_backward(
// CHECK-NOT:     moe.dispatch
// CHECK-NOT:     moe.expert_ffn
// CHECK:         call @moe_cpu_moe_ffn_grad(
// CHECK-NOT:     moe.combine_grad
// CHECK-NOT:     moe.dispatch_grad
// CHECK:         return
func.func @chain_backward(%x: tensor<?x16xf32>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                          %g: tensor<4x16x8xf32>, %u: tensor<4x16x8xf32>, %d: tensor<4x8x16xf32>,
                          %dout: tensor<?x16xf32>)
    -> (tensor<?x16xf32>, tensor<?x2xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) {
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
  %dy, %dw = moe.combine_grad %y, %w, %dout : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x16xf32>
  %dr, %dg, %du, %dd = moe.expert_ffn_grad swiglu %r, %dy, %g, %u, %d
      : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
      -> tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
  %dx = moe.dispatch_grad %dr : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2> -> tensor<?x16xf32>
  return %dx, %dw, %dg, %du, %dd : tensor<?x16xf32>, tensor<?x2xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>
}

// -----

// Tests the other backward ops, a kernel call each.
// CHECK-LABEL: func.func @ops_backward(
// CHECK:         call @moe_cpu_dense_grad(
// CHECK:         call @moe_cpu_rmsnorm_grad(
// CHECK:         call @moe_cpu_topk_grad(
// CHECK:         call @moe_cpu_gather_grad(
// CHECK:         call @moe_cpu_load_balance_loss_grad(
// CHECK:         call @moe_cpu_z_loss_grad(
func.func @ops_backward(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>, %dl: tensor<?x4xf32>, %n: tensor<16xf32>,
                        %dx: tensor<?x16xf32>, %e: tensor<?x2xi32>, %dv: tensor<?x2xf32>, %s: tensor<f32>)
    -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<?x16xf32>, tensor<16xf32>, tensor<?x4xf32>, tensor<?x4xf32>,
        tensor<?x4xf32>, tensor<?x4xf32>) {
  %a, %b = moe.dense_grad %x, %w, %dl : tensor<?x16xf32>, tensor<16x4xf32>, tensor<?x4xf32>
  %c, %d = moe.rmsnorm_grad %x, %n, %dx eps = 1.0e-6 : tensor<?x16xf32>, tensor<16xf32>, tensor<?x16xf32>
  %t = moe.topk_grad %dl, %e, %dv k = 2 score = softmax renormalize : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?x2xf32>
  %g = moe.gather_grad %e, %dv : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x4xf32>
  %lb = moe.load_balance_loss_grad %dl, %e, %s : tensor<?x4xf32>, tensor<?x2xi32>, tensor<f32>
  %z = moe.z_loss_grad %dl, %s : tensor<?x4xf32>, tensor<f32>
  return %a, %b, %c, %d, %t, %g, %lb, %z : tensor<?x16xf32>, tensor<16x4xf32>, tensor<?x16xf32>, tensor<16xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// Tests a routed backward op outside a chain: refused by name.
func.func @lonely(%y: !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, %w: tensor<?x2xf32>, %dout: tensor<?x16xf32>)
    -> tensor<?x2xf32> {
  // expected-error @+1 {{the CPU backend lowers moe.combine_grad only inside a routed chain's backward that ends in moe.dispatch_grad}}
  %dy, %dw = moe.combine_grad %y, %w, %dout : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x16xf32>
  return %dw : tensor<?x2xf32>
}
