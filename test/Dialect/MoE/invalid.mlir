// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier message of the moe dialect.

// Tests that a routed type whose tokens are not [tokens, d] is rejected.
func.func @routed_rank(%x: tensor<?x4x8xf32>, %e: tensor<?x2xi32>) {
  // expected-error @+1 {{expects routed tokens of shape [tokens, d], got 'tensor<?x4x8xf32>'}}
  %r = moe.dispatch %x, %e : tensor<?x4x8xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x4x8xf32>, experts = 8, k = 2>
  return
}

// -----

// Tests that a routed type with a dynamic hidden dimension is rejected.
func.func @routed_dynamic_hidden(%r: !moe.routed<tensor<?x?xf32>, experts = 8, k = 2>) {
  // expected-error @-1 {{expects a static hidden dimension in 'tensor<?x?xf32>'}}
  return
}

// -----

// Tests that a routed type of integer rows is rejected.
// expected-error @+1 {{expects float routed tokens, got 'i32'}}
func.func @routed_int(%r: !moe.routed<tensor<?x8xi32>, experts = 8, k = 2>) {
  return
}

// -----

// Tests that a routed type with no experts is rejected.
// expected-error @+1 {{expects a positive expert count, got 0}}
func.func @routed_no_experts(%r: !moe.routed<tensor<?x8xf32>, experts = 0, k = 2>) {
  return
}

// -----

// Tests that a routed type with k above the expert count is rejected.
// expected-error @+1 {{expects k (3) to be between 1 and the expert count (2)}}
func.func @routed_k(%r: !moe.routed<tensor<?x8xf32>, experts = 2, k = 3>) {
  return
}

// -----

// Tests that a routed type with a non-positive capacity factor is rejected.
// expected-error @+1 {{expects a positive capacity factor, got -1}}
func.func @routed_capacity(%r: !moe.routed<tensor<?x8xf32>, experts = 2, k = 1, capacity = -1.0>) {
  return
}

// -----

// Tests that topk needs a static expert count.
func.func @topk_dynamic_experts(%l: tensor<?x?xf32>) {
  // expected-error @+1 {{'moe.topk' op expects a static number of experts, got 'tensor<?x?xf32>'}}
  %v, %i = moe.topk %l k = 2 : tensor<?x?xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return
}

// -----

// Tests that topk with k above the expert count is rejected.
func.func @topk_k_exceeds_experts(%l: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expects k (8) to be at most the number of experts (4)}}
  %v, %i = moe.topk %l k = 8 : tensor<16x4xf32> -> tensor<16x8xf32>, tensor<16x8xi32>
  return
}

// -----

// Tests that topk with k = 0 violates the attribute constraint.
func.func @topk_k_zero(%l: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.topk' op attribute 'k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %v, %i = moe.topk %l k = 0 : tensor<16x4xf32> -> tensor<16x0xf32>, tensor<16x0xi32>
  return
}

// -----

// Tests that topk rejects a non-positive scale.
func.func @topk_scale(%l: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expects a positive scale, got 0}}
  %v, %i = moe.topk %l k = 2 scale = 0.0 : tensor<16x4xf32> -> tensor<16x2xf32>, tensor<16x2xi32>
  return
}

// -----

// Tests that topk values must be [tokens, k].
func.func @topk_values_shape(%l: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expects values of shape [16, 2], got [16, 3]}}
  %v, %i = moe.topk %l k = 2 : tensor<16x4xf32> -> tensor<16x3xf32>, tensor<16x2xi32>
  return
}

// -----

// Tests that topk indices must be [tokens, k].
func.func @topk_indices_shape(%l: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.topk' op expects indices of shape [16, 2], got [8, 2]}}
  %v, %i = moe.topk %l k = 2 : tensor<16x4xf32> -> tensor<16x2xf32>, tensor<8x2xi32>
  return
}

// -----

// Tests that topk values are always f32.
func.func @topk_values_type(%l: tensor<16x4xbf16>) {
  // expected-error @+1 {{'moe.topk' op result #0 must be 2D tensor of 32-bit float values}}
  %v, %i = moe.topk %l k = 2 : tensor<16x4xbf16> -> tensor<16x2xbf16>, tensor<16x2xi32>
  return
}

