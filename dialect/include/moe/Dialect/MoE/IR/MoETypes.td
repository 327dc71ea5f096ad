//===- MoETypes.td - moe types -----------------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOETYPES_TD
#define MOE_DIALECT_MOE_IR_MOETYPES_TD

include "moe/Dialect/MoE/IR/MoEDialect.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

def MoE_RoutedType : TypeDef<MoE_Dialect, "Routed"> {
  let mnemonic = "routed";
  let summary = "tokens grouped by expert, as produced by `moe.dispatch`";
  let description = [{
    A routed value is the set of (token, slot) assignments of a `[tokens, d]`
    activation to `experts` experts, `k` assignments per token, grouped by
    expert. It is deliberately opaque at tensor level: the lowering chooses its
    storage (a permuted `[tokens * k, d]` buffer plus per-expert counts, offsets
    and the row-to-(token, slot) permutation, all computed on the device), so no
    size of it depends on the host knowing how many tokens each expert got.

    `capacity`, when present, is the Switch Transformer capacity factor: each
    expert keeps at most `ceil(capacity * tokens * k / experts)` assignments and
    the later ones, in (token, slot) order, are dropped. Without it the value is
    dropless.

    `expert_shards`, when present (> 1), says where the rows are: on a mesh
    whose `ep` axis splits the experts over `expert_shards` ranks, the value
    holds the rows routed to this rank's `experts / expert_shards` experts,
    received from every rank of its expert-parallel group (the result of the
    dispatch `moe.all_to_all`). Without it the rows are on their tokens' rank.

    ```mlir
    !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2>
    !moe.routed<tensor<?x512xf32>, experts = 64, k = 1, capacity = 1.25>
    !moe.routed<tensor<?x4096xbf16>, experts = 8, k = 2, expert_shards = 4>
    ```
  }];
  let parameters = (ins
    "::mlir::RankedTensorType":$tokens,
    "int64_t":$experts,
    "int64_t":$k,
    OptionalParameter<"::mlir::FloatAttr">:$capacity,
    DefaultValuedParameter<"int64_t", "1">:$expertShards);
  let assemblyFormat = [{
    `<` $tokens `,` `experts` `=` $experts `,` `k` `=` $k``custom<RoutedOptions>($capacity, $expertShards)`>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The hidden (model) dimension of each routed row.
    int64_t getHidden() const { return getTokens().getDimSize(1); }
    ::mlir::Type getElementType() const { return getTokens().getElementType(); }
    bool isDropless() const { return !getCapacity(); }
    /// The same assignments carrying rows of another hidden size/type.
    RoutedType withTokens(::mlir::RankedTensorType tokens) const {
      return RoutedType::get(getContext(), tokens, getExperts(), getK(), getCapacity(), getExpertShards());
    }
    /// The same assignments held on `shards` expert ranks (1: on the tokens' ranks).
    RoutedType withExpertShards(int64_t shards) const {
      return RoutedType::get(getContext(), getTokens(), getExperts(), getK(), getCapacity(), shards);
    }
    /// The experts whose rows this value holds: all, or this rank's slice.
    int64_t getLocalExperts() const { return getExperts() / getExpertShards(); }
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOETYPES_TD
