// DeepSeek-V3 MoE block (d_model 7168, expert d_ff 2048, 256 routed experts
// in 8 groups, top-8 from the best 4 groups, one shared expert, routed scaling
// 2.5): sigmoid scores, selection on scores plus a non-trainable correction
// bias, weights gathered from the unbiased scores, renormalised and scaled.
//
//   moe-opt examples/deepseek_v3_moe.mlir --moe-default-pipeline
func.func @DeepSeekV3MoE(
    %x: tensor<?x7168xbf16> {moe.input = "x"},
    %router: tensor<7168x256xbf16> {moe.param = "router.weight"},
    %bias: tensor<256xf32> {moe.param = "bias", moe.trainable = false},
    %w_gate: tensor<256x7168x2048xbf16> {moe.param = "experts.w_gate"},
    %w_up: tensor<256x7168x2048xbf16> {moe.param = "experts.w_up"},
    %w_down: tensor<256x2048x7168xbf16> {moe.param = "experts.w_down"},
    %s_gate: tensor<1x7168x2048xbf16> {moe.param = "shared.w_gate"},
    %s_up: tensor<1x7168x2048xbf16> {moe.param = "shared.w_up"},
    %s_down: tensor<1x2048x7168xbf16> {moe.param = "shared.w_down"}) -> tensor<?x7168xbf16> {
  %scale = arith.constant dense<2.5> : tensor<f32>
  %logits = moe.dense %x, %router : tensor<?x7168xbf16>, tensor<7168x256xbf16> -> tensor<?x256xf32>
  %s = moe.unary sigmoid %logits : tensor<?x256xf32>
  %b = tensor.expand_shape %bias [[0, 1]] output_shape [1, 256] : tensor<256xf32> into tensor<1x256xf32>
  %biased = moe.binary add %s, %b : tensor<?x256xf32>, tensor<1x256xf32> -> tensor<?x256xf32>
  %e = moe.group_topk %biased k = 8 groups = 8 top_groups = 4 : tensor<?x256xf32> -> tensor<?x8xi32>
  %w = moe.gather %s, %e : tensor<?x256xf32>, tensor<?x8xi32> -> tensor<?x8xf32>
  %sum = moe.reduce sum %w dim = 1 : tensor<?x8xf32> -> tensor<?x1xf32>
  %wn = moe.binary div %w, %sum : tensor<?x8xf32>, tensor<?x1xf32> -> tensor<?x8xf32>
  %ws = moe.binary mul %wn, %scale : tensor<?x8xf32>, tensor<f32> -> tensor<?x8xf32>
  %r = moe.dispatch %x, %e : tensor<?x7168xbf16>, tensor<?x8xi32>
      -> !moe.routed<tensor<?x7168xbf16>, experts = 256, k = 8>
  %y = moe.expert_ffn swiglu %r, %w_gate, %w_up, %w_down
      : !moe.routed<tensor<?x7168xbf16>, experts = 256, k = 8>,
        tensor<256x7168x2048xbf16>, tensor<256x7168x2048xbf16>, tensor<256x2048x7168xbf16>
  %routed = moe.combine %y, %ws : !moe.routed<tensor<?x7168xbf16>, experts = 256, k = 8>,
      tensor<?x8xf32> -> tensor<?x7168xbf16>
  // The shared expert: every token to the one expert with weight 1.
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x7168xbf16>
  %zero = arith.constant 0 : i32
  %one = arith.constant 1.0 : f32
  %se = tensor.splat %zero[%t] : tensor<?x1xi32>
  %sw = tensor.splat %one[%t] : tensor<?x1xf32>
  %sr = moe.dispatch %x, %se : tensor<?x7168xbf16>, tensor<?x1xi32>
      -> !moe.routed<tensor<?x7168xbf16>, experts = 1, k = 1>
  %sy = moe.expert_ffn swiglu %sr, %s_gate, %s_up, %s_down
      : !moe.routed<tensor<?x7168xbf16>, experts = 1, k = 1>,
        tensor<1x7168x2048xbf16>, tensor<1x7168x2048xbf16>, tensor<1x2048x7168xbf16>
  %shared = moe.combine %sy, %sw : !moe.routed<tensor<?x7168xbf16>, experts = 1, k = 1>,
      tensor<?x1xf32> -> tensor<?x7168xbf16>
  %out = moe.binary add %routed, %shared : tensor<?x7168xbf16>, tensor<?x7168xbf16> -> tensor<?x7168xbf16>
  return %out : tensor<?x7168xbf16>
}