// -----

// Tests that group_topk needs a static expert count.
func.func @group_topk_dynamic(%s: tensor<?x?xf32>) {
  // expected-error @+1 {{'moe.group_topk' op expects a static number of experts, got 'tensor<?x?xf32>'}}
  %e = moe.group_topk %s k = 2 groups = 2 top_groups = 1 : tensor<?x?xf32> -> tensor<?x2xi32>
  return
}

// -----

// Tests that group_topk needs groups that divide the experts.
func.func @group_topk_divisible(%s: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.group_topk' op expects the number of experts (256) to be divisible by groups (7)}}
  %e = moe.group_topk %s k = 8 groups = 7 top_groups = 4 : tensor<?x256xf32> -> tensor<?x8xi32>
  return
}

// -----

// Tests that group_topk cannot keep more groups than it has.
func.func @group_topk_top_groups(%s: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.group_topk' op expects top_groups (9) to be at most groups (8)}}
  %e = moe.group_topk %s k = 8 groups = 8 top_groups = 9 : tensor<?x256xf32> -> tensor<?x8xi32>
  return
}

// -----

// Tests that group_topk cannot pick more experts than the kept groups hold.
func.func @group_topk_k(%s: tensor<?x16xf32>) {
  // expected-error @+1 {{'moe.group_topk' op expects k (5) to be at most the experts in the kept groups (4)}}
  %e = moe.group_topk %s k = 5 groups = 8 top_groups = 2 : tensor<?x16xf32> -> tensor<?x5xi32>
  return
}

// -----

// Tests that group_topk indices must be [tokens, k].
func.func @group_topk_shape(%s: tensor<?x256xf32>) {
  // expected-error @+1 {{'moe.group_topk' op expects indices of shape [?, 8], got [?, 4]}}
  %e = moe.group_topk %s k = 8 groups = 8 top_groups = 4 : tensor<?x256xf32> -> tensor<?x4xi32>
  return
}

// -----

// Tests that gather needs as many index rows as input rows.
func.func @gather_tokens(%s: tensor<16x8xf32>, %e: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.gather' op expects input (16 rows) and indices (8 rows) to have the same number of tokens}}
  %w = moe.gather %s, %e : tensor<16x8xf32>, tensor<8x2xi32> -> tensor<16x2xf32>
  return
}

// -----

// Tests that gather's result has the indices' shape.
func.func @gather_shape(%s: tensor<16x8xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gather' op expects result of shape [16, 2], got [16, 8]}}
  %w = moe.gather %s, %e : tensor<16x8xf32>, tensor<16x2xi32> -> tensor<16x8xf32>
  return
}

// -----

// Tests that gather keeps the input element type.
func.func @gather_type(%s: tensor<16x8xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gather' op expects result element type 'bf16' to match the input element type 'f32'}}
  %w = moe.gather %s, %e : tensor<16x8xf32>, tensor<16x2xi32> -> tensor<16x2xbf16>
  return
}

// -----

// Tests that dispatch's routed type must carry the input type.
func.func @dispatch_type(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects the routed tokens 'tensor<?x64xf32>' to match the input type 'tensor<?x64xbf16>'}}
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>
  return
}

// -----

// Tests that dispatch needs one index row per token.
func.func @dispatch_tokens(%x: tensor<16x64xf32>, %e: tensor<12x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects input (16 rows) and indices (12 rows) to have the same number of tokens}}
  %r = moe.dispatch %x, %e : tensor<16x64xf32>, tensor<12x2xi32> -> !moe.routed<tensor<16x64xf32>, experts = 8, k = 2>
  return
}

// -----

// Tests that dispatch's k is the number of index columns.
func.func @dispatch_k(%x: tensor<?x64xf32>, %e: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects k (3) of the routed type to match the index columns (2)}}
  %r = moe.dispatch %x, %e : tensor<?x64xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 3>
  return
}

// -----

// Tests that a GLU expert takes three weights.
func.func @ffn_count(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %a: tensor<8x64x128xf32>, %b: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects 3 weights for swiglu, got 2}}
  %y = moe.expert_ffn swiglu %r, %a, %b : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
  return
}

// -----

