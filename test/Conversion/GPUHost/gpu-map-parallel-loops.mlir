// RUN: moe-opt %s --pass-pipeline='builtin.module(func.func(moe-gpu-map-parallel-loops,canonicalize))' --split-input-file | FileCheck %s

// Tests that a 2-D parallel loop over [n, 8] becomes one launch of
// ceil(8n / 256) blocks of 256 threads, the iteration recovered from the
// linear id with the last dimension fastest, guarded against the tail.
// CHECK-LABEL: func.func @elementwise(
// CHECK:         %[[N8:.*]] = arith.muli %{{.*}}, %c8
// CHECK:         %[[BLOCKS:.*]] = arith.ceildivui %[[N8]], %c256
// CHECK:         gpu.launch blocks(%[[BX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[BLOCKS]], %{{.*}} = %c1, %{{.*}} = %c1) threads(%[[TX:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %c256
// CHECK:           %[[BASE:.*]] = arith.muli %[[BX]], %c256
// CHECK:           %[[LIN:.*]] = arith.addi %[[BASE]], %[[TX]]
// CHECK:           arith.cmpi ult, %[[LIN]], %[[N8]]
// CHECK:           scf.if
// CHECK:             %[[J:.*]] = arith.remui %[[LIN]], %c8
// CHECK:             %[[I:.*]] = arith.divui %[[LIN]], %c8
// CHECK:             memref.load %{{.*}}[%[[I]], %[[J]]]
// CHECK:             math.exp
// CHECK:           gpu.terminator
// CHECK-NOT:     scf.parallel
func.func @elementwise(%a: memref<?x8xf32>, %b: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = memref.dim %a, %c0 : memref<?x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c8) step (%c1, %c1) {
    %v = memref.load %a[%i, %j] : memref<?x8xf32>
    %e = math.exp %v : f32
    memref.store %e, %b[%i, %j] : memref<?x8xf32>
    scf.reduce
  }
  return
}

// -----

// Tests that a loop with a reduction of its own is left alone.
// CHECK-LABEL: func.func @reduction(
// CHECK-NOT:     gpu.launch
// CHECK:         scf.parallel
func.func @reduction(%a: memref<8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %s = scf.parallel (%i) = (%c0) to (%c8) step (%c1) init (%zero) -> f32 {
    %v = memref.load %a[%i] : memref<8xf32>
    scf.reduce(%v : f32) {
    ^bb0(%x: f32, %y: f32):
      %r = arith.addf %x, %y : f32
      scf.reduce.return %r : f32
    }
  }
  return %s : f32
}

// -----

// Tests that scalar glue (a 0-d op: loads, arithmetic, a store, no loop)
// becomes a one-thread launch, so the host never touches device memory.
// CHECK-LABEL: func.func @scalar(
// CHECK-NOT:     memref.load
// CHECK:         gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1, %{{.*}} = %c1, %{{.*}} = %c1)
// CHECK:           %[[A:.*]] = memref.load %{{.*}}[] : memref<f32>
// CHECK:           %[[B:.*]] = memref.load %{{.*}}[] : memref<f32>
// CHECK:           %[[M:.*]] = arith.mulf %[[A]], %{{.*}} : f32
// CHECK:           %[[S:.*]] = arith.addf %[[M]], %[[B]] : f32
// CHECK:           memref.store %[[S]], %{{.*}}[] : memref<f32>
// CHECK:           gpu.terminator
// CHECK:         return
func.func @scalar(%a: memref<f32>, %b: memref<f32>, %out: memref<f32>) {
  %c = arith.constant 0.01 : f32
  %x = memref.load %a[] : memref<f32>
  %y = memref.load %b[] : memref<f32>
  %m = arith.mulf %x, %c : f32
  %s = arith.addf %m, %y : f32
  memref.store %s, %out[] : memref<f32>
  return
}
