// RUN: moe-opt %s --convert-moe-to-gpu-kernels="chip=sm_90a" --split-input-file --verify-diagnostics | FileCheck %s

// Tests the routed chain's backward on the GPU: the plan again in the padded
// layout (each expert's rows start at a whole 128-row tile: the schedule
// also writes the segments' ends), the up products again with f32 outputs,
// the down product's input cotangent by the forward's grouped GEMM reading
// the down weights k-major (`_kb`: no transposed copy), the activation's
// backward a block an assignment, the weight cotangents summed over each
// expert's rows on tensor cores (no atomics; the activations' rows already
// carry the routing weight), the rows' cotangents through the gate and up
// weights read k-major side by side (`_kb128`: k below 128 from the gate's,
// the rest from the up's), and each token's slots summed in order by the
// combine kernel. The recomputed dispatch -> expert_ffn is gone, and no
// weight is transposed.
// CHECK-LABEL: func.func @chain_backward(
// CHECK-NOT:     moe.dispatch
// CHECK:         gpu.launch_func  @moe_kernels::@moe_count_e4_k2_c0_m128
// CHECK:         gpu.launch_func  @moe_kernels::@moe_schedule_e4_k2_c0_m128_padded
// CHECK:         gpu.launch_func  @moe_kernels::@moe_permute_e4_k2_c0_m128_padded
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k64_n128_identity_se_gather_grouped
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k64_n128_identity_se_gather_grouped
// CHECK-NOT:     moe_transpose
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k64_n128_identity_se_kb_gather_grouped
// CHECK:         gpu.launch_func  @moe_kernels::@moe_ffn_act_grad_bf16_wf32_f128_silu_glu_wh
// CHECK:         gpu.launch_func  @moe_kernels::@moe_wgrad_bf16_bf16_bf16_wf32_m64_n128_lda64_ldb256_col0_s4_ga_t2_wgmma
// CHECK-SAME:      dynamic_shared_memory_size %{{.*}}
// CHECK:         gpu.launch_func  @moe_kernels::@moe_wgrad_bf16_bf16_bf16_wf32_m64_n128_lda64_ldb256_col128_s4_ga_t2_wgmma
// CHECK:         gpu.launch_func  @moe_kernels::@moe_wgrad_bf16_bf16_bf16_wf32_m128_n64_lda128_ldb64_col0_s4_gb_t2_wgmma
// CHECK-NOT:     moe_transpose
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k256_n64_identity_se_kb128_grouped
// CHECK:         gpu.launch_func  @moe_kernels::@moe_combine_f32_f32_bf16_bf16_d64_k2
// CHECK-NOT:     moe.combine_grad
// CHECK-NOT:     moe.expert_ffn
// CHECK:         return
// The weight cotangents' kernel walks a segment's rows in order, 32 at a
// time, both operands transposed by ldmatrix on their way to mma.sync.
// CHECK-LABEL:  gpu.func @moe_wgrad_bf16_bf16_bf16_wf32_m64_n128_lda64_ldb256_col0_s4_ga_t2_wgmma(
// CHECK:          cp.async.cg.shared.global
// CHECK:          scf.for
// CHECK:          fence.proxy.async.shared::cta
// CHECK:          wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.*}}, 1, 1, 1, 1;
// CHECK-NOT:      atomic
// CHECK:          gpu.return
// The k-major B: wgmma's B untransposed (the last immediate 0), B1's rows
// from k = 128 on.
// CHECK-LABEL:  gpu.func @moe_gemm_wgmma64_bf16_f32_wf32_k256_n64_identity_se_kb128_grouped(
// CHECK:          wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.*}}, 1, 1, 0, 0;
func.func @chain_backward(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                          %g: tensor<4x64x128xbf16>, %u: tensor<4x64x128xbf16>, %d: tensor<4x128x64xbf16>,
                          %dout: tensor<?x64xbf16>)
    -> (tensor<?x64xbf16>, tensor<?x2xf32>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>) {
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %dy, %dw = moe.combine_grad %y, %w, %dout : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x64xbf16>
  %dr, %dg, %du, %dd = moe.expert_ffn_grad swiglu %r, %dy, %g, %u, %d
      : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
      -> tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %dx = moe.dispatch_grad %dr : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2> -> tensor<?x64xbf16>
  return %dx, %dw, %dg, %du, %dd : tensor<?x64xbf16>, tensor<?x2xf32>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
}