// Tests that an MLP expert needs an activation.
func.func @ffn_mlp_act(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %a: tensor<8x64x128xf32>, %b: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects an activation for an mlp expert}}
  %y = moe.expert_ffn mlp %r, %a, %b : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
  return
}

// -----

// Tests that a GLU expert takes no activation.
func.func @ffn_glu_act(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %a: tensor<8x64x128xf32>, %b: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects no activation for a geglu expert}}
  %y = moe.expert_ffn geglu(relu) %r, %a, %a, %b : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
  return
}

// -----

// Tests that expert weights are stacked [experts, d, f] and [experts, f, d].
func.func @ffn_shape(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %a: tensor<4x64x128xf32>, %b: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects weight #0 of shape [8, 64, 128], got [4, 64, 128]}}
  %y = moe.expert_ffn mlp(relu) %r, %a, %b : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<4x64x128xf32>, tensor<8x128x64xf32>
  return
}

// -----

// Tests that combine weights are [tokens, k].
func.func @combine_weights(%y: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %w: tensor<?x3xf32>) {
  // expected-error @+1 {{'moe.combine' op expects weights of shape [?, 2], got [?, 3]}}
  %o = moe.combine %y, %w : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<?x3xf32> -> tensor<?x64xf32>
  return
}

// -----

// Tests that combine returns [tokens, d].
func.func @combine_result(%y: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, %w: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects result of shape [?, 64], got [?, 32]}}
  %o = moe.combine %y, %w : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<?x2xf32> -> tensor<?x32xf32>
  return
}

// -----

// Tests that dense needs weight rows equal to input columns.
func.func @dense_inner(%x: tensor<?x16xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.dense' op expects weight rows (8) to match input columns (16)}}
  %y = moe.dense %x, %w : tensor<?x16xf32>, tensor<8x4xf32> -> tensor<?x4xf32>
  return
}

// -----

// Tests that dense bias has the weight's column count.
func.func @dense_bias(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.dense' op expects a bias of size 4 (the weight columns), got 8}}
  %y = moe.dense %x, %w bias %b : tensor<?x16xf32>, tensor<16x4xf32>, tensor<8xf32> -> tensor<?x4xf32>
  return
}

// -----

// Tests that dense returns [m, out].
func.func @dense_result(%x: tensor<?x16xf32>, %w: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.dense' op expects result of shape [?, 4], got [?, 16]}}
  %y = moe.dense %x, %w : tensor<?x16xf32>, tensor<16x4xf32> -> tensor<?x16xf32>
  return
}

// -----

// Tests that rmsnorm needs a positive eps.
func.func @rmsnorm_eps(%x: tensor<?x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.rmsnorm' op expects a positive eps, got 0}}
  %n = moe.rmsnorm %x, %g eps = 0.0 : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32>
  return
}

// -----

// Tests that rmsnorm's weight matches the last dimension.
func.func @rmsnorm_weight(%x: tensor<?x16xf32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{'moe.rmsnorm' op expects a weight of size 16 (the last input dimension), got 8}}
  %n = moe.rmsnorm %x, %g eps = 1.0e-6 : tensor<?x16xf32>, tensor<8xf32> -> tensor<?x16xf32>
  return
}

// -----

