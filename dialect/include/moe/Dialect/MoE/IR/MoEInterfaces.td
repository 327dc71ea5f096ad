//===- MoEInterfaces.td - moe op interfaces ----------------*- tablegen -*-===//
#ifndef MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
#define MOE_DIALECT_MOE_IR_MOEINTERFACES_TD

include "mlir/IR/OpBase.td"

def MoE_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let description = [{
    An op's derivative rule, in one place (dialect/lib/IR/MoEGradients.cpp):
    moe-differentiate calls it for each op of the forward, last op first.
    The rule follows the spec ("Training"): indices carry no gradient,
    selections are the forward's, a dropped assignment gets zero.
  }];
  let cppNamespace = "::moe";
  let methods = [
    InterfaceMethod<[{
        Builds the cotangents of the op's operands at `b`'s insertion point
        from those of its results (`resultGrads`, one per result, null where
        none flowed back; at least one is set). Sets `operandGrads` to one
        value per operand, null where the operand gets none (indices).
      }],
      "::mlir::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$b, "::mlir::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
