// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s

// Tests unary_grad: dy .* f'(x), one elementwise generic.
// CHECK-LABEL: func.func @unary(
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]
// CHECK:           math.exp
// CHECK:           arith.mulf
// CHECK-NOT:     moe.unary_grad
func.func @unary(%x: tensor<?x8xf32>, %dy: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %dx = moe.unary_grad silu %x, %dy : tensor<?x8xf32>
  return %dx : tensor<?x8xf32>
}

// -----

// Tests binary_grad with a broadcast operand: the full one elementwise, the
// [1, 8] one summed over dimension 0 (a reduction into a zero fill).
// CHECK-LABEL: func.func @binary(
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]
// CHECK:         linalg.fill
// CHECK:         linalg.generic {{.*}}iterator_types = ["reduction", "parallel"]
// CHECK-NOT:     moe.binary_grad
func.func @binary(%x: tensor<?x8xf32>, %b: tensor<1x8xf32>, %dy: tensor<?x8xf32>) -> (tensor<?x8xf32>, tensor<1x8xf32>) {
  %dl, %dr = moe.binary_grad mul %x, %b, %dy : tensor<?x8xf32>, tensor<1x8xf32>, tensor<?x8xf32>
  return %dl, %dr : tensor<?x8xf32>, tensor<1x8xf32>
}

// -----

// Tests reduce_grad max (the first maximum's position, then a select) and
// softmax_grad (a sum along the dimension, then elementwise).
// CHECK-LABEL: func.func @reductions(
// CHECK:         linalg.index 1
// CHECK:         arith.minimumf
// CHECK:         arith.select
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK-NOT:     moe.softmax_grad
func.func @reductions(%x: tensor<?x8xf32>, %dm: tensor<?x1xf32>, %y: tensor<?x8xf32>, %dy: tensor<?x8xf32>)
    -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %a = moe.reduce_grad max %x, %dm dim = 1 : tensor<?x8xf32>, tensor<?x1xf32>
  %b = moe.softmax_grad %y, %dy dim = 1 : tensor<?x8xf32>
  return %a, %b : tensor<?x8xf32>, tensor<?x8xf32>
}
