//===- MoEDialect.td - the moe dialect ---------------------*- tablegen -*-===//
//
// The `moe` dialect: tensor-level operations of a Mixture-of-Experts layer
// (routing, dispatch, expert FFN, combine, auxiliary losses, collectives).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEDIALECT_TD
#define MOE_DIALECT_MOE_IR_MOEDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::moe";
  let summary = "Mixture-of-Experts layers: routing, dispatch, experts, combine";
  let description = [{
    The `moe` dialect describes a whole Mixture-of-Experts layer at tensor
    level, with the semantics of the `.moe` language's builtins. Its ops keep
    the structure that the fast implementations exploit (top-k routing, a
    routed value grouped by expert, stacked expert weights, a weighted
    combine), so the lowering passes can build device-side schedules for
    dropless grouped GEMMs instead of rediscovering them from loops.

    Elementwise broadcasting follows Julia (and NumPy): a size-1 dimension
    stretches to the other operand's size; rank-0 tensors are scalars.
    Expert indices in the IR are 0-based `i32` (the language's are 1-based:
    the frontend shifts them once, where it would matter).
  }];
  let useDefaultTypePrinterParser = 1;
  let hasConstantMaterializer = 0;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Names of the function-argument attributes that bind a layer's
    /// arguments to its inputs and parameters.
    static constexpr ::llvm::StringLiteral getInputAttrName() { return "moe.input"; }
    static constexpr ::llvm::StringLiteral getParamAttrName() { return "moe.param"; }
    static constexpr ::llvm::StringLiteral getTrainableAttrName() { return "moe.trainable"; }
    /// A parameter's initialiser for random weights: "normal", "zeros", "ones".
    static constexpr ::llvm::StringLiteral getInitAttrName() { return "moe.init"; }
    /// An input's dimension names: a symbol ("tokens") or "" for a static size.
    static constexpr ::llvm::StringLiteral getDimsAttrName() { return "moe.dims"; }
    /// A parameter placed on a mesh (moe-place-on-mesh): how the mesh splits
    /// it ("experts" or "replicated", moe/runtime/mesh.h) and its global
    /// shape; the argument's type is then the rank's shard.
    static constexpr ::llvm::StringLiteral getPlacementAttrName() { return "moe.placement"; }
    static constexpr ::llvm::StringLiteral getGlobalShapeAttrName() { return "moe.global_shape"; }
    /// A layer function's docstring, and its hyperparameters and type
    /// parameters as compiled (a dictionary of name to value).
    static constexpr ::llvm::StringLiteral getDescriptionAttrName() { return "moe.description"; }
    static constexpr ::llvm::StringLiteral getHyperparametersAttrName() { return "moe.hyperparameters"; }
    /// A backward's arguments and results (moe-differentiate): the index of
    /// the forward result a cotangent is for, and the name of the forward
    /// argument (input or parameter) a gradient is of.
    static constexpr ::llvm::StringLiteral getCotangentAttrName() { return "moe.cotangent"; }
    static constexpr ::llvm::StringLiteral getGradientAttrName() { return "moe.gradient"; }
    /// A residual: a value the train forward (`@<layer>_train`) returns for
    /// the backward, which takes it as an argument; its index among them.
    static constexpr ::llvm::StringLiteral getResidualAttrName() { return "moe.residual"; }
    /// A parameter updated after each training step by a rule rather than by
    /// its gradient: "balance" (DeepSeek-V3's aux-loss-free bias, spec
    /// "Training"); and the backward's result holding the per-expert load that
    /// rule reads, named by the parameter.
    static constexpr ::llvm::StringLiteral getUpdateAttrName() { return "moe.update"; }
    static constexpr ::llvm::StringLiteral getLoadAttrName() { return "moe.load"; }
  private:
    void registerTypes();
  public:
  }];
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // MOE_DIALECT_MOE_IR_MOEDIALECT_TD