// -----

// Tests the residuals: a train forward's up GEMM keeps the up products
// (`_keep`: its kernel gets the [tokens, k, 2f] result's buffer after the
// top-k), and the backward that takes them launches no up GEMM: its
// activation kernel reads them by assignment (`_kept`).
// CHECK-LABEL: func.func @train_forward(
// CHECK:         %[[UP:.*]] = memref.alloc(%{{.*}}) : memref<?x2x256xbf16>
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k64_n128_silu_se_glu_gather_grouped_keep
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_bf16_wf32_k128_n64_identity_se_scale_grouped
// CHECK-NOT:     moe.expert_ffn
// CHECK:         return
// CHECK-LABEL: func.func @kept_backward(
// CHECK-NOT:     _gather_grouped(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_f32_wf32_k64_n128_identity_se_kb_gather_grouped
// CHECK-NOT:     _gather_grouped(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_ffn_act_grad_bf16_wf32_f128_silu_glu_wh_kept
// CHECK:         return
// CHECK-LABEL:  gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k64_n128_silu_se_glu_gather_grouped_keep(
// CHECK-SAME:     %arg11: index, %[[R:.*]]: memref<?xbf16>)
// CHECK:          memref.extract_aligned_pointer_as_index %[[R]]
// CHECK:          llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : vector<2xbf16>, !llvm.ptr
func.func @train_forward(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                         %g: tensor<4x64x128xbf16>, %u: tensor<4x64x128xbf16>, %d: tensor<4x128x64xbf16>)
    -> (tensor<?x64xbf16>, tensor<?x2x256xbf16>) {
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>
  %y, %up = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16> -> tensor<?x2x256xbf16>
  %o = moe.combine %y, %w : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<?x2xf32> -> tensor<?x64xbf16>
  return %o, %up : tensor<?x64xbf16>, tensor<?x2x256xbf16>
}
func.func @kept_backward(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                         %g: tensor<4x64x128xbf16>, %u: tensor<4x64x128xbf16>, %d: tensor<4x128x64xbf16>,
                         %dout: tensor<?x64xbf16>, %up: tensor<?x2x256xbf16>)
    -> (tensor<?x64xbf16>, tensor<?x2xf32>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>) {
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %dy, %dw = moe.combine_grad %y, %w, %dout : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x64xbf16>
  %dr, %dg, %du, %dd = moe.expert_ffn_grad swiglu %r, %dy, %g, %u, %d up(%up : tensor<?x2x256xbf16>)
      : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
      -> tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %dx = moe.dispatch_grad %dr : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2> -> tensor<?x64xbf16>
  return %dx, %dw, %dg, %du, %dd : tensor<?x64xbf16>, tensor<?x2xf32>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
}

// -----

