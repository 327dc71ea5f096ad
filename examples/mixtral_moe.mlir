// Mixtral 8x7B sparse MoE block (d_model 4096, d_ff 14336, 8 experts, top-2),
// written as the .moe frontend emits it: softmax, top-k and an explicit
// renormalisation, which `moe-default-pipeline` folds into one moe.topk.
//
//   moe-opt examples/mixtral_moe.mlir --moe-default-pipeline
func.func @MixtralMoE(
    %x: tensor<?x4096xbf16> {moe.input = "x"},
    %router: tensor<4096x8xbf16> {moe.param = "router.weight"},
    %w_gate: tensor<8x4096x14336xbf16> {moe.param = "experts.w_gate"},
    %w_up: tensor<8x4096x14336xbf16> {moe.param = "experts.w_up"},
    %w_down: tensor<8x14336x4096xbf16> {moe.param = "experts.w_down"}) -> tensor<?x4096xbf16> {
  %logits = moe.dense %x, %router : tensor<?x4096xbf16>, tensor<4096x8xbf16> -> tensor<?x8xf32>
  %p = moe.softmax %logits dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %w, %e = moe.topk %p k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %sum = moe.reduce sum %w dim = 1 : tensor<?x2xf32> -> tensor<?x1xf32>
  %wn = moe.binary div %w, %sum : tensor<?x2xf32>, tensor<?x1xf32> -> tensor<?x2xf32>
  %r = moe.dispatch %x, %e : tensor<?x4096xbf16>, tensor<?x2xi32>
      -> !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>
  %y = moe.expert_ffn swiglu %r, %w_gate, %w_up, %w_down
      : !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>,
        tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>
  %out = moe.combine %y, %wn : !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>,
      tensor<?x2xf32> -> tensor<?x4096xbf16>
  return %out : tensor<?x4096xbf16>
}
