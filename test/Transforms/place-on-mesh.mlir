// RUN: moe-opt %s --moe-place-on-mesh="mesh=ep=2" --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=EP
// RUN: moe-opt %s --moe-place-on-mesh="mesh=dp=2,ep=2" --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=FSDP
// RUN: moe-opt %s --moe-place-on-mesh="mesh=rep=2" --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=REP
// RUN: moe-opt %s --moe-place-on-mesh="mesh=1" --split-input-file | FileCheck %s --check-prefix=ONE
// RUN: moe-opt %s --moe-place-on-mesh="mesh=ep=1" --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=PLACEDONE

// Tests the placement of a Mixtral-shaped layer.
// ep=2: the experts split by expert (8 -> 4 a rank) with an all-to-all on
// each side of the expert FFN; the router is replicated, whole.
// EP:      moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 2]
// EP:      func.func @layer(%{{.*}}: tensor<?x16xf32> {moe.input = "x"},
// EP-SAME:   tensor<16x8xf32> {moe.global_shape = array<i64: 16, 8>, moe.param = "router.weight", moe.placement = "replicated"}
// EP-SAME:   tensor<4x16x32xf32> {moe.global_shape = array<i64: 8, 16, 32>, moe.param = "experts.w_in", moe.placement = "experts"}
// EP-SAME:   tensor<4x32x16xf32> {moe.global_shape = array<i64: 8, 32, 16>, moe.param = "experts.w_out", moe.placement = "experts"}
// EP:      %[[R:.*]] = moe.dispatch
// EP:      %[[THERE:.*]] = moe.all_to_all %[[R]] on @mesh axes = ["ep"] : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2> -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2, expert_shards = 2>
// EP:      %[[Y:.*]] = moe.expert_ffn mlp(relu) %[[THERE]], %{{.*}}, %{{.*}} : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2, expert_shards = 2>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
// EP:      %[[BACK:.*]] = moe.all_to_all %[[Y]] on @mesh axes = ["ep"] {{.*}} -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
// EP:      moe.combine %[[BACK]]
// The loss's token rows come from every rank, so it is the global batch's.
// EP:      %[[P:.*]] = moe.all_gather %{{.*}} on @mesh axes = ["rep", "dp", "ep"] gather_dim = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
// EP:      %[[E:.*]] = moe.all_gather %{{.*}} on @mesh axes = ["rep", "dp", "ep"] gather_dim = 0 : tensor<?x2xi32> -> tensor<?x2xi32>
// EP:      moe.load_balance_loss %[[P]], %[[E]]

// dp=2,ep=2 (FSDP): every parameter is a flat, padded chunk, gathered just
// before its first use: the router over the 4 ranks of the replica
// (128 = 16*8/4 elements), the experts over the 2 dp ranks of their slice
// (4*16*32/2 = 1024).
// FSDP:      tensor<32xf32> {moe.global_shape = array<i64: 16, 8>, moe.param = "router.weight", moe.placement = "replicated"}
// FSDP-SAME: tensor<1024xf32> {moe.global_shape = array<i64: 8, 16, 32>, moe.param = "experts.w_in", moe.placement = "experts"}
// FSDP:      %[[G:.*]] = moe.all_gather %{{.*}} on @mesh axes = ["dp", "ep"] gather_dim = 0 : tensor<32xf32> -> tensor<128xf32>
// FSDP:      %[[S:.*]] = tensor.extract_slice %[[G]][0] [128] [1]
// FSDP:      %[[W:.*]] = tensor.expand_shape %[[S]] {{\[\[}}0, 1]] output_shape [16, 8] : tensor<128xf32> into tensor<16x8xf32>
// FSDP:      moe.dense %{{.*}}, %[[W]]
// FSDP:      moe.all_to_all
// FSDP:      moe.all_gather %{{.*}} on @mesh axes = ["dp"] gather_dim = 0 : tensor<1024xf32> -> tensor<2048xf32>
// FSDP:      tensor.expand_shape {{.*}} into tensor<4x16x32xf32>
// FSDP:      moe.expert_ffn

