//===- MoEOps.td - moe operations --------------------------*- tablegen -*-===//
//
// Shape conventions: tensors are row-major `[tokens, features]`; `tokens` is
// usually dynamic (`?`). Dimension attributes are 0-based. Expert indices are
// 0-based `i32`.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "moe/Dialect/MoE/IR/MoETypes.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def MoE_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def MoE_Float1D : TensorRankOf<[F32, F16, BF16], [1]>;
def MoE_Float2D : TensorRankOf<[F32, F16, BF16], [2]>;
def MoE_Float3D : TensorRankOf<[F32, F16, BF16], [3]>;
def MoE_F32Tensor2D : TensorRankOf<[F32], [2]>;
def MoE_Index2D : TensorRankOf<[I32], [2]>;
def MoE_Scalar : 0DTensorOf<[F32]>;
def MoE_AnyTensor : RankedTensorOf<[F32, F16, BF16, I32]>;
def MoE_Routed : Type<CPred<"::llvm::isa<::moe::RoutedType>($_self)">,
                      "routed value", "::moe::RoutedType">;
def MoE_PositiveI64 : ConfinedAttr<I64Attr, [IntPositive]>;
def MoE_NonNegI64 : ConfinedAttr<I64Attr, [IntNonNegative]>;

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def MoE_TopKOp : MoE_Op<"topk", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "per token, the k largest routing scores and their experts";
  let description = [{
    For each row of `logits [tokens, experts]`: applies the optional `score`
    function over the expert dimension (softmax or sigmoid), takes the `k`
    largest scores in descending order (ties go to the lower expert index),
    optionally `renormalize`s them to sum to 1, and multiplies them by `scale`
    (DeepSeek-V3's routed scaling factor). Scores are computed in f32, so
    `values` is always f32; `indices` are 0-based expert indices.

    Fusing the score function, renormalisation and scaling into the op lets
    the GPU lowering do all of routing in one kernel, in registers.

    ```mlir
    %w, %e = moe.topk %logits k = 2 score = softmax renormalize
        : tensor<?x8xbf16> -> tensor<?x2xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$logits, MoE_PositiveI64:$k,
                       OptionalAttr<MoE_ScoreFn>:$score,
                       UnitAttr:$renormalize,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs MoE_F32Tensor2D:$values, MoE_Index2D:$indices);
  let assemblyFormat = [{
    $logits `k` `=` $k (`score` `=` $score^)? (`renormalize` $renormalize^)?
        (`scale` `=` $scale^)? attr-dict
        `:` type($logits) `->` type($values) `,` type($indices)
  }];
  let builders = [
    // Infers the result types from `logits` and `k`.
    OpBuilder<(ins "::mlir::Value":$logits, "int64_t":$k,
                   CArg<"std::optional<ScoreFn>", "std::nullopt">:$score,
                   CArg<"bool", "false">:$renormalize,
                   CArg<"std::optional<double>", "std::nullopt">:$scale)>
  ];
  let extraClassDeclaration = [{
    int64_t getNumExperts() { return getLogits().getType().getDimSize(1); }
    /// The routed scaling factor, 1 when absent.
    double getScaleOrOne() { return getScale() ? getScale()->convertToDouble() : 1.0; }
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def MoE_GroupTopKOp : MoE_Op<"group_topk", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "DeepSeek-V3 group-limited top-k expert selection";
  let description = [{
    Splits the experts of `scores [tokens, experts]` into `groups` equal
    contiguous groups, scores each group by the sum of its two largest scores
    (its only score for groups of one), keeps the best `top_groups` groups
    (ties go to the lower group), and returns the 0-based indices of the `k`
    best experts within the kept groups, in descending score order (ties go to
    the lower index). Only indices are returned: DeepSeek-V3 selects on biased
    scores but weighs with unbiased ones (`moe.gather`).

    ```mlir
    %e = moe.group_topk %s k = 8 groups = 8 top_groups = 4
        : tensor<?x256xf32> -> tensor<?x8xi32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$scores, MoE_PositiveI64:$k,
                       MoE_PositiveI64:$groups, MoE_PositiveI64:$top_groups);
  let results = (outs MoE_Index2D:$indices);
  let assemblyFormat = [{
    $scores `k` `=` $k `groups` `=` $groups `top_groups` `=` $top_groups attr-dict
        `:` type($scores) `->` type($indices)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Value":$scores, "int64_t":$k, "int64_t":$groups,
                   "int64_t":$topGroups)>
  ];
  let hasVerifier = 1;
}

def MoE_GatherOp : MoE_Op<"gather", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "per row, pick the columns named by an index tensor";
  let description = [{
    `result[t, j] = input[t, indices[t, j]]` with 0-based indices; used to
    weigh DeepSeek-V3's selected experts with their unbiased scores.

    ```mlir
    %w = moe.gather %s, %e : tensor<?x256xf32>, tensor<?x8xi32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Index2D:$indices);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` type($input) `,` type($indices) `->` type($result)
  }];
  let builders = [OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$indices)>];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Dispatch, experts, combine
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "group each token's k assignments by expert";
  let description = [{
    Routes row `t` of `input [tokens, d]` to the experts `indices[t, :]`
    (0-based, `[tokens, k]`), producing a routed value grouped by expert. The
    expert count and the optional capacity factor are carried by the result
    type; with a capacity, each expert keeps the first
    `ceil(capacity * tokens * k / experts)` assignments in (token, slot) order.

    The routed value has no host-visible size: lowering computes per-expert
    counts, offsets and the permutation on the device.

    ```mlir
    %r = moe.dispatch %x, %e : tensor<?x4096xbf16>, tensor<?x2xi32>
        -> !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Index2D:$indices);
  let results = (outs MoE_Routed:$routed);
  let assemblyFormat = [{
    $input `,` $indices attr-dict `:` type($input) `,` type($indices) `->` qualified(type($routed))
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$indices,
                   "int64_t":$numExperts,
                   CArg<"std::optional<double>", "std::nullopt">:$capacity)>
  ];
  let hasVerifier = 1;
}

def MoE_ExpertFfnOp : MoE_Op<"expert_ffn", [Pure, AllTypesMatch<["routed", "result"]>, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "apply each expert's feed-forward network to its own tokens";
  let description = [{
    Applies expert `e`'s FFN to the rows routed to `e`. Weights are stacked on
    a leading expert dimension:

    | kind | weights | per-expert function |
    | --- | --- | --- |
    | `swiglu` | `w_gate [E, d, f]`, `w_up [E, d, f]`, `w_down [E, f, d]` | `(silu(x w_gate) .* (x w_up)) w_down` |
    | `geglu` | same | as `swiglu` with tanh-approximated gelu |
    | `mlp(act)` | `w_in [E, d, f]`, `w_out [E, f, d]` | `act(x w_in) w_out` |

    Products accumulate in f32 and are rounded to the routed element type.

    An optional second result, `up`, keeps the up products before the
    activation for the backward (moe-differentiate's residuals): `[tokens, k,
    f]` (mlp) or `[tokens, k, 2f]` (GLUs: the gate's `x w_gate`, then
    `x w_up`), one row per assignment in slot order, rounded to the routed
    element type; a dropped assignment's row is never read.

    ```mlir
    %y = moe.expert_ffn swiglu %r, %wg, %wu, %wd
        : !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>,
          tensor<8x4096x14336xbf16>, tensor<8x4096x14336xbf16>, tensor<8x14336x4096xbf16>
    %z = moe.expert_ffn mlp(gelu) %r, %wi, %wo
        : !moe.routed<tensor<?x512xf32>, experts = 4, k = 1>,
          tensor<4x512x2048xf32>, tensor<4x2048x512xf32>
    %y2, %up = moe.expert_ffn swiglu %r, %wg, %wu, %wd
        : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>,
          tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16> -> tensor<?x2x256xbf16>
    ```
  }];
  let arguments = (ins MoE_FfnKind:$kind, OptionalAttr<MoE_Activation>:$activation,
                       MoE_Routed:$routed, Variadic<MoE_Float3D>:$weights);
  let results = (outs MoE_Routed:$result, Optional<AnyRankedTensor>:$up);
  let assemblyFormat = [{
    $kind (`(` $activation^ `)`)? $routed `,` $weights attr-dict
        `:` qualified(type($routed)) `,` type($weights) (`->` type($up)^)?
  }];
  let builders = [
    OpBuilder<(ins "FfnKind":$kind, "::mlir::Value":$routed,
                   "::mlir::ValueRange":$weights,
                   CArg<"std::optional<Activation>", "std::nullopt">:$activation)>
  ];
  let extraClassDeclaration = [{
    /// Number of stacked weight tensors the kind takes (3 for GLUs, 2 for MLPs).
    static unsigned getNumWeightsFor(FfnKind kind) { return kind == FfnKind::mlp ? 2 : 3; }
    /// The FFN's inner width `f`.
    int64_t getInnerDim() { return ::llvm::cast<::mlir::RankedTensorType>(getWeights().front().getType()).getDimSize(2); }
    /// The width of a row of the kept up products: 2f for GLUs, f for an mlp.
    int64_t getUpWidth() { return getKind() == FfnKind::mlp ? getInnerDim() : 2 * getInnerDim(); }
    /// The type of the kept up products, [tokens, k, getUpWidth()].
    ::mlir::RankedTensorType getUpType() { return getUpTypeFor(getRouted().getType(), getKind(), getInnerDim()); }
    /// The same for experts of `kind` and inner width `inner` on `routed`
    /// (expert_ffn_grad's `up` operand too).
    static ::mlir::RankedTensorType getUpTypeFor(RoutedType routed, FfnKind kind, int64_t inner);
  }];
  let hasVerifier = 1;
}

def MoE_CombineOp : MoE_Op<"combine", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "weighted sum of each token's expert outputs";
  let description = [{
    `result[t, :] = sum_j weights[t, j] * y(t, j)` where `y(t, j)` is the
    output row of token `t`'s `j`-th assignment, summed in slot order
    (deterministic); dropped assignments contribute zero. The result has the
    routed rows' shape `[tokens, d]`; its element type may be wider.

    ```mlir
    %out = moe.combine %y, %w : !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>,
        tensor<?x2xf32> -> tensor<?x4096xbf16>
    ```
  }];
  let arguments = (ins MoE_Routed:$routed, MoE_Float2D:$weights);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = [{
    $routed `,` $weights attr-dict `:` qualified(type($routed)) `,` type($weights) `->` type($result)
  }];
  let builders = [OpBuilder<(ins "::mlir::Value":$routed, "::mlir::Value":$weights)>];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Dense layers and normalisation
//===----------------------------------------------------------------------===//

def MoE_DenseOp : MoE_Op<"dense", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "matrix product with an optional bias: x * weight (.+ bias)";
  let description = [{
    `input [m, in] * weight [in, out] (.+ bias [out])`, accumulated in f32 and
    rounded once to the result element type. Router logits, shared experts
    and the language's `*` on two matrices all lower to this op.

    ```mlir
    %logits = moe.dense %x, %wr : tensor<?x4096xbf16>, tensor<4096x8xbf16> -> tensor<?x8xf32>
    %y = moe.dense %x, %w bias %b : tensor<?x16xf32>, tensor<16x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Float2D:$weight, Optional<MoE_Float1D>:$bias);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type($input) `,` type($weight)
        (`,` type($bias)^)? `->` type($result)
  }];
  let builders = [
    // The result element type is given; shapes are inferred.
    OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$weight,
                   "::mlir::Value":$bias, "::mlir::Type":$resultElementType)>
  ];
  let hasVerifier = 1;
}

