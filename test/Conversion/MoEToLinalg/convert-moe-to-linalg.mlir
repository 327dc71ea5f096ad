// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s

// Tests that a broadcasting binary op becomes a linalg.generic whose maps read
// the stretched dimension at index 0, computing in f32 for bf16 storage.
// CHECK-LABEL: func.func @binary_broadcast(
// CHECK:         %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x8xbf16>
// CHECK:         linalg.generic {indexing_maps = [#[[ID:.*]], #[[ROW:.*]], #[[ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME:      ins(%{{.*}}, %{{.*}} : tensor<?x8xbf16>, tensor<1x8xbf16>) outs(%[[E]] : tensor<?x8xbf16>)
// CHECK:           arith.extf
// CHECK:           arith.extf
// CHECK:           arith.addf
// CHECK:           arith.truncf
func.func @binary_broadcast(%x: tensor<?x8xbf16>, %b: tensor<1x8xbf16>) -> tensor<?x8xbf16> {
  %y = moe.binary add %x, %b : tensor<?x8xbf16>, tensor<1x8xbf16> -> tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}

// -----

// Tests that a rank-0 operand reads its one element for every point.
// CHECK-LABEL: func.func @scalar_operand(
// CHECK:         linalg.generic {indexing_maps = [#{{.*}}, #[[SCALAR:.*]], #{{.*}}]
// CHECK:           arith.mulf
func.func @scalar_operand(%x: tensor<?x4xf32>, %s: tensor<f32>) -> tensor<?x4xf32> {
  %y = moe.binary mul %x, %s : tensor<?x4xf32>, tensor<f32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests the unary functions' scalar formulas: silu = x * sigmoid(x).
// CHECK-LABEL: func.func @unary_silu(
// CHECK:         linalg.generic
// CHECK:           arith.negf
// CHECK:           math.exp
// CHECK:           arith.addf
// CHECK:           arith.divf
// CHECK:           arith.mulf
func.func @unary_silu(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %y = moe.unary silu %x : tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that a mean reduction accumulates in f32 into a size-1 dimension and
// divides by the reduced size.
// CHECK-LABEL: func.func @reduce_mean(
// CHECK:         %[[INIT:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x1xf32>)
// CHECK:         %[[SUM:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} outs(%[[INIT]] : tensor<?x1xf32>)
// CHECK:         arith.sitofp
// CHECK:         linalg.generic {{.*}} ins(%[[SUM]] : tensor<?x1xf32>)
// CHECK:           arith.divf
// CHECK:           arith.truncf {{.*}} f32 to bf16
func.func @reduce_mean(%x: tensor<?x6xbf16>) -> tensor<?x1xbf16> {
  %y = moe.reduce mean %x dim = 1 : tensor<?x6xbf16> -> tensor<?x1xbf16>
  return %y : tensor<?x1xbf16>
}

// -----

// Tests the max-subtracted softmax: a max reduction, a sum of exp(x - max),
// then exp(x - max) / sum.
// CHECK-LABEL: func.func @softmax(
// CHECK:         linalg.generic {{.*}}"reduction"
// CHECK:           arith.maximumf
// CHECK:         linalg.generic {{.*}}"reduction"
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:         linalg.generic
// CHECK:           arith.subf
// CHECK:           math.exp
// CHECK:           arith.divf
func.func @softmax(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %y = moe.softmax %x dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Tests rmsnorm: a sum of squares, then x * rsqrt(ss / d + eps) * w.
// CHECK-LABEL: func.func @rmsnorm(
// CHECK:         linalg.generic {{.*}}"reduction"
// CHECK:           arith.mulf
// CHECK:         linalg.generic
// CHECK:           math.rsqrt
func.func @rmsnorm(%x: tensor<?x16xf32>, %w: tensor<16xf32>) -> tensor<?x16xf32> {
  %y = moe.rmsnorm %x, %w eps = 1.0e-06 : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