// Tests the other backward ops, a launch (or two) each: dense_grad's input
// cotangent by a thread an element where the operands' types differ (f32
// logits, bf16 weights), its weight cotangent summed over the tokens; the
// routing's and the losses' backward a thread a token (or element); the load
// balance's counts by the forward's count kernel, with no capacity.
// CHECK-LABEL: func.func @ops_backward(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_dense_dx_f32_bf16_bf16_k16_n4
// CHECK:         gpu.launch_func  @moe_kernels::@moe_wgrad_bf16_f32_bf16_wf32_m16_n4_lda16_ldb4_col0_s1
// CHECK:         gpu.launch_func  @moe_kernels::@moe_topk_grad_
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gather_grad_f32_f32_c4_k2
// CHECK:         gpu.launch_func  @moe_kernels::@moe_count_e4_k2_c0_m128
// CHECK:         gpu.launch_func  @moe_kernels::@moe_load_balance_grad_f32_e4_k2
// CHECK:         gpu.launch_func  @moe_kernels::@moe_z_loss_grad_f32_e4
func.func @ops_backward(%x: tensor<?x16xbf16>, %w: tensor<16x4xbf16>, %dl: tensor<?x4xf32>,
                        %e: tensor<?x2xi32>, %dv: tensor<?x2xf32>, %s: tensor<f32>)
    -> (tensor<?x16xbf16>, tensor<16x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %a, %b = moe.dense_grad %x, %w, %dl : tensor<?x16xbf16>, tensor<16x4xbf16>, tensor<?x4xf32>
  %t = moe.topk_grad %dl, %e, %dv k = 2 score = softmax renormalize : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?x2xf32>
  %g = moe.gather_grad %e, %dv : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x4xf32>
  %lb = moe.load_balance_loss_grad %dl, %e, %s : tensor<?x4xf32>, tensor<?x2xi32>, tensor<f32>
  %z = moe.z_loss_grad %dl, %s : tensor<?x4xf32>, tensor<f32>
  return %a, %b, %t, %g, %lb, %z : tensor<?x16xbf16>, tensor<16x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// Tests a 16-bit router's input cotangent at a size the tensor cores take:
// the f32 cotangent split into high and low bf16 halves, then one GEMM,
// [high | low] . [w; w]^T, reading w k-major at both halves (`_kb64`); the
// weight's cotangent x^T [high | low] on tensor cores in f32, its halves
// then added.
// CHECK-LABEL: func.func @router_backward(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_split_high_low_f32_bf16_n64
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_bf16_wf32_k128_n128_identity_se_kb64
// CHECK-NOT:     moe_dense_dx
// CHECK:         gpu.launch_func  @moe_kernels::@moe_wgrad_bf16_bf16_f32_wf32_m128_n128_lda128_ldb128_col0_s1_wgmma
// CHECK:         gpu.launch_func  @moe_kernels::@moe_sum_halves_f32_bf16_n64
// CHECK-LABEL:  gpu.func @moe_split_high_low_f32_bf16_n64(
// CHECK:          arith.truncf {{.*}} : f32 to bf16
// CHECK:          arith.extf
// CHECK:          arith.subf
func.func @router_backward(%x: tensor<?x128xbf16>, %w: tensor<128x64xbf16>, %dl: tensor<?x64xf32>)
    -> (tensor<?x128xbf16>, tensor<128x64xbf16>) {
  %a, %b = moe.dense_grad %x, %w, %dl : tensor<?x128xbf16>, tensor<128x64xbf16>, tensor<?x64xf32>
  return %a, %b : tensor<?x128xbf16>, tensor<128x64xbf16>
}

// -----

// Tests rmsnorm's backward: a warp a row (8 rows a block) for the input's
// cotangent and the gain's per-row terms, then a thread a column summing
// them per gradient block; a bf16 input's cotangent is read as its own type
// (f32, the output's).
// CHECK-LABEL: func.func @rmsnorm(
// CHECK: gpu.launch_func @moe_kernels::@moe_rmsnorm_grad_bf16_f32_f32_c16_eps0x358637bd
// CHECK: gpu.launch_func @moe_kernels::@moe_rmsnorm_grad_bf16_f32_f32_c16_eps0x358637bd_gain
func.func @rmsnorm(%x: tensor<?x16xbf16>, %n: tensor<16xf32>, %dy: tensor<?x16xf32>) -> (tensor<?x16xbf16>, tensor<16xf32>) {
  %c, %d = moe.rmsnorm_grad %x, %n, %dy eps = 1.0e-6 : tensor<?x16xbf16>, tensor<16xf32>, tensor<?x16xf32>
  return %c, %d : tensor<?x16xbf16>, tensor<16xf32>
}

// -----

// Tests what the GPU backward refuses by name: a routed backward op outside a chain.
func.func @lonely(%y: !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, %w: tensor<?x2xf32>, %dout: tensor<?x16xf32>)
    -> tensor<?x2xf32> {
  // expected-error @+1 {{the GPU backend lowers moe.combine_grad only inside a routed chain's backward that ends in moe.dispatch_grad}}
  %dy, %dw = moe.combine_grad %y, %w, %dout : !moe.routed<tensor<?x16xf32>, experts = 4, k = 2>, tensor<?x2xf32>, tensor<?x16xf32>
  return %dw : tensor<?x2xf32>
}
