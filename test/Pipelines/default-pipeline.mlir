// RUN: moe-opt %moe_src_root/examples/mixtral_moe.mlir --moe-default-pipeline | FileCheck %s --check-prefix=MIXTRAL
// RUN: moe-opt %moe_src_root/examples/deepseek_v3_moe.mlir --moe-default-pipeline | FileCheck %s --check-prefix=DSV3
// RUN: moe-opt %moe_src_root/examples/switch_moe.mlir --moe-default-pipeline | FileCheck %s --check-prefix=SWITCH
// RUN: moe-opt %s --moe-default-pipeline -verify-diagnostics
// RUN: moe-opt %moe_src_root/examples/mixtral_moe.mlir --moe-default-pipeline --dump-pass-pipeline 2>&1 >/dev/null | FileCheck %s --check-prefix=PASSES

// Every example in examples/ goes through the default pipeline, so none goes stale.

// MIXTRAL-LABEL: func.func @MixtralMoE
// MIXTRAL: %[[L:.*]] = moe.dense
// MIXTRAL-NEXT: %[[W:.*]], %[[E:.*]] = moe.topk %[[L]] k = 2 score = softmax renormalize
// MIXTRAL-NEXT: %[[R:.*]] = moe.dispatch %{{.*}}, %[[E]]
// MIXTRAL-NEXT: %[[Y:.*]] = moe.expert_ffn swiglu %[[R]]
// MIXTRAL-NEXT: moe.combine %[[Y]], %[[W]]

// DSV3-LABEL: func.func @DeepSeekV3MoE
// DSV3: moe.group_topk %{{.*}} k = 8 groups = 8 top_groups = 4
// DSV3: moe.expert_ffn swiglu
// DSV3: moe.expert_ffn swiglu

// SWITCH-LABEL: func.func @SwitchMoE
// SWITCH: moe.topk %{{.*}} k = 1 score = softmax :
// SWITCH: capacity = 1.250000e+00
// SWITCH: moe.load_balance_loss
// SWITCH: moe.z_loss

// PASSES: moe-verify-input{{.*}}require-arg-names=true
// PASSES-NEXT: canonicalize
// PASSES-NEXT: cse

// Tests that the pipeline starts with moe-verify-input and stops on what it finds.
// expected-error @+1 {{argument #0 of @unnamed is neither an input ('moe.input') nor a parameter ('moe.param')}}
func.func @unnamed(%x: tensor<?x16xf32>) {
  return
}
