// RUN: moe-opt %s --load-pass-plugin=%moe_lib_dir/MoEExamplePlugin.so --pass-pipeline="builtin.module(moe-example-expert-stats)" | FileCheck %s
// RUN: moe-opt %s --load-pass-plugin=%moe_lib_dir/NoSuchPlugin.so 2>&1 | FileCheck %s --check-prefix=MISSING

// Tests that the example pass plugin loads into moe-opt and annotates expert FFNs.
// (Plugin passes are named in --pass-pipeline: they register after the
// command line is parsed.)
// MISSING: Failed to load passes from {{.*}}NoSuchPlugin.so

// CHECK-LABEL: func.func @ffn
func.func @ffn(%r: !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>,
               %g: tensor<8x64x128xbf16>, %u: tensor<8x64x128xbf16>, %d: tensor<8x128x64xbf16>) {
  // 3 weights x 2 flops x k=2 x 64 x 128 = 98304; 3 x 8*64*128 x 2 bytes = 393216.
  // CHECK: moe.expert_ffn swiglu {{.*}} {moe_example.flops_per_token = 98304 : i64, moe_example.weight_bytes = 393216 : i64}
  %y = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x64xbf16>, experts = 8, k = 2>,
      tensor<8x64x128xbf16>, tensor<8x64x128xbf16>, tensor<8x128x64xbf16>
  return
}
