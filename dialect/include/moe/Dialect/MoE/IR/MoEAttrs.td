//===- MoEAttrs.td - moe enum attributes -------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "mlir/IR/EnumAttr.td"

// Specialised I32 enum attributes: typed in C++ (generated accessors return the
// enum), verified, and printed as bare words in the op formats (`score = softmax`).

// How router logits become routing scores, fused into the routing op.
def MoE_ScoreFn : I32EnumAttr<"ScoreFn", "score function applied before top-k", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"sigmoid", 1>]> {
  let cppNamespace = "::moe";
}

// Elementwise scalar functions of the language (`f.(x)`).
def MoE_UnaryFn : I32EnumAttr<"UnaryFn", "elementwise scalar function", [
    I32EnumAttrCase<"neg", 0>, I32EnumAttrCase<"exp", 1>, I32EnumAttrCase<"log", 2>,
    I32EnumAttrCase<"sqrt", 3>, I32EnumAttrCase<"tanh", 4>, I32EnumAttrCase<"abs", 5>,
    I32EnumAttrCase<"sigmoid", 6>, I32EnumAttrCase<"silu", 7>, I32EnumAttrCase<"gelu", 8>,
    I32EnumAttrCase<"relu", 9>]> {
  let cppNamespace = "::moe";
}

// Broadcasting binary operators (`.+ .- .* ./ .^`, `max`).
def MoE_BinaryFn : I32EnumAttr<"BinaryFn", "elementwise binary operator", [
    I32EnumAttrCase<"add", 0>, I32EnumAttrCase<"sub", 1>, I32EnumAttrCase<"mul", 2>,
    I32EnumAttrCase<"div", 3>, I32EnumAttrCase<"pow", 4>, I32EnumAttrCase<"max", 5>,
    I32EnumAttrCase<"min", 6>]> {
  let cppNamespace = "::moe";
}

// Reductions that keep the reduced dimension (Julia's `sum(x; dims)`).
def MoE_ReduceFn : I32EnumAttr<"ReduceFn", "reduction", [
    I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"max", 1>, I32EnumAttrCase<"mean", 2>]> {
  let cppNamespace = "::moe";
}

// The expert feed-forward network applied to each expert's tokens.
def MoE_FfnKind : I32EnumAttr<"FfnKind", "expert feed-forward network", [
    I32EnumAttrCase<"swiglu", 0>, I32EnumAttrCase<"geglu", 1>, I32EnumAttrCase<"mlp", 2>]> {
  let cppNamespace = "::moe";
}

// Activation of an `mlp` expert.
def MoE_Activation : I32EnumAttr<"Activation", "MLP activation", [
    I32EnumAttrCase<"relu", 0>, I32EnumAttrCase<"gelu", 1>, I32EnumAttrCase<"silu", 2>]> {
  let cppNamespace = "::moe";
}

// Reduction of a collective.
def MoE_CollectiveReduction : I32EnumAttr<"CollectiveReduction", "collective reduction", [
    I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"max", 1>, I32EnumAttrCase<"min", 2>]> {
  let cppNamespace = "::moe";
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
