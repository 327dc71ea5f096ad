// RUN: moe-opt %s --convert-moe-to-cpu-kernels --split-input-file --verify-diagnostics --allow-unregistered-dialect | FileCheck %s

// Tests that a dense product becomes a moe_cpu_dense call on buffer
// addresses, with the sizes and the dtype codes (2 = bf16).
// CHECK-LABEL: func.func private @moe_cpu_dense(i64, i64, i64, i64, i64, i64, i32, i32, i32)
// CHECK-LABEL: func.func @dense(
// CHECK-SAME:    attributes {llvm.emit_c_interface}
// CHECK:         %[[X:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?x16xbf16> to memref<?x16xbf16>
// CHECK:         memref.extract_aligned_pointer_as_index %[[X]]
// CHECK:         %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<?x4xbf16>
// CHECK:         %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK:         call @moe_cpu_dense(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c4_i64, %c2_i32, %c2_i32{{.*}}, %c2_i32{{.*}})
// CHECK:         return %[[T]]
func.func @dense(%x: tensor<?x16xbf16>, %w: tensor<16x4xbf16>) -> tensor<?x4xbf16> {
  %y = moe.dense %x, %w : tensor<?x16xbf16>, tensor<16x4xbf16> -> tensor<?x4xbf16>
  return %y : tensor<?x4xbf16>
}

// -----

// Tests that a dense bias is added by a broadcasting moe.binary after the call.
// CHECK-LABEL: func.func @dense_bias(
// CHECK:         call @moe_cpu_dense
// CHECK:         %[[B:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1]] output_shape [1, 4] : tensor<4xf32> into tensor<1x4xf32>
// CHECK:         moe.binary add %{{.*}}, %[[B]] : tensor<?x4xf32>, tensor<1x4xf32>
func.func @dense_bias(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>, %b: tensor<4xf32>) -> tensor<?x4xf32> {
  %y = moe.dense %x, %w bias %b : tensor<?x16xf32>, tensor<16x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that routing passes the score function (1 = softmax), the
// renormalisation flag and the scale.
// CHECK-LABEL: func.func @topk(
// CHECK:         %[[V:.*]] = bufferization.to_tensor {{.*}} : memref<?x2xf32> to tensor<?x2xf32>
// CHECK:         %[[I:.*]] = bufferization.to_tensor {{.*}} : memref<?x2xi32> to tensor<?x2xi32>
// CHECK:         call @moe_cpu_topk(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c8_i64, %c2_i64, %c1_i32, %c1_i32{{.*}}, %cst, %c0_i32)
// CHECK:         return %[[V]], %[[I]]
func.func @topk(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %e = moe.topk %l k = 2 score = softmax renormalize scale = 2.5 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// Tests that dispatch -> expert_ffn -> combine becomes one fused call (kind 0
// = swiglu, capacity factor 1.25) and the routed ops disappear.
// CHECK-LABEL: func.func @chain(
// CHECK-NOT:     moe.dispatch
// CHECK:         call @moe_cpu_moe_ffn({{.*}}, %c8_i64, %c2_i64, %c0_i32, %cst, {{.*}})
// CHECK-NOT:     moe.expert_ffn
// CHECK-NOT:     moe.combine
func.func @chain(%x: tensor<?x4xf32>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                 %g: tensor<8x4x6xf32>, %u: tensor<8x4x6xf32>, %d: tensor<8x6x4xf32>) -> tensor<?x4xf32> {
  %r = moe.dispatch %x, %e : tensor<?x4xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x4xf32>, experts = 8, k = 2, capacity = 1.25>
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x4xf32>, experts = 8, k = 2, capacity = 1.25>, tensor<8x4x6xf32>, tensor<8x4x6xf32>, tensor<8x6x4xf32>
  %o = moe.combine %y, %w : !moe.routed<tensor<?x4xf32>, experts = 8, k = 2, capacity = 1.25>, tensor<?x2xf32> -> tensor<?x4xf32>
  return %o : tensor<?x4xf32>
}

// -----

// Tests that combining a dispatch directly uses the identity kernel (kind 5).
// CHECK-LABEL: func.func @identity_chain(
// CHECK:         call @moe_cpu_moe_ffn({{.*}}, %c5_i32, {{.*}})
func.func @identity_chain(%x: tensor<?x4xf32>, %e: tensor<?x1xi32>, %w: tensor<?x1xf32>) -> tensor<?x4xf32> {
  %r = moe.dispatch %x, %e : tensor<?x4xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x4xf32>, experts = 2, k = 1>
  %o = moe.combine %r, %w : !moe.routed<tensor<?x4xf32>, experts = 2, k = 1>, tensor<?x1xf32> -> tensor<?x4xf32>
  return %o : tensor<?x4xf32>
}

// -----

// Tests that a routed value that never reaches a combine is reported.
func.func @dangling(%x: tensor<?x4xf32>, %e: tensor<?x1xi32>) {
  // expected-error @+1 {{routed value used other than by moe.expert_ffn and moe.combine is not supported by the CPU backend}}
  %r = moe.dispatch %x, %e : tensor<?x4xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x4xf32>, experts = 2, k = 1>
  "test.use"(%r) : (!moe.routed<tensor<?x4xf32>, experts = 2, k = 1>) -> ()
  return
}
