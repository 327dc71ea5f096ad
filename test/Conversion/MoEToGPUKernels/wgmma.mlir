// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm=wgmma gemm-n=128 gemm-warp-specialized=false' --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm=wgmma gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=WIDE
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm=mma gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=MMA
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=STAGED
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-epilogue=direct gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=DIRECT
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-tma=true gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=TMA
// RUN: moe-opt %s --convert-moe-to-gpu-kernels='gemm-persistent=true gemm-warp-specialized=false' --split-input-file | FileCheck %s --check-prefix=PERSISTENT

// Tests that gemm=wgmma gives a bf16 product the warpgroup-MMA GEMM: 64-deep
// stages, 3 of 32 KiB (96 KiB of dynamic shared memory), two 128-byte-swizzle
// descriptors a stage, four m64n128k16 steps waited for in one asm block.
// CHECK-LABEL: func.func @dense(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmma64_bf16_bf16_wf32_k128_n256_identity_se blocks in
// CHECK-SAME:      threads in (%c256,
// CHECK-SAME:      dynamic_shared_memory_size %c98304_i32
// CHECK:       gpu.module @moe_kernels
// CHECK:         llvm.mlir.global external @moe_smem() {addr_space = 3 : i32, alignment = 1024 : i64}
// CHECK:         gpu.func @moe_gemm_wgmma64_bf16_bf16_wf32_k128_n256_identity_se(
// CHECK:           fence.proxy.async.shared::cta
// CHECK:           wgmma.fence.sync.aligned;
// CHECK-SAME:      wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK-SAME:      wgmma.commit_group.sync.aligned; wgmma.wait_group.sync.aligned 0;
// MMA:           gpu.launch_func  @moe_kernels::@moe_gemm_mma32_bf16_bf16_wf32_k128_n256_identity

// By default a product of 256 columns or more gets 256-column blocks: four
// stages of 48 KiB (192 KiB), one block an SM, a stage's wgmma left in flight.
// WIDE-LABEL:  func.func @dense(
// WIDE:          gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se blocks in
// WIDE-SAME:       dynamic_shared_memory_size %c196608_i32
// WIDE:          gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se(
// WIDE-SAME:       nvvm.minctasm = 1 : i32
// WIDE:            wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// WIDE-SAME:       wgmma.commit_group.sync.aligned; wgmma.wait_group.sync.aligned 1;
// WIDE:            wgmma.wait_group.sync.aligned 0;

// By default (gemm-epilogue=staged) the tile goes through shared memory (rows
// of 256 bf16 padded to 528 bytes) and out in 16-byte chunks;
// gemm-epilogue=direct stores each thread's pairs of elements straight to C.
// STAGED-LABEL: func.func @dense(
// STAGED:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se blocks in
// STAGED:         gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se(
// STAGED:           wgmma.wait_group.sync.aligned 0;
// STAGED:           gpu.barrier
// STAGED:           llvm.store %{{.*}}, %{{.*}} : bf16, !llvm.ptr<3>
// STAGED:           gpu.barrier
// STAGED:           %{{.*}} = llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xi32>
// STAGED:           llvm.store %{{.*}}, %{{.*}} {alignment = 16 : i64} : vector<4xi32>, !llvm.ptr
// DIRECT-LABEL: func.func @dense(
// DIRECT:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity blocks in
// DIRECT:         gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity(
// DIRECT:           wgmma.wait_group.sync.aligned 0;
// DIRECT-NOT:       !llvm.ptr<3>
// DIRECT:           memref.store %{{.*}} : memref<?xbf16>
// DIRECT-NOT:       vector<4xi32>
// DIRECT:           gpu.return

