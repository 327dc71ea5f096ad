//===- ExamplePasses.td - the example plugin's pass --------*- tablegen -*-===//
#ifndef MOE_EXAMPLE_PLUGIN_PASSES_TD
#define MOE_EXAMPLE_PLUGIN_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEExampleExpertStats : Pass<"moe-example-expert-stats", "::mlir::ModuleOp"> {
  let summary = "annotate every moe.expert_ffn with its FLOPs and weight bytes";
  let description = [{
    An example of a pass that lives outside the moe tree and is loaded into
    `moe-opt` as a plugin. For each `moe.expert_ffn` it attaches
    `moe_example.flops_per_token` (the FLOPs one routed token costs, all
    k assignments) and `moe_example.weight_bytes` (all experts' weights).

    ```mlir
    // moe-opt --load-pass-plugin=lib/MoEExamplePlugin.so --moe-example-expert-stats
    %y = moe.expert_ffn swiglu %r, %wg, %wu, %wd {moe_example.flops_per_token = 96 : i64, ...}
    ```
  }];
}

#endif // MOE_EXAMPLE_PLUGIN_PASSES_TD