// Tests that rmsnorm keeps the input shape.
func.func @rmsnorm_result(%x: tensor<?x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.rmsnorm' op expects result of shape [?, 16], got [?, 8]}}
  %n = moe.rmsnorm %x, %g eps = 1.0e-6 : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that binary operands have one rank, or one is a scalar.
func.func @binary_rank(%a: tensor<?x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.binary' op expects operands of equal rank or a scalar, got rank 2 and 1}}
  %c = moe.binary add %a, %b : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that binary operands share an element type.
func.func @binary_type(%a: tensor<?x8xf32>, %b: tensor<?x8xbf16>) {
  // expected-error @+1 {{'moe.binary' op expects operands and result of one element type, got 'f32', 'bf16' and 'f32'}}
  %c = moe.binary mul %a, %b : tensor<?x8xf32>, tensor<?x8xbf16> -> tensor<?x8xf32>
  return
}

// -----

// Tests that binary operand shapes must broadcast.
func.func @binary_broadcast(%a: tensor<?x8xf32>, %b: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.binary' op expects broadcast-compatible shapes, got [?, 8] and [?, 4]}}
  %c = moe.binary max %a, %b : tensor<?x8xf32>, tensor<?x4xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that binary returns the broadcast shape.
func.func @binary_result(%a: tensor<4x8xf32>, %b: tensor<4x1xf32>) {
  // expected-error @+1 {{'moe.binary' op expects result (the broadcast shape) of shape [4, 8], got [4, 1]}}
  %c = moe.binary div %a, %b : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x1xf32>
  return
}

// -----

// Tests that reduce's dim is within the rank.
func.func @reduce_dim(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expects dim (2) to be less than the rank (2)}}
  %s = moe.reduce sum %a dim = 2 : tensor<?x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that reduce keeps the element type.
func.func @reduce_type(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expects result element type 'bf16' to match the input element type 'f32'}}
  %s = moe.reduce mean %a dim = 1 : tensor<?x8xf32> -> tensor<?x1xbf16>
  return
}

// -----

// Tests that reduce keeps the reduced dimension with size 1.
func.func @reduce_keepdim(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.reduce' op expects result of shape [?, 1], got [?, 8]}}
  %s = moe.reduce sum %a dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that softmax's dim is within the rank.
func.func @softmax_dim(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.softmax' op expects dim (5) to be less than the rank (2)}}
  %p = moe.softmax %a dim = 5 : tensor<?x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// Tests that softmax keeps the input shape.
func.func @softmax_shape(%a: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.softmax' op expects result of shape [?, 8], got [?, 4]}}
  %p = moe.softmax %a dim = 1 : tensor<?x8xf32> -> tensor<?x4xf32>
  return
}

// -----

// Tests that load_balance_loss needs one index row per token.
func.func @lbl_tokens(%p: tensor<16x8xf32>, %e: tensor<4x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op expects probs (16 rows) and indices (4 rows) to have the same number of tokens}}
  %l = moe.load_balance_loss %p, %e : tensor<16x8xf32>, tensor<4x2xi32> -> tensor<f32>
  return
}

// -----

// Tests that a mesh has at least one axis.
// expected-error @+1 {{'moe.mesh' op expects at least one axis}}
moe.mesh @mesh axes = [] shape = []

// -----

// Tests that a mesh names every axis it sizes.
// expected-error @+1 {{'moe.mesh' op expects as many axis names (2) as axis sizes (1)}}
moe.mesh @mesh axes = ["dp", "ep"] shape = [2]

// -----

// Tests that mesh axis names are unique.
// expected-error @+1 {{'moe.mesh' op expects unique axis names, "dp" appears twice}}
moe.mesh @mesh axes = ["dp", "dp"] shape = [2, 2]

// -----

// Tests that mesh axes have positive sizes.
// expected-error @+1 {{'moe.mesh' op expects positive axis sizes, got 0 for axis "ep"}}
moe.mesh @mesh axes = ["dp", "ep"] shape = [2, 0]

// -----

// Tests that a collective names a mesh.
func.func @not_a_mesh(%x: tensor<8xf32>) {
  // expected-error @+1 {{'moe.all_reduce' op expects @not_a_mesh to name a 'moe.mesh'}}
  %y = moe.all_reduce %x on @not_a_mesh axes = ["dp"] reduction = sum : tensor<8xf32>
  return
}

// -----

// Tests that a collective names an axis of its mesh.
moe.mesh @mesh axes = ["dp", "ep"] shape = [2, 4]
func.func @no_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{'moe.all_reduce' op expects mesh @mesh to have an axis "tp"}}
  %y = moe.all_reduce %x on @mesh axes = ["tp"] reduction = sum : tensor<8xf32>
  return
}

// -----

// Tests that all_to_all's split_dim is within the rank.
moe.mesh @mesh axes = ["ep"] shape = [4]
func.func @a2a_dim(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op expects split_dim (2) to be less than the rank (2)}}
  %y = moe.all_to_all %x on @mesh axes = ["ep"] split_dim = 2 concat_dim = 0 : tensor<8x64xf32> -> tensor<8x64xf32>
  return
}

// -----

