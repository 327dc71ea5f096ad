// RUN: moe-opt %s --moe-differentiate --verify-diagnostics

// Tests that an op without a rule is refused by name.
moe.mesh @mesh axes = ["ep"] shape = [2]
func.func @no_rule(%x: tensor<4xf32> {moe.input = "x"}) -> tensor<8xf32> {
  // expected-error @+1 {{has no derivative rule (moe-differentiate)}}
  %g = moe.all_gather %x on @mesh axes = ["ep"] gather_dim = 0 : tensor<4xf32> -> tensor<8xf32>
  return %g : tensor<8xf32>
}
