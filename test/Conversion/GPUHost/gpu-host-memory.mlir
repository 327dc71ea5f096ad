// RUN: moe-opt %s --moe-gpu-host-memory --split-input-file --verify-diagnostics | FileCheck %s

// Tests that host allocations and copies move to the device and
// deallocations go (the runtime frees a call's buffers after its results are
// read); kernels' own memory is untouched.
// CHECK-LABEL: func.func @host(
// CHECK:         %[[B:.*]] = gpu.alloc  (%{{.*}}) : memref<?x8xf32>
// CHECK:         gpu.memcpy  %[[B]], %{{.*}} : memref<?x8xf32>, memref<?x8xf32>
// CHECK-NOT:     memref.dealloc
// CHECK:         return %[[B]]
func.func @host(%a: memref<?x8xf32>) -> memref<?x8xf32> {
  %c0 = arith.constant 0 : index
  %n = memref.dim %a, %c0 : memref<?x8xf32>
  %b = memref.alloc(%n) : memref<?x8xf32>
  memref.copy %a, %b : memref<?x8xf32> to memref<?x8xf32>
  %t = memref.alloc() : memref<4xi32>
  memref.dealloc %t : memref<4xi32>
  return %b : memref<?x8xf32>
}

// -----

func.func @reads_device_memory(%a: memref<8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{host code of a GPU layer reads or writes a buffer directly ('memref.load'); only kernels may touch device memory}}
  %v = memref.load %a[%c0] : memref<8xf32>
  return %v : f32
}
