// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-dense-glu=true' --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu-kernels --split-input-file | FileCheck %s --check-prefix=OFF

// Tests gemm-dense-glu: a shared expert's SwiGLU written out,
// silu.(x W_gate) .* (x W_up), is one GEMM of both weights (B0 the gate's,
// B1 the up's) with SwiGLU in its epilogue; the up product, the silu and the
// mul are gone. Off (the default until checked on a GPU): two GEMMs, and the
// elementwise ops stay for the linalg lowering.
// CHECK-LABEL: func.func @shared_expert(
// CHECK-SAME:      %[[X:[^:]*]]: tensor<?x256xbf16>, %[[WG:[^:]*]]: tensor<256x512xbf16>, %[[WU:[^:]*]]: tensor<256x512xbf16>
// CHECK-DAG:     %[[G:.*]] = bufferization.to_buffer %[[WG]]
// CHECK-DAG:     %[[U:.*]] = bufferization.to_buffer %[[WU]]
// CHECK-NOT:     moe.unary
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_silu_se{{(_ws)?}}_glu blocks
// CHECK-NOT:     gpu.launch_func
// CHECK-NOT:     moe.binary
// CHECK:         return
// OFF-LABEL: func.func @shared_expert(
// OFF:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// OFF:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// OFF:         moe.unary silu
// OFF:         moe.binary mul
func.func @shared_expert(%x: tensor<?x256xbf16>, %wg: tensor<256x512xbf16>, %wu: tensor<256x512xbf16>) -> tensor<?x512xbf16> {
  %g = moe.dense %x, %wg : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %u = moe.dense %x, %wu : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %a = moe.unary silu %g : tensor<?x512xbf16>
  %h = moe.binary mul %u, %a : tensor<?x512xbf16>, tensor<?x512xbf16> -> tensor<?x512xbf16>
  return %h : tensor<?x512xbf16>
}

// -----

// The up product read elsewhere too (as a training forward keeps it): not fused.
// CHECK-LABEL: func.func @up_kept(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// CHECK:         moe.unary silu
// CHECK:         moe.binary mul
func.func @up_kept(%x: tensor<?x256xbf16>, %wg: tensor<256x512xbf16>, %wu: tensor<256x512xbf16>) -> (tensor<?x512xbf16>, tensor<?x512xbf16>) {
  %g = moe.dense %x, %wg : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %u = moe.dense %x, %wu : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %a = moe.unary silu %g : tensor<?x512xbf16>
  %h = moe.binary mul %a, %u : tensor<?x512xbf16>, tensor<?x512xbf16> -> tensor<?x512xbf16>
  return %h, %u : tensor<?x512xbf16>, tensor<?x512xbf16>
}

// -----

// Another activation (gelu): not SwiGLU, not fused.
// CHECK-LABEL: func.func @gelu_gate(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_identity_se{{(_ws)?}} blocks
// CHECK:         moe.unary gelu
func.func @gelu_gate(%x: tensor<?x256xbf16>, %wg: tensor<256x512xbf16>, %wu: tensor<256x512xbf16>) -> tensor<?x512xbf16> {
  %g = moe.dense %x, %wg : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %u = moe.dense %x, %wu : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %a = moe.unary gelu %g : tensor<?x512xbf16>
  %h = moe.binary mul %a, %u : tensor<?x512xbf16>, tensor<?x512xbf16> -> tensor<?x512xbf16>
  return %h : tensor<?x512xbf16>
}

// -----

// The up product first: fused all the same, the gate's weight still B0.
// CHECK-LABEL: func.func @up_first(
// CHECK:         %[[GATE:.*]] = bufferization.to_buffer %arg1
// CHECK:         %[[GATE2:.*]] = memref.collapse_shape %[[GATE]]
// CHECK:         %[[GATE1:.*]] = memref.cast %[[GATE2]]
// CHECK:         %[[UP:.*]] = bufferization.to_buffer %arg2
// CHECK:         %[[UP2:.*]] = memref.collapse_shape %[[UP]]
// CHECK:         %[[UP1:.*]] = memref.cast %[[UP2]]
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma{{.*}}_k256_n512_silu_se{{(_ws)?}}_glu blocks
// CHECK-SAME:      args(%{{[^:]*}} : memref<?xbf16>, %[[GATE1]] : memref<?xbf16>, %[[UP1]] : memref<?xbf16>,
// CHECK-NOT:     gpu.launch_func
// CHECK-NOT:     moe.binary
// CHECK:         return
func.func @up_first(%x: tensor<?x256xbf16>, %wg: tensor<256x512xbf16>, %wu: tensor<256x512xbf16>) -> tensor<?x512xbf16> {
  %u = moe.dense %x, %wu : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %g = moe.dense %x, %wg : tensor<?x256xbf16>, tensor<256x512xbf16> -> tensor<?x512xbf16>
  %a = moe.unary silu %g : tensor<?x512xbf16>
  %h = moe.binary mul %a, %u : tensor<?x512xbf16>, tensor<?x512xbf16> -> tensor<?x512xbf16>
  return %h : tensor<?x512xbf16>
}
