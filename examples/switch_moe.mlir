// Switch Transformer layer: top-1 routing with a capacity factor of 1.25, an
// MLP(relu) expert, and both auxiliary losses returned beside the output.
//
//   moe-opt examples/switch_moe.mlir --moe-default-pipeline
func.func @SwitchMoE(
    %x: tensor<?x768xf32> {moe.input = "x"},
    %router: tensor<768x64xf32> {moe.param = "router.weight"},
    %w_in: tensor<64x768x3072xf32> {moe.param = "experts.w_in"},
    %w_out: tensor<64x3072x768xf32> {moe.param = "experts.w_out"})
    -> (tensor<?x768xf32>, tensor<f32>, tensor<f32>) {
  %logits = moe.dense %x, %router : tensor<?x768xf32>, tensor<768x64xf32> -> tensor<?x64xf32>
  %p = moe.softmax %logits dim = 1 : tensor<?x64xf32> -> tensor<?x64xf32>
  %w, %e = moe.topk %p k = 1 : tensor<?x64xf32> -> tensor<?x1xf32>, tensor<?x1xi32>
  %r = moe.dispatch %x, %e : tensor<?x768xf32>, tensor<?x1xi32>
      -> !moe.routed<tensor<?x768xf32>, experts = 64, k = 1, capacity = 1.25>
  %y = moe.expert_ffn mlp(relu) %r, %w_in, %w_out
      : !moe.routed<tensor<?x768xf32>, experts = 64, k = 1, capacity = 1.25>,
        tensor<64x768x3072xf32>, tensor<64x3072x768xf32>
  %out = moe.combine %y, %w : !moe.routed<tensor<?x768xf32>, experts = 64, k = 1, capacity = 1.25>,
      tensor<?x1xf32> -> tensor<?x768xf32>
  %lb = moe.load_balance_loss %p, %e : tensor<?x64xf32>, tensor<?x1xi32> -> tensor<f32>
  %z = moe.z_loss %logits : tensor<?x64xf32> -> tensor<f32>
  return %out, %lb, %z : tensor<?x768xf32>, tensor<f32>, tensor<f32>
}