// gemm-tma=true: the host asks the runtime for the weights' tensor map
// ([1][128][256], boxes of 64 x 64) and passes its address twice (B0, B1);
// thread 0 arms a stage's mbarrier and issues four 64 x 64 TMA loads; every
// thread waits on the barrier's phase before its wgmma. The shared memory
// grows by an 8-byte mbarrier a stage.
// TMA:         func.func private @moeCudaTensorMap(i64, i64, i64, i64, i64, i64, i64) -> i64
// TMA-LABEL:   func.func @dense(
// TMA:           %[[P:.*]] = memref.extract_aligned_pointer_as_index
// TMA:           %[[B:.*]] = arith.index_cast %[[P]] : index to i64
// TMA:           %[[M:.*]] = call @moeCudaTensorMap(%[[B]], %c1_i64, %c256_i64, %c128_i64, %c1_i64{{.*}}, %c64_i64{{.*}}, %c64_i64{{.*}})
// TMA:           gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se_tma blocks in
// TMA-SAME:        dynamic_shared_memory_size %c196640_i32
// TMA-SAME:        %[[M]] : i64, %{{.*}} : i64)
// TMA:           gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se_tma(
// TMA-SAME:        %arg12: i64, %arg13: i64)
// TMA:             mbarrier.init.shared::cta.b64
// TMA:             mbarrier.arrive.expect_tx.shared::cta.b64 state, [$0], $1;
// TMA-COUNT-4:     cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes
// TMA:             mbarrier.try_wait.parity.shared::cta.b64
// TMA:             wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
func.func @dense(%x: tensor<?x128xbf16>, %w: tensor<128x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.dense %x, %w : tensor<?x128xbf16>, tensor<128x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// -----

// Tests that a k the 64-deep stages do not divide keeps mma.sync (32 deep).
// CHECK-LABEL: func.func @shallow(
// WIDE-LABEL:  func.func @shallow(
// WIDE:          @moe_gemm_mma32_bf16_bf16_wf32_k96_n128_identity
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_mma32_bf16_bf16_wf32_k96_n128_identity
func.func @shallow(%x: tensor<?x96xbf16>, %w: tensor<96x128xbf16>) -> tensor<?x128xbf16> {
  %y = moe.dense %x, %w : tensor<?x96xbf16>, tensor<96x128xbf16> -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}

// -----

// Tests gemm-persistent=true: the host launches min(blocks, the runtime's SM
// count) blocks of the persistent kernel, whose shared memory adds 64 padded
// epilogue rows (64 x 528 bytes) past the four stages; the kernel loops over
// its tiles around a loop over their k steps, then stores the tile in two
// halves of 64 rows. A k of two stages is too short for it (the copies run two
// steps ahead).
// PERSISTENT:       func.func private @moeCudaMultiprocessors() -> i64
// PERSISTENT-LABEL: func.func @deep(
// PERSISTENT:         %[[SMS:.*]] = call @moeCudaMultiprocessors() : () -> i64
// PERSISTENT:         %[[SMSI:.*]] = arith.index_cast %[[SMS]] : i64 to index
// PERSISTENT:         %[[GRID:.*]] = arith.minui %{{.*}}, %[[SMSI]] : index
// PERSISTENT:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k256_n256_identity_se_persistent blocks in (%[[GRID]],
// PERSISTENT-SAME:      dynamic_shared_memory_size %c230400_i32
// PERSISTENT-LABEL: func.func @shallow_k(
// PERSISTENT:         gpu.launch_func  @moe_kernels::@moe_gemm_wgmmaw64_bf16_bf16_wf32_k128_n256_identity_se blocks in
// PERSISTENT:       gpu.func @moe_gemm_wgmmaw64_bf16_bf16_wf32_k256_n256_identity_se_persistent(
// PERSISTENT:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// PERSISTENT:           scf.for %{{.*}} = %{{.*}} to %c4 step
// PERSISTENT:             cp.async.wait_group 1
// PERSISTENT:             wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// PERSISTENT:           wgmma.wait_group.sync.aligned 0;
// PERSISTENT-COUNT-2:   vector<4xi32>, !llvm.ptr
func.func @deep(%x: tensor<?x256xbf16>, %w: tensor<256x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.dense %x, %w : tensor<?x256xbf16>, tensor<256x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
func.func @shallow_k(%x: tensor<?x128xbf16>, %w: tensor<128x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.dense %x, %w : tensor<?x128xbf16>, tensor<128x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}