// Tests that all_to_all splits into equal chunks.
moe.mesh @mesh axes = ["ep"] shape = [4]
func.func @a2a_divisible(%x: tensor<6x64xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op expects the split_dim size (6) to be divisible by the group size (4)}}
  %y = moe.all_to_all %x on @mesh axes = ["ep"] split_dim = 0 concat_dim = 0 : tensor<6x64xf32> -> tensor<6x64xf32>
  return
}

// -----

// Tests that all_gather multiplies the gathered dimension by the axis size.
moe.mesh @mesh axes = ["dp"] shape = [2]
func.func @gather_result(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.all_gather' op expects result type 'tensor<16x64xf32>', got 'tensor<8x64xf32>'}}
  %y = moe.all_gather %x on @mesh axes = ["dp"] gather_dim = 0 : tensor<8x64xf32> -> tensor<8x64xf32>
  return
}

// -----

// Tests that all_gather's gather_dim is within the rank.
moe.mesh @mesh axes = ["dp"] shape = [2]
func.func @gather_dim(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.all_gather' op expects gather_dim (3) to be less than the rank (2)}}
  %y = moe.all_gather %x on @mesh axes = ["dp"] gather_dim = 3 : tensor<8x64xf32> -> tensor<8x64xf32>
  return
}

// -----

// Tests that row_offset takes rows.
moe.mesh @mesh axes = ["dp"] shape = [2]
func.func @row_offset_scalar(%x: tensor<f32>) {
  // expected-error @+1 {{'moe.row_offset' op takes rows: a tensor of rank 1 or more, got 'tensor<f32>'}}
  %o = moe.row_offset %x on @mesh axes = ["dp"] : tensor<f32>
  return
}

// -----

// Tests that reduce_scatter keeps the element type.
moe.mesh @mesh axes = ["dp"] shape = [2]
func.func @rs_type(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.reduce_scatter' op expects result element type 'bf16' to match the input element type 'f32'}}
  %y = moe.reduce_scatter %x on @mesh axes = ["dp"] scatter_dim = 0 reduction = sum : tensor<8x64xf32> -> tensor<4x64xbf16>
  return
}

// -----

// Tests that moe.input names an argument with a non-empty string.
// expected-error @+1 {{expects 'moe.input' of argument #0 to be a non-empty string}}
func.func @input_name(%x: tensor<?x8xf32> {moe.input = ""}) {
  return
}

// -----

// Tests that moe.trainable is a boolean.
// expected-error @+1 {{expects 'moe.trainable' of argument #0 to be a boolean}}
func.func @trainable(%x: tensor<8xf32> {moe.param = "bias", moe.trainable = 1 : i32}) {
  return
}

// -----

// Tests that unknown moe argument attributes are rejected.
// expected-error @+1 {{unknown moe argument attribute 'moe.weight'}}
func.func @unknown_arg_attr(%x: tensor<8xf32> {moe.weight = "bias"}) {
  return
}

// -----

// Tests that the dispatch exchange's result holds the group's expert shards.
moe.mesh @mesh axes = ["ep"] shape = [4]
func.func @routed_exchange_type(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>) {
  // expected-error @+1 {{'moe.all_to_all' op expects result type '!moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>', got '!moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 2>'}}
  %t = moe.all_to_all %r on @mesh axes = ["ep"] : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>
      -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 2>
  return
}

// -----

// Tests that expert weights on an expert rank hold its experts only.
func.func @sharded_weights(%r: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>,
                           %w_in: tensor<8x64x128xf32>, %w_out: tensor<8x128x64xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects weight #0 of shape [2, 64, 128]}}
  %y = moe.expert_ffn mlp(relu) %r, %w_in, %w_out
      : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
  return
}

// -----

// Tests that combine takes the outputs back on their tokens' ranks.
func.func @combine_sharded(%y: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>, %w: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects the expert outputs back on their tokens' rank (no expert_shards), got expert_shards = 4}}
  %o = moe.combine %y, %w : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>, tensor<?x2xf32> -> tensor<?x64xf32>
  return
}

// -----

// Tests that expert_shards divides the expert count.
// expected-error @+1 {{expects expert_shards (3) to divide the expert count (8)}}
func.func @bad_shards(%y: !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 3>) {
  return
}
