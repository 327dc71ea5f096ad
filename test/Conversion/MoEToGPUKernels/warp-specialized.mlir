// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-warp-specialized=true' | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-warp-specialized=true gemm-n=128' | FileCheck %s --check-prefix=NARROW

// Tests gemm-warp-specialized=true: the host launches min(blocks, the
// runtime's SM count) blocks of 384 threads, with four stages of 48 KiB, two
// consumer warpgroups' 64 epilogue rows of 128 bf16 columns (padded to 272
// bytes), a full and an empty mbarrier a stage, each stage's tile (16 bytes)
// and two fetched tile numbers: 196608 + 34816 + 136 bytes; its last operand
// is the tile counter, zeroed on the stream before the launch. Warpgroup 0
// gives up registers, takes tile numbers from the counter and fills the
// stages, arriving on the full barriers by cp.async (and its thread 0 once
// more, publishing the stage's tile); the consumers take the registers, wait
// on them until a stage names a tile past the end, and
// release each stage on its empty barrier; their epilogue (two passes of 128
// columns) meets at the warpgroup's named barrier, never at the block's.
// CHECK:       func.func private @moeCudaMultiprocessors() -> i64
// CHECK-LABEL: func.func @deep(
// CHECK:         gpu.memset  %[[COUNTER:.*]], %c0_i32 : memref<?xi32>, i32
// CHECK:         %[[SMS:.*]] = call @moeCudaMultiprocessors() : () -> i64
// CHECK:         %[[SMSI:.*]] = arith.index_cast %[[SMS]] : i64 to index
// CHECK:         %[[GRID:.*]] = arith.minui %{{.*}}, %[[SMSI]] : index
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k256_n256_identity_se_ws blocks in (%[[GRID]],
// CHECK-SAME:      threads in (%c384,
// CHECK-SAME:      dynamic_shared_memory_size %c231560_i32
// CHECK-SAME:      %[[COUNTER]] : memref<?xi32>)
// CHECK:       gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k256_n256_identity_se_ws(
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 129;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 8;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 129;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 8;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 129;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 8;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 129;
// CHECK:         mbarrier.init.shared::cta.b64 [$0], 8;
// CHECK:         fence.mbarrier_init
// CHECK:         gpu.barrier
// CHECK-NOT:     gpu.barrier
// CHECK:         setmaxnreg.dec.sync.aligned.u32 104;
// CHECK:         memref.atomic_rmw addi
// CHECK:         scf.while
// CHECK:           memref.atomic_rmw addi
// CHECK:           scf.for %{{.*}} = %c0 to %c4 step %c1 {
// CHECK:             mbarrier.try_wait.parity
// CHECK-COUNT-24:    cp.async.cg.shared.global
// CHECK:             cp.async.mbarrier.arrive.noinc.shared::cta.b64
// CHECK:             mbarrier.arrive.shared::cta.b64
// CHECK:         cp.async.mbarrier.arrive.noinc.shared::cta.b64
// CHECK:         mbarrier.arrive.shared::cta.b64
// CHECK:         cp.async.wait_all
// CHECK:         setmaxnreg.inc.sync.aligned.u32 200;
// CHECK:         scf.while
// CHECK:           mbarrier.try_wait.parity
// CHECK:           scf.condition
// CHECK:           scf.for %{{.*}} = %c0 to %c4 step %c1 iter_args(
// CHECK:             mbarrier.try_wait.parity
// CHECK:             fence.proxy.async.shared::cta
// CHECK:             wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// CHECK:             wgmma.wait_group.sync.aligned 1;
// CHECK:             mbarrier.arrive.shared::cta.b64
// CHECK:           wgmma.wait_group.sync.aligned 0;
// CHECK:           mbarrier.arrive.shared::cta.b64
// CHECK-COUNT-4:   bar.sync $0, 128;
// CHECK-NOT:     gpu.barrier
// CHECK:         gpu.return

// Only 256-column blocks have a warp-specialised form: 128 keeps the one-tile kernel.
// NARROW:        gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_bf16_wf32_k256_n256_identity_se blocks in
// NARROW-SAME:     threads in (%c256,
func.func @deep(%x: tensor<?x256xbf16>, %w: tensor<256x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.dense %x, %w : tensor<?x256xbf16>, tensor<256x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
