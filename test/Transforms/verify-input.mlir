// RUN: moe-opt %s -split-input-file -allow-unregistered-dialect -moe-verify-input -verify-diagnostics | FileCheck %s

// Tests that a well-formed layer passes unchanged.
// CHECK-LABEL: func.func @router
func.func @router(%x: tensor<?x16xf32> {moe.input = "x"},
                  %w: tensor<16x4xf32> {moe.param = "router.weight"}) -> tensor<?x4xf32> {
  // CHECK: moe.dense
  %l = moe.dense %x, %w : tensor<?x16xf32>, tensor<16x4xf32> -> tensor<?x4xf32>
  return %l : tensor<?x4xf32>
}

// -----

// Tests that an op outside the legal dialects is reported.
func.func @foreign_op(%x: tensor<?x16xf32> {moe.input = "x"}) {
  // expected-error @+1 {{'test.op' is not legal at the entry of a moe pipeline (dialect 'test' is not in the legal set)}}
  "test.op"(%x) : (tensor<?x16xf32>) -> ()
  return
}

// -----

// Tests that unsupported element types are reported.
func.func @f64_result(%x: tensor<?x16xf32> {moe.input = "x"}) {
  // expected-error @+1 {{unsupported element type 'f64' in 'tensor<4xf64>' (expected f32, f16, bf16 or i32)}}
  %c = arith.constant dense<1.0> : tensor<4xf64>
  return
}

// -----

// Tests that an unnamed argument and a dynamic parameter are both reported, in one run.
// expected-error @+2 {{argument #1 of @unnamed is neither an input ('moe.input') nor a parameter ('moe.param')}}
// expected-error @+1 {{parameter 'router.weight' must have a static shape, got 'tensor<?x4xf32>'}}
func.func @unnamed(%x: tensor<?x16xf32> {moe.input = "x"}, %y: tensor<?x16xf32>,
                   %w: tensor<?x4xf32> {moe.param = "router.weight"}) {
  return
}

// -----

// Tests that two parameters with one name are reported.
// expected-error @+1 {{parameter name 'w' is used by arguments #1 and #2}}
func.func @duplicate(%x: tensor<?x16xf32> {moe.input = "x"}, %a: tensor<16xf32> {moe.param = "w"},
                     %b: tensor<16xf32> {moe.param = "w"}) {
  return
}

// -----

// Tests that only the token dimension of an input may be dynamic.
// expected-error @+1 {{input 'x' is dynamic in dimension 1; only the token dimension (0) may be dynamic}}
func.func @dynamic_hidden(%x: tensor<?x?xf32> {moe.input = "x"}) {
  return
}

// -----

// Tests that non-tensor arguments are reported.
// expected-error @+1 {{argument #0 of @scalar_arg must be a ranked tensor, got 'f32'}}
func.func @scalar_arg(%x: f32) {
  return
}
