// RUN: moe-opt %s -split-input-file -canonicalize | FileCheck %s

// Tests that Mixtral's routing (softmax, top-k, renormalise) folds into one topk.
// CHECK-LABEL: func.func @mixtral_routing
// CHECK-SAME: (%[[L:.*]]: tensor<?x8xf32>)
func.func @mixtral_routing(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  // CHECK-NEXT: %[[V:.*]], %[[I:.*]] = moe.topk %[[L]] k = 2 score = softmax renormalize : tensor<?x8xf32>
  // CHECK-NEXT: return %[[V]], %[[I]]
  %p = moe.softmax %l dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %v, %i = moe.topk %p k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %s = moe.reduce sum %v dim = 1 : tensor<?x2xf32> -> tensor<?x1xf32>
  %w = moe.binary div %v, %s : tensor<?x2xf32>, tensor<?x1xf32> -> tensor<?x2xf32>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// Tests that a sigmoid score and a constant routed scaling factor fold into topk,
// and that scales multiply.
// CHECK-LABEL: func.func @sigmoid_scaled
// CHECK-SAME: (%[[L:.*]]: tensor<?x8xf32>)
func.func @sigmoid_scaled(%l: tensor<?x8xf32>) -> tensor<?x2xf32> {
  // CHECK-NEXT: %[[V:.*]], %{{.*}} = moe.topk %[[L]] k = 2 score = sigmoid scale = 5.000000e+00
  // CHECK-NEXT: return %[[V]]
  %c = arith.constant dense<2.5> : tensor<f32>
  %two = arith.constant dense<2.0> : tensor<f32>
  %s = moe.unary sigmoid %l : tensor<?x8xf32>
  %v, %i = moe.topk %s k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w = moe.binary mul %v, %c : tensor<?x2xf32>, tensor<f32> -> tensor<?x2xf32>
  %x = moe.binary mul %two, %w : tensor<f32>, tensor<?x2xf32> -> tensor<?x2xf32>
  return %x : tensor<?x2xf32>
}

// -----

// Tests that the softmax stays when something else reads it (the load-balance loss),
// while topk still takes the logits.
// CHECK-LABEL: func.func @softmax_kept_for_loss
// CHECK-SAME: (%[[L:.*]]: tensor<?x8xf32>)
func.func @softmax_kept_for_loss(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<f32>) {
  // CHECK-DAG: %[[P:.*]] = moe.softmax %[[L]] dim = 1
  // CHECK-DAG: %[[V:.*]], %[[I:.*]] = moe.topk %[[L]] k = 2 score = softmax :
  // CHECK: moe.load_balance_loss %[[P]], %[[I]]
  %p = moe.softmax %l dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %v, %i = moe.topk %p k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %loss = moe.load_balance_loss %p, %i : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  return %v, %loss : tensor<?x2xf32>, tensor<f32>
}

// -----

// Tests what must not fold: a softmax over tokens, a log-softmax, a renormalisation
// after a scale, and values read by anything else.
// CHECK-LABEL: func.func @no_fold
func.func @no_fold(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>) {
  // CHECK: moe.softmax %{{.*}} dim = 0
  // CHECK: moe.topk %{{.*}} k = 2 :
  %p0 = moe.softmax %l dim = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
  %v0, %i0 = moe.topk %p0 k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.softmax %{{.*}} dim = 1 log
  %p1 = moe.softmax %l dim = 1 log : tensor<?x8xf32> -> tensor<?x8xf32>
  %v1, %i1 = moe.topk %p1 k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.topk %{{.*}} k = 2 scale = 2.000000e+00 :
  // CHECK: moe.reduce sum
  // CHECK: moe.binary div
  %v2, %i2 = moe.topk %l k = 2 scale = 2.0 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %s2 = moe.reduce sum %v2 dim = 1 : tensor<?x2xf32> -> tensor<?x1xf32>
  %w2 = moe.binary div %v2, %s2 : tensor<?x2xf32>, tensor<?x1xf32> -> tensor<?x2xf32>
  // CHECK: %[[V3:.*]], %{{.*}} = moe.topk %{{.*}} k = 2 :
  // CHECK: moe.binary mul %[[V3]]
  %c = arith.constant dense<3.0> : tensor<f32>
  %v3, %i3 = moe.topk %l k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w3 = moe.binary mul %v3, %c : tensor<?x2xf32>, tensor<f32> -> tensor<?x2xf32>
  %u3 = moe.binary add %v3, %w3 : tensor<?x2xf32>, tensor<?x2xf32> -> tensor<?x2xf32>
  return %v0, %v1, %w2, %u3 : tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>
}

// -----

// Tests that the score function still folds when the renormalisation folded first.
// CHECK-LABEL: func.func @score_after_renormalize
// CHECK-SAME: (%[[L:.*]]: tensor<?x8xf32>)
func.func @score_after_renormalize(%l: tensor<?x8xf32>) -> tensor<?x2xf32> {
  // CHECK-NEXT: %[[V:.*]], %{{.*}} = moe.topk %[[L]] k = 2 score = softmax renormalize :
  // CHECK-NEXT: return %[[V]]
  %p = moe.softmax %l dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %v, %i = moe.topk %p k = 2 renormalize : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %v : tensor<?x2xf32>
}