// rep=2: replicas hold everything; a dropless layer needs no exchange, only
// the loss rows.
// REP:      moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [2, 1, 1]
// REP-NOT:  moe.all_to_all
// REP:      moe.all_gather %{{.*}} on @mesh axes = ["rep", "dp", "ep"]

// A one-device mesh leaves the layer as it is.
// ONE-NOT:  moe.mesh
// ONE-NOT:  moe.placement
// A mesh of one asked for by name (ep=1) is still the placed program, the
// exchange around the experts included, so a world of one runs every
// collective.
// PLACEDONE: moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [1, 1, 1]
// PLACEDONE: moe.placement = "experts"
// PLACEDONE: moe.all_to_all %{{.*}} on @mesh axes = ["ep"] : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2> -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
// PLACEDONE: moe.all_gather
func.func @layer(%x: tensor<?x16xf32> {moe.input = "x"},
                 %router: tensor<16x8xf32> {moe.param = "router.weight"},
                 %w_in: tensor<8x16x32xf32> {moe.param = "experts.w_in"},
                 %w_out: tensor<8x32x16xf32> {moe.param = "experts.w_out"}) -> (tensor<?x16xf32>, tensor<f32>) {
  %logits = moe.dense %x, %router : tensor<?x16xf32>, tensor<16x8xf32> -> tensor<?x8xf32>
  %p = moe.softmax %logits dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
  %w, %e = moe.topk %p k = 2 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x2xi32> -> !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>
  %y = moe.expert_ffn mlp(relu) %r, %w_in, %w_out
      : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>, tensor<8x16x32xf32>, tensor<8x32x16xf32>
  %out = moe.combine %y, %w : !moe.routed<tensor<?x16xf32>, experts = 8, k = 2>, tensor<?x2xf32> -> tensor<?x16xf32>
  %lb = moe.load_balance_loss %p, %e : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
  return %out, %lb : tensor<?x16xf32>, tensor<f32>
}

// -----

// Tests that a capacity gets the exchange on every mesh (rep=2 included):
// which rows an expert keeps depends on the counts of every rank before.
// REP-LABEL: func.func @capacity
// REP:       moe.all_to_all %{{.*}} on @mesh axes = ["ep"] {{.*}} -> !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.250000e+00>
func.func @capacity(%x: tensor<?x16xf32> {moe.input = "x"}, %e: tensor<?x1xi32> {moe.input = "e"},
                    %w: tensor<?x1xf32> {moe.input = "w"},
                    %w_in: tensor<4x16x32xf32> {moe.param = "experts.w_in"},
                    %w_out: tensor<4x32x16xf32> {moe.param = "experts.w_out"}) -> tensor<?x16xf32> {
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x1xi32>
      -> !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.25>
  %y = moe.expert_ffn mlp(relu) %r, %w_in, %w_out
      : !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.25>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  %out = moe.combine %y, %w : !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.25>, tensor<?x1xf32>
      -> tensor<?x16xf32>
  return %out : tensor<?x16xf32>
}

// -----

// Tests that an input with a static token count is refused: a mesh slices rows.
// expected-error @+1 {{input 'x' has type 'tensor<37x16xf32>'; on a mesh every input's first dimension is the dynamic token count}}
func.func @static_tokens(%x: tensor<37x16xf32> {moe.input = "x"}) -> tensor<37x16xf32> {
  return %x : tensor<37x16xf32>
}

// -----

// Tests that a reduction over the tokens is refused: no rank holds them all.
func.func @token_sum(%x: tensor<?x16xf32> {moe.input = "x"}) -> tensor<1x16xf32> {
  // expected-error @+1 {{reduces over the token dimension, which a mesh splits over its ranks; only the auxiliary losses may}}
  %s = moe.reduce sum %x dim = 0 : tensor<?x16xf32> -> tensor<1x16xf32>
  return %s : tensor<1x16xf32>
}
