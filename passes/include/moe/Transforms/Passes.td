//===- Passes.td - moe transformation passes ---------------*- tablegen -*-===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEVerifyInput : Pass<"moe-verify-input", "::mlir::ModuleOp"> {
  let summary = "check that a module is a legal input to the moe pipelines";
  let description = [{
    The first pass of every moe pipeline. It rejects, with one error per
    problem, what the lowerings would otherwise trip over deep inside:

    - ops outside the dialects a layer may use (`moe`, `func`, `arith`,
      `math`, `tensor`, plus `extra-dialects`);
    - element types other than f32, f16, bf16 (and i32 for indices);
    - with `require-arg-names`: a layer argument that is neither an input
      (`moe.input = "x"`) nor a parameter (`moe.param = "router.weight"`),
      and two parameters with one name;
    - a parameter with a dynamic dimension, or an input that is dynamic in any
      dimension but the first (the token count).

    Example:

    ```mlir
    // moe-opt --moe-verify-input
    func.func @layer(%x: tensor<?x16xf32> {moe.input = "x"},
                     %w: tensor<16x4xf32> {moe.param = "router.weight"}) -> tensor<?x4xf32> {
      %l = moe.dense %x, %w : tensor<?x16xf32>, tensor<16x4xf32> -> tensor<?x4xf32>
      return %l : tensor<?x4xf32>
    }
    ```
  }];
  let options = [
    Option<"requireArgNames", "require-arg-names", "bool", /*default=*/"true",
           "require every layer argument to be a named input or parameter">,
    ListOption<"extraDialects", "extra-dialects", "std::string",
               "further dialects whose ops are legal in a layer">
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
