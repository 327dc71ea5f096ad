// RUN: moe-opt %s -split-input-file -allow-unregistered-dialect -moe-verify-input="require-arg-names=false extra-dialects=test" | FileCheck %s

// Tests that require-arg-names=false accepts unnamed arguments.
// CHECK-LABEL: func.func @unnamed_ok
func.func @unnamed_ok(%x: tensor<?x16xf32>) {
  return
}

// -----

// Tests that extra-dialects makes another dialect's ops legal.
// CHECK-LABEL: func.func @extra_dialect
// CHECK: "test.op"
func.func @extra_dialect(%x: tensor<?x16xf32>) {
  "test.op"(%x) : (tensor<?x16xf32>) -> ()
  return
}
