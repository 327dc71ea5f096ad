// RUN: moe-opt %s --moe-differentiate --split-input-file --verify-diagnostics

// Tests that an op without a rule is refused by name.
moe.mesh @mesh axes = ["ep"] shape = [2]
func.func @no_rule(%x: tensor<4xf32> {moe.input = "x"}) -> tensor<8xf32> {
  // expected-error @+1 {{has no derivative rule (moe-differentiate)}}
  %g = moe.all_gather %x on @mesh axes = ["ep"] gather_dim = 0 : tensor<4xf32> -> tensor<8xf32>
  return %g : tensor<8xf32>
}

// -----

// Tests that a balance-updated parameter must choose experts.
// expected-error @+1 {{argument #1 is updated by its load (update = :balance) but chooses no topk or group_topk}}
func.func @no_choice(%x: tensor<?x4xf32> {moe.input = "x"},
                     %bias: tensor<1x4xf32> {moe.param = "bias", moe.trainable = false, moe.update = "balance"})
    -> tensor<?x4xf32> {
  %y = moe.binary add %x, %bias : tensor<?x4xf32>, tensor<1x4xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
