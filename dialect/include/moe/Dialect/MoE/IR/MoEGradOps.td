//===- MoEGradOps.td - the backward's ops ------------------*- tablegen -*-===//
//
// The vector-Jacobian products moe-differentiate builds the backward from:
// one op per forward op that no composition of forward ops expresses, each
// taking the forward's operands (recomputed or kept) and the cotangents of
// its results, and giving the cotangents of its operands, of the operands'
// types. Their semantics are the spec's ("Training") and the reference
// evaluator's (reference::gradient), which checks them against finite
// differences.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEGRADOPS_TD
#define MOE_DIALECT_MOE_IR_MOEGRADOPS_TD

class MoE_GradOp<string mnemonic, list<Trait> traits = []> : MoE_Op<mnemonic, !listconcat([Pure], traits)>;

def MoE_UnaryGradOp : MoE_GradOp<"unary_grad", [AllTypesMatch<["input", "grad", "result"]>]> {
  let summary = "cotangent of moe.unary: grad .* f'(input)";
  let description = [{
    ```mlir
    %dx = moe.unary_grad silu %x, %dy : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_UnaryFn:$fn, MoE_FloatTensor:$input, MoE_FloatTensor:$grad);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$fn $input `,` $grad attr-dict `:` type($input)";
}

def MoE_BinaryGradOp : MoE_GradOp<"binary_grad", [AllTypesMatch<["lhs", "lhs_grad"]>,
                                                 AllTypesMatch<["rhs", "rhs_grad"]>]> {
  let summary = "cotangents of a broadcasting moe.binary";
  let description = [{
    The cotangent of each operand, summed over the dimensions it was
    broadcast along. A `max` or `min` sends it to the operand the forward
    kept (the left one on a tie).

    ```mlir
    %dl, %dr = moe.binary_grad mul %x, %b, %dy
        : tensor<?x8xf32>, tensor<1x8xf32>, tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_BinaryFn:$fn, MoE_FloatTensor:$lhs, MoE_FloatTensor:$rhs, MoE_FloatTensor:$grad);
  let results = (outs MoE_FloatTensor:$lhs_grad, MoE_FloatTensor:$rhs_grad);
  let assemblyFormat = "$fn $lhs `,` $rhs `,` $grad attr-dict `:` type($lhs) `,` type($rhs) `,` type($grad)";
}

def MoE_ReduceGradOp : MoE_GradOp<"reduce_grad", [AllTypesMatch<["input", "result"]>]> {
  let summary = "cotangent of moe.reduce";
  let description = [{
    `sum` broadcasts the cotangent back, `mean` also divides it by the
    reduced size, `max` sends it to the first maximum.

    ```mlir
    %dx = moe.reduce_grad max %x, %dy dim = 1 : tensor<?x8xf32>, tensor<?x1xf32>
    ```
  }];
  let arguments = (ins MoE_ReduceFn:$fn, MoE_FloatTensor:$input, MoE_FloatTensor:$grad, MoE_NonNegI64:$dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$fn $input `,` $grad `dim` `=` $dim attr-dict `:` type($input) `,` type($grad)";
}

def MoE_SoftmaxGradOp : MoE_GradOp<"softmax_grad", [AllTypesMatch<["output", "grad", "result"]>]> {
  let summary = "cotangent of moe.softmax, from its output";
  let description = [{
    `y .* (dy .- sum(dy .* y))`, or for `log`: `dy .- exp(y) .* sum(dy)`,
    along `dim`, where `y` is the forward's output.

    ```mlir
    %dx = moe.softmax_grad %y, %dy dim = 1 : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$output, MoE_FloatTensor:$grad, MoE_NonNegI64:$dim, UnitAttr:$log);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = "$output `,` $grad `dim` `=` $dim (`log` $log^)? attr-dict `:` type($output)";
}

def MoE_DenseGradOp : MoE_GradOp<"dense_grad", [AllTypesMatch<["input", "input_grad"]>,
                                               AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "cotangents of moe.dense: grad * weight^T and input^T * grad";
  let description = [{
    Products accumulate in f32. The bias's cotangent is the column sum of
    `grad` (moe.reduce).

    ```mlir
    %dx, %dw = moe.dense_grad %x, %w, %dy : tensor<?x64xf32>, tensor<64x8xf32>, tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Float2D:$weight, MoE_Float2D:$grad);
  let results = (outs MoE_Float2D:$input_grad, MoE_Float2D:$weight_grad);
  let assemblyFormat = "$input `,` $weight `,` $grad attr-dict `:` type($input) `,` type($weight) `,` type($grad)";
}

def MoE_RMSNormGradOp : MoE_GradOp<"rmsnorm_grad", [AllTypesMatch<["input", "input_grad"]>,
                                                   AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "cotangents of moe.rmsnorm";
  let description = [{
    ```mlir
    %dx, %dw = moe.rmsnorm_grad %x, %w, %dy eps = 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>, tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$input, MoE_Float1D:$weight, MoE_Float2D:$grad, F64Attr:$eps);
  let results = (outs MoE_Float2D:$input_grad, MoE_Float1D:$weight_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $grad `eps` `=` $eps attr-dict `:` type($input) `,` type($weight) `,` type($grad)
  }];
}

def MoE_TopKGradOp : MoE_GradOp<"topk_grad", [AllTypesMatch<["logits", "result"]>]> {
  let summary = "cotangent of moe.topk's values, back into its logits";
  let description = [{
    Through the scale, the renormalisation and the score function, at the
    experts the forward chose (`indices`); the indices carry none.

    ```mlir
    %dl = moe.topk_grad %logits, %e, %dv k = 2 score = softmax renormalize
        : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$logits, MoE_Index2D:$indices, MoE_F32Tensor2D:$grad, MoE_PositiveI64:$k,
                       OptionalAttr<MoE_ScoreFn>:$score, UnitAttr:$renormalize, OptionalAttr<F64Attr>:$scale);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = [{
    $logits `,` $indices `,` $grad `k` `=` $k (`score` `=` $score^)? (`renormalize` $renormalize^)?
        (`scale` `=` $scale^)? attr-dict `:` type($logits) `,` type($indices) `,` type($grad)
  }];
}

def MoE_GatherGradOp : MoE_GradOp<"gather_grad"> {
  let summary = "cotangent of moe.gather: the cotangent added back where it was read";
  let description = [{
    ```mlir
    %ds = moe.gather_grad %e, %dw : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Index2D:$indices, MoE_Float2D:$grad);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = "$indices `,` $grad attr-dict `:` type($indices) `,` type($grad) `->` type($result)";
}

def MoE_CombineGradOp : MoE_GradOp<"combine_grad", [AllTypesMatch<["routed", "routed_grad"]>,
                                                   AllTypesMatch<["weights", "weights_grad"]>]> {
  let summary = "cotangents of moe.combine: of each assignment's row and its weight";
  let description = [{
    A dropped assignment gets zero for both.

    ```mlir
    %dy, %dw = moe.combine_grad %y, %w, %dout
        : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>, tensor<?x2xf32>, tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_Routed:$routed, MoE_Float2D:$weights, MoE_Float2D:$grad);
  let results = (outs MoE_Routed:$routed_grad, MoE_Float2D:$weights_grad);
  let assemblyFormat = [{
    $routed `,` $weights `,` $grad attr-dict `:` qualified(type($routed)) `,` type($weights) `,` type($grad)
  }];
}

def MoE_ExpertFfnGradOp : MoE_GradOp<"expert_ffn_grad", [AttrSizedOperandSegments,
                                                         AllTypesMatch<["routed", "grad", "routed_grad"]>]> {
  let summary = "cotangents of moe.expert_ffn: of its rows and of each stacked weight";
  let description = [{
    Per kept assignment, through the down product, the activation (and the
    GLU product) and the up products; each expert's weight cotangent sums
    its own rows. With `up` (the forward's kept up products, `moe.expert_ffn`'s
    second result) the up products are read rather than recomputed.

    ```mlir
    %dr, %dg, %du, %dd = moe.expert_ffn_grad swiglu %r, %dy, %wg, %wu, %wd
        : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>,
          tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
        -> tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
    %dr2, %dg2, %du2, %dd2 = moe.expert_ffn_grad swiglu %r, %dy, %wg, %wu, %wd up(%up : tensor<?x2x256xf32>)
        : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>,
          tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
        -> tensor<8x64x128xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>
    ```
  }];
  let arguments = (ins MoE_FfnKind:$kind, OptionalAttr<MoE_Activation>:$activation,
                       MoE_Routed:$routed, Variadic<MoE_Float3D>:$weights, MoE_Routed:$grad,
                       Optional<AnyRankedTensor>:$up);
  let results = (outs MoE_Routed:$routed_grad, Variadic<MoE_Float3D>:$weights_grad);
  let assemblyFormat = [{
    $kind (`(` $activation^ `)`)? $routed `,` $grad `,` $weights (`up` `(` $up^ `:` type($up) `)`)? attr-dict
        `:` qualified(type($routed)) `,` type($weights) `->` type($weights_grad)
  }];
  let hasVerifier = 1;
}

def MoE_DispatchGradOp : MoE_GradOp<"dispatch_grad"> {
  let summary = "cotangent of moe.dispatch's tokens: each token sums its slots' rows";
  let description = [{
    ```mlir
    %dx = moe.dispatch_grad %dr : !moe.routed<tensor<?x64xf32>, experts = 8, k = 2> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_Routed:$grad);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = "$grad attr-dict `:` qualified(type($grad)) `->` type($result)";
}

def MoE_LoadBalanceLossGradOp : MoE_GradOp<"load_balance_loss_grad", [AllTypesMatch<["probs", "result"]>]> {
  let summary = "cotangent of moe.load_balance_loss, through its probabilities only";
  let description = [{
    ```mlir
    %dp = moe.load_balance_loss_grad %p, %e, %dl : tensor<?x8xf32>, tensor<?x2xi32>, tensor<f32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$probs, MoE_Index2D:$indices, MoE_Scalar:$grad);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = "$probs `,` $indices `,` $grad attr-dict `:` type($probs) `,` type($indices) `,` type($grad)";
}

def MoE_ZLossGradOp : MoE_GradOp<"z_loss_grad", [AllTypesMatch<["logits", "result"]>]> {
  let summary = "cotangent of moe.z_loss: 2 lse(x) softmax(x) / tokens, times the loss's";
  let description = [{
    ```mlir
    %dl = moe.z_loss_grad %logits, %dz : tensor<?x8xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins MoE_Float2D:$logits, MoE_Scalar:$grad);
  let results = (outs MoE_Float2D:$result);
  let assemblyFormat = "$logits `,` $grad attr-dict `:` type($logits) `,` type($grad)";
}

#endif // MOE_DIALECT_MOE_IR_MOEGRADOPS_TD
