// RUN: moe-opt %s --convert-moe-to-gpu-kernels="chip=sm_80" --split-input-file --verify-diagnostics | FileCheck %s

// (sm_80: the mma.sync GEMM; wgmma.mlir tests the sm_90a one.)

// Tests that a bf16 dense product becomes a launch of a tensor-core GEMM
// generated into @moe_kernels: flat 1-D operands, a fresh result buffer,
// ceil(rows / 128) * ceil(n / 128) blocks of 256 threads, 64 KiB of dynamic
// shared memory (4 stages of 16 KiB) and the 128-register launch bound.
// CHECK-LABEL: module attributes {gpu.container_module}
// CHECK-LABEL: func.func @dense(
// CHECK-SAME:    attributes {llvm.emit_c_interface}
// CHECK:         %[[X:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?x64xbf16> to memref<?x64xbf16>
// CHECK:         memref.collapse_shape %[[X]] {{\[\[}}0, 1]] : memref<?x64xbf16> into memref<?xbf16>
// CHECK:         %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<?x256xbf16>
// CHECK:         %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_mma32_bf16_bf16_wf32_k64_n256_identity blocks in
// CHECK-SAME:      threads in (%c256,
// CHECK-SAME:      dynamic_shared_memory_size %c65536_i32
// CHECK:         return %[[T]]
// CHECK:       gpu.module @moe_kernels
// CHECK:         llvm.mlir.global external @moe_smem() {addr_space = 3 : i32, alignment = 1024 : i64} : !llvm.array<0 x i8>
// CHECK:         gpu.func @moe_gemm_mma32_bf16_bf16_wf32_k64_n256_identity(
// CHECK-SAME:      kernel attributes {nvvm.maxntid = array<i32: 256, 1, 1>, nvvm.minctasm = 2 : i32}
// CHECK:           cp.async.cg.shared.global
// CHECK:           ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK:           ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK:           mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
func.func @dense(%x: tensor<?x64xbf16>, %w: tensor<64x256xbf16>) -> tensor<?x256xbf16> {
  %y = moe.dense %x, %w : tensor<?x64xbf16>, tensor<64x256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// -----

// Tests that f32 products, and sizes the tensor cores do not take (k not a
// multiple of 32), get the FMA GEMM: 64 x 64 tiles, no shared memory operand.
// CHECK-LABEL: func.func @dense_f32(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_fma_f32_f32_wf32_k64_n16_identity
// CHECK-NOT:       dynamic_shared_memory_size
// CHECK-LABEL: func.func @dense_odd_k(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_fma_bf16_bf16_wf32_k24_n16_identity
// CHECK:       gpu.func @moe_gemm_fma_f32_f32_wf32_k64_n16_identity({{.*}}) workgroup(%{{.*}} : memref<16x64xf32, #gpu.address_space<workgroup>>
// CHECK:           math.fma
func.func @dense_f32(%x: tensor<?x64xf32>, %w: tensor<64x16xf32>) -> tensor<?x16xf32> {
  %y = moe.dense %x, %w : tensor<?x64xf32>, tensor<64x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
func.func @dense_odd_k(%x: tensor<?x24xbf16>, %w: tensor<24x16xbf16>) -> tensor<?x16xbf16> {
  %y = moe.dense %x, %w : tensor<?x24xbf16>, tensor<24x16xbf16> -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// -----

// Tests that a product with few output columns (a router) is the narrow
// kernel: 8 tokens a block of 256 (8 x 8 sums a thread), k split across the
// block in 16-byte pieces, 62 shuffles of a reduce-scatter, then the warps'
// partial sums through shared memory.
// CHECK-LABEL: func.func @router(
// CHECK:         %[[NBLOCKS:.*]] = arith.ceildivui %{{.*}}, %c8
// CHECK:         gpu.launch_func  @moe_kernels::@moe_narrow_dense_bf16_bf16_k2048_n8 blocks in (%[[NBLOCKS]], %{{.*}}, %{{.*}}) threads in (%c256
// A k that 256 threads' 16-byte pieces do not divide keeps the GEMM.
// CHECK-LABEL: func.func @router_short_k(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_
// CHECK:       gpu.func @moe_narrow_dense_bf16_bf16_k2048_n8({{.*}}) workgroup(%{{.*}} : memref<512xf32, #gpu.address_space<workgroup>>)
// CHECK:         llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>
// CHECK-COUNT-62: gpu.shuffle xor
// CHECK:         gpu.barrier
func.func @router(%x: tensor<?x2048xbf16>, %w: tensor<2048x8xbf16>) -> tensor<?x8xbf16> {
  %y = moe.dense %x, %w : tensor<?x2048xbf16>, tensor<2048x8xbf16> -> tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}
func.func @router_short_k(%x: tensor<?x1024xbf16>, %w: tensor<1024x8xbf16>) -> tensor<?x8xbf16> {
  %y = moe.dense %x, %w : tensor<?x1024xbf16>, tensor<1024x8xbf16> -> tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}

// -----

// Tests that softmax routing (score, top-k, renormalisation, scale) is one
// kernel, a warp per token (8 a block of 256): the selection and the
// softmax's max and sum are shuffles across the warp.
// CHECK-LABEL: func.func @route(
// CHECK:         %[[BLOCKS:.*]] = arith.ceildivui %{{.*}}, %c8
// CHECK:         gpu.launch_func  @moe_kernels::@moe_topk_f32_f32_e8_k2_s1_r1_x2500000 blocks in (%[[BLOCKS]], %{{.*}}, %{{.*}}) threads in (%c256
// CHECK:       gpu.func @moe_topk_f32_f32_e8_k2_s1_r1_x2500000(%{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xi32>, %{{.*}}: index) kernel
// CHECK:         scf.for
// CHECK-COUNT-10:  gpu.shuffle xor
// CHECK:         scf.yield
// CHECK-COUNT-5: gpu.shuffle xor {{.*}} : f32
// CHECK:         math.exp
func.func @route(%l: tensor<?x8xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %e = moe.topk %l k = 2 score = softmax renormalize scale = 2.5 : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %e : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// Tests that k > 32 keeps a thread a token (256 tokens a block).
// CHECK-LABEL: func.func @route_wide(
// CHECK:         %[[BLOCKS:.*]] = arith.ceildivui %{{.*}}, %c256
// CHECK:         gpu.launch_func  @moe_kernels::@moe_topk_f32_f32_e64_k40_s0_r0_x1000000 blocks in (%[[BLOCKS]], %{{.*}}, %{{.*}}) threads in (%c256
// CHECK:       gpu.func @moe_topk_f32_f32_e64_k40_s0_r0_x1000000(
// CHECK-NOT:     gpu.shuffle
// CHECK:         gpu.return
func.func @route_wide(%l: tensor<?x64xf32>) -> (tensor<?x40xf32>, tensor<?x40xi32>) {
  %w, %e = moe.topk %l k = 40 : tensor<?x64xf32> -> tensor<?x40xf32>, tensor<?x40xi32>
  return %w, %e : tensor<?x40xf32>, tensor<?x40xi32>
}

// -----

// Tests DeepSeek's group-limited top-k: a warp a token, each group's best two
// merged across the warp (two shuffles a step), then the experts' selection.
// CHECK-LABEL: func.func @group_route(
// CHECK:         %[[BLOCKS:.*]] = arith.ceildivui %{{.*}}, %c8
// CHECK:         gpu.launch_func  @moe_kernels::@moe_group_topk_f32_e64_k4_g4_t2 blocks in (%[[BLOCKS]], %{{.*}}, %{{.*}}) threads in (%c256
// CHECK:       gpu.func @moe_group_topk_f32_e64_k4_g4_t2(
// CHECK-COUNT-40: gpu.shuffle xor {{.*}} : f32
// CHECK:         scf.for
// CHECK:         gpu.shuffle xor {{.*}} : i32
func.func @group_route(%s: tensor<?x64xf32>) -> tensor<?x4xi32> {
  %e = moe.group_topk %s k = 4 groups = 4 top_groups = 2 : tensor<?x64xf32> -> tensor<?x4xi32>
  return %e : tensor<?x4xi32>
}

// -----

// Tests the dispatch -> SwiGLU experts -> combine chain: the device-side plan
// (counts, schedule, permutation), the gate/up GEMM gathering token rows with
// SwiGLU in its epilogue, the down GEMM scaling by the routing weight, and
// the ordered combine; the routed ops are gone.
// CHECK-LABEL: func.func @experts(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_count_e4_k2_c0_m128 blocks in (%c4{{.*}}) threads in (%c256{{.*}}
// CHECK:         gpu.launch_func  @moe_kernels::@moe_schedule_e4_k2_c0_m128 blocks in (%c1{{.*}}) threads in (%c1024,
// CHECK:         gpu.launch_func  @moe_kernels::@moe_permute_e4_k2_c0_m128 blocks in (%c4{{.*}}) threads in (%c1024
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_mma32_bf16_bf16_wf32_k64_n128_silu_glu_gather_grouped
// CHECK:         gpu.launch_func  @moe_kernels::@moe_gemm_mma32_bf16_bf16_wf32_k128_n64_identity_scale_grouped
// CHECK:         %[[CHUNKS:.*]] = arith.muli %{{.*}}, %c8 : index
// CHECK:         %[[CBLOCKS:.*]] = arith.ceildivui %[[CHUNKS]], %c256
// CHECK:         gpu.launch_func  @moe_kernels::@moe_combine_bf16_f32_bf16_bf16_d64_k2 blocks in (%[[CBLOCKS]]
// CHECK-NOT:     moe.dispatch
// CHECK-NOT:     moe.expert_ffn
// The permutation: warps ballot 32 assignments at a time; a match's rank
// counts the matching lanes below it.
// CHECK:       gpu.func @moe_permute_e4_k2_c0_m128(
// CHECK-SAME:      workgroup(%{{.*}} : memref<32xi32, #gpu.address_space<workgroup>>)
// CHECK:         vote.sync.ballot.b32
// CHECK:         llvm.intr.ctpop
// CHECK:         gpu.barrier
// CHECK:         vote.sync.ballot.b32
// CHECK:         llvm.intr.ctpop
// Combine: a thread sums 8 consecutive bf16 columns of a token's k rows (16-byte loads and store).
// CHECK:       gpu.func @moe_combine_bf16_f32_bf16_bf16_d64_k2(
// CHECK:         scf.for
// CHECK:         llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>
// CHECK:         llvm.store %{{.*}}, %{{.*}} {alignment = 16 : i64} : vector<8xbf16>, !llvm.ptr<1>
func.func @experts(%x: tensor<?x64xbf16>, %e: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                   %g: tensor<4x64x128xbf16>, %u: tensor<4x64x128xbf16>, %d: tensor<4x128x64xbf16>) -> tensor<?x64xbf16> {
  %r = moe.dispatch %x, %e : tensor<?x64xbf16>, tensor<?x2xi32> -> !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>
  %h = moe.expert_ffn swiglu %r, %g, %u, %d : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>, tensor<4x128x64xbf16>
  %y = moe.combine %h, %w : !moe.routed<tensor<?x64xbf16>, experts = 4, k = 2>, tensor<?x2xf32> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Tests that a capacity reaches the plan's kernels (in millionths) and that
// dispatch straight into combine needs no GEMM.
// CHECK-LABEL: func.func @capacity_identity(
// CHECK:         gpu.launch_func  @moe_kernels::@moe_count_e4_k1_c1250000_m64
// CHECK-NOT:     moe_gemm
// CHECK:         gpu.launch_func  @moe_kernels::@moe_combine_f32_f32_f32_f32_d16_k1_id
// CHECK:       gpu.func @moe_combine_f32_f32_f32_f32_d16_k1_id(
// CHECK:         llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
func.func @capacity_identity(%x: tensor<?x16xf32>, %e: tensor<?x1xi32>, %w: tensor<?x1xf32>) -> tensor<?x16xf32> {
  %r = moe.dispatch %x, %e : tensor<?x16xf32>, tensor<?x1xi32> -> !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.25>
  %y = moe.combine %r, %w : !moe.routed<tensor<?x16xf32>, experts = 4, k = 1, capacity = 1.25>, tensor<?x1xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

func.func @mixed(%x: tensor<?x64xbf16>, %w: tensor<64x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{the GPU backend needs moe.dense's input and weight of one element type, not 'bf16' and 'f32'}}
  %y = moe.dense %x, %w : tensor<?x64xbf16>, tensor<64x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