def MoE_RMSNormOp : MoE_Op<"rmsnorm", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "root-mean-square normalisation over the last dimension";
  let description = [{
    `x / sqrt(mean(x .^ 2; dims = last) + eps) .* weight`, computed in f32.

    ```mlir
    %n = moe.rmsnorm %x, %w eps = 1.0e-06 : tensor<?x4096xbf16>, tensor<4096xbf16> -> tensor<?x4096xbf16>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Float1D:$weight,
                       F64Attr:$eps);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = [{
    $input `,` $weight `eps` `=` $eps attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise math and reductions with Julia broadcasting
//===----------------------------------------------------------------------===//

def MoE_UnaryOp : MoE_Op<"unary", [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "elementwise scalar function (`f.(x)`)";
  let description = [{
    Applies `fn` to every element. `gelu` is the tanh approximation (NNlib),
    `silu(x) = x * sigmoid(x)`.

    ```mlir
    %s = moe.unary sigmoid %logits : tensor<?x256xf32>
    ```
  }];
  let arguments = (ins MoE_UnaryFn:$fn, MoE_FloatTensor:$input);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$fn $input attr-dict `:` type($input)";
  let hasCanonicalizer = 0;
}

def MoE_BinaryOp : MoE_Op<"binary", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "broadcasting elementwise operator (`.+ .- .* ./ .^`, `max`, `min`)";
  let description = [{
    Julia broadcasting: operands of equal rank, or a rank-0 scalar; each
    dimension pair is equal or one of them is 1, which stretches. Operands and
    result share one element type (the frontend promotes first).

    ```mlir
    %n = moe.binary div %w, %s : tensor<?x2xf32>, tensor<?x1xf32> -> tensor<?x2xf32>
    ```
  }];
  let arguments = (ins MoE_BinaryFn:$fn, MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $fn $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let builders = [
    // Infers the broadcast result type; the operands must already agree in element type.
    OpBuilder<(ins "BinaryFn":$fn, "::mlir::Value":$lhs, "::mlir::Value":$rhs)>
  ];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def MoE_ReduceOp : MoE_Op<"reduce", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "reduction over one dimension, keeping it with size 1";
  let description = [{
    Julia's `sum/maximum/mean(x; dims = d + 1)`: the reduced dimension stays,
    with size 1, so the result broadcasts back against `x`.

    ```mlir
    %s = moe.reduce sum %w dim = 1 : tensor<?x2xf32> -> tensor<?x1xf32>
    ```
  }];
  let arguments = (ins MoE_ReduceFn:$fn, MoE_FloatTensor:$input, MoE_NonNegI64:$dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $fn $input `dim` `=` $dim attr-dict `:` type($input) `->` type($result)
  }];
  let builders = [OpBuilder<(ins "ReduceFn":$fn, "::mlir::Value":$input, "int64_t":$dim)>];
  let hasVerifier = 1;
}

def MoE_SoftmaxOp : MoE_Op<"softmax", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "numerically stable (log-)softmax over one dimension";
  let description = [{
    Max-subtracted softmax over `dim`, in f32; with `log`, log-softmax. The
    result has the input's shape and a float element type (f32 unless the
    frontend narrows it).

    ```mlir
    %p = moe.softmax %logits dim = 1 : tensor<?x8xf32> -> tensor<?x8xf32>
    %lp = moe.softmax %logits dim = 1 log : tensor<?x8xf32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_NonNegI64:$dim, UnitAttr:$log);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `dim` `=` $dim (`log` $log^)? attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Auxiliary losses
//===----------------------------------------------------------------------===//

def MoE_LoadBalanceLossOp : MoE_Op<"load_balance_loss", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "Switch/GShard auxiliary load-balancing loss";
  let description = [{
    `experts * sum_e f_e * P_e`, where `f_e` is the fraction of the
    `tokens * k` assignments in `indices` that go to expert `e` (before any
    capacity drop) and `P_e` is the mean of `probs[:, e]` over tokens.

    ```mlir
    %l = moe.load_balance_loss %p, %e : tensor<?x8xf32>, tensor<?x2xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$probs, MoE_Index2D:$indices);
  let results = (outs MoE_Scalar:$loss);
  let assemblyFormat = [{
    $probs `,` $indices attr-dict `:` type($probs) `,` type($indices) `->` type($loss)
  }];
  let hasVerifier = 1;
}

def MoE_ZLossOp : MoE_Op<"z_loss", [Pure, DeclareOpInterfaceMethods<MoE_DifferentiableOpInterface>]> {
  let summary = "router z-loss: mean over tokens of logsumexp(logits)^2";
  let description = [{
    ST-MoE's router z-loss, a scalar (0-d) f32 tensor.

    ```mlir
    %z = moe.z_loss %logits : tensor<?x8xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$logits);
  let results = (outs MoE_Scalar:$loss);
  let assemblyFormat = "$logits attr-dict `:` type($logits) `->` type($loss)";
}

//===----------------------------------------------------------------------===//
// Device mesh and collectives
//===----------------------------------------------------------------------===//

def MoE_MeshOp : MoE_Op<"mesh", [Symbol]> {
  let summary = "a named device mesh with named axes";
  let description = [{
    Declares the device mesh a layer is placed on: one named axis per
    parallelism kind, e.g. `dp` (data / FSDP) and `ep` (expert parallel).
    Collectives name axes of a mesh; ranks that differ only in those axes
    form one communicator. `moe-place-on-mesh` declares
    `axes = ["rep", "dp", "ep"]` (world rank `(rep * D + dp) * E + ep`).

    ```mlir
    moe.mesh @mesh axes = ["dp", "ep"] shape = [2, 4]
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrArrayAttr:$axes,
                       DenseI64ArrayAttr:$shape);
  let assemblyFormat = "$sym_name `axes` `=` $axes `shape` `=` $shape attr-dict";
  let extraClassDeclaration = [{
    /// The size of `axis`, or nullopt when the mesh has no such axis.
    std::optional<int64_t> getAxisSize(::llvm::StringRef axis);
  }];
  let hasVerifier = 1;
}

class MoE_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : MoE_Op<mnemonic, !listconcat(traits,
        [DeclareOpInterfaceMethods<SymbolUserOpInterface>])>;

def MoE_AllToAllOp : MoE_CollectiveOp<"all_to_all"> {
  let summary = "all-to-all over mesh axes";
  let description = [{
    On a tensor: splits `input` along `split_dim` into one chunk per rank of
    the group, sends chunk `i` to rank `i`, and concatenates what it receives
    along `concat_dim`.

    On a routed value (expert parallelism; no dims): the dispatch exchange
    sends each routed row to the rank owning its expert (the result has
    `expert_shards` = the group size), and the combine exchange sends the
    expert outputs back to their tokens' ranks (the result has none). The
    per-(rank, expert) counts travel first; every rank takes part whatever
    it routes or receives.

    ```mlir
    %y = moe.all_to_all %x on @mesh axes = ["ep"] split_dim = 0 concat_dim = 1
        : tensor<8x64xf32> -> tensor<2x256xf32>
    %r2 = moe.all_to_all %r on @mesh axes = ["ep"]
        : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>
        -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2, expert_shards = 4>
    ```
  }];
  let arguments = (ins AnyTypeOf<[MoE_AnyTensor, MoE_Routed]>:$input, FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes,
                       OptionalAttr<MoE_NonNegI64>:$split_dim, OptionalAttr<MoE_NonNegI64>:$concat_dim);
  let results = (outs AnyTypeOf<[MoE_AnyTensor, MoE_Routed]>:$result);
  let assemblyFormat = [{
    $input `on` $mesh `axes` `=` $axes (`split_dim` `=` $split_dim^)? (`concat_dim` `=` $concat_dim^)?
        attr-dict `:` qualified(type($input)) `->` qualified(type($result))
  }];
}

def MoE_AllGatherOp : MoE_CollectiveOp<"all_gather"> {
  let summary = "all-gather over mesh axes";
  let description = [{
    Concatenates every rank's `input` along `gather_dim`, in rank order (FSDP
    unsharding of a weight before use). A dynamic `gather_dim` may differ
    between ranks (the token rows an auxiliary loss needs from the whole
    batch).

    ```mlir
    %w = moe.all_gather %shard on @mesh axes = ["dp"] gather_dim = 0
        : tensor<2048x8xbf16> -> tensor<4096x8xbf16>
    ```
  }];
  let arguments = (ins MoE_AnyTensor:$input, FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes,
                       MoE_NonNegI64:$gather_dim);
  let results = (outs MoE_AnyTensor:$result);
  let assemblyFormat = [{
    $input `on` $mesh `axes` `=` $axes `gather_dim` `=` $gather_dim
        attr-dict `:` type($input) `->` type($result)
  }];
}

def MoE_RowOffsetOp : MoE_CollectiveOp<"row_offset"> {
  let summary = "where this rank's rows start in their all-gather over mesh axes";
  let description = [{
    The first row of `input` (this rank's rows) in `moe.all_gather` of it
    along dimension 0 over the same axes: the rows of the group's ranks
    before this one. A backward that forms a per-token cotangent from
    gathered rows (an auxiliary loss's, over the global batch) takes its
    own rows of it back with `tensor.extract_slice` at this offset.

    ```mlir
    %at = moe.row_offset %probs on @mesh axes = ["rep", "dp", "ep"] : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_AnyTensor:$input, FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes);
  let results = (outs Index:$result);
  let assemblyFormat = [{
    $input `on` $mesh `axes` `=` $axes attr-dict `:` type($input)
  }];
}

def MoE_ReduceScatterOp : MoE_CollectiveOp<"reduce_scatter"> {
  let summary = "reduce-scatter over mesh axes";
  let description = [{
    Reduces `input` elementwise over the ranks of the group and leaves rank `i`
    with the `i`-th chunk along `scatter_dim` (FSDP gradient sharding).

    ```mlir
    %g = moe.reduce_scatter %grad on @mesh axes = ["dp"] scatter_dim = 0 reduction = sum
        : tensor<4096x8xf32> -> tensor<2048x8xf32>
    ```
  }];
  let arguments = (ins MoE_AnyTensor:$input, FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes,
                       MoE_NonNegI64:$scatter_dim, MoE_CollectiveReduction:$reduction);
  let results = (outs MoE_AnyTensor:$result);
  let assemblyFormat = [{
    $input `on` $mesh `axes` `=` $axes `scatter_dim` `=` $scatter_dim `reduction` `=` $reduction
        attr-dict `:` type($input) `->` type($result)
  }];
}

def MoE_AllReduceOp : MoE_CollectiveOp<"all_reduce", [SameOperandsAndResultType]> {
  let summary = "all-reduce over mesh axes";
  let description = [{
    Every rank of the group receives the elementwise reduction of all ranks'
    `input`, summed in rank order whatever the mesh (replicated gradients).

    ```mlir
    %s = moe.all_reduce %loss on @mesh axes = ["dp"] reduction = sum : tensor<f32>
    ```
  }];
  let arguments = (ins MoE_AnyTensor:$input, FlatSymbolRefAttr:$mesh, StrArrayAttr:$axes,
                       MoE_CollectiveReduction:$reduction);
  let results = (outs MoE_AnyTensor:$result);
  let assemblyFormat = [{
    $input `on` $mesh `axes` `=` $axes `reduction` `=` $reduction attr-dict `:` type($input)
  }];
}

include "moe/Dialect/MoE/IR/MoEGradOps.td"

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
