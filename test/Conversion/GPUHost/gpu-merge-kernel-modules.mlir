// RUN: moe-opt %s --moe-gpu-merge-kernel-modules | FileCheck %s

// Tests that outlined kernels join @moe_kernels under their modules' names
// and the launches follow.
// CHECK-LABEL: func.func @host(
// CHECK:         gpu.launch_func @moe_kernels::@existing
// CHECK:         gpu.launch_func @moe_kernels::@layer_kernel blocks
// CHECK:         gpu.launch_func @moe_kernels::@layer_kernel_0 blocks
// CHECK:       gpu.module @moe_kernels {
// CHECK:         gpu.func @existing() kernel
// CHECK:         gpu.func @layer_kernel() kernel
// CHECK:         gpu.func @layer_kernel_0() kernel
// CHECK-NOT:   gpu.module
module attributes {gpu.container_module} {
  func.func @host() {
    %c1 = arith.constant 1 : index
    gpu.launch_func @moe_kernels::@existing blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @layer_kernel::@layer_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @layer_kernel_0::@layer_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
  gpu.module @moe_kernels {
    gpu.func @existing() kernel { gpu.return }
  }
  gpu.module @layer_kernel {
    gpu.func @layer_kernel() kernel { gpu.return }
  }
  gpu.module @layer_kernel_0 {
    gpu.func @layer_kernel() kernel { gpu.return }
  }
}
