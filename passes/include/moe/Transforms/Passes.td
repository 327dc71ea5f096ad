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

def MoEPlaceOnMesh : Pass<"moe-place-on-mesh", "::mlir::ModuleOp"> {
  let summary = "turn a single-device layer into the per-rank program of a device mesh";
  let description = [{
    Places the layer on the mesh `rep=R,dp=D,ep=E` (spec, "Sharding";
    docs/sharding.md): every rank runs the program this pass makes, on its
    own rows of the global batch. The pass

    - declares `moe.mesh @mesh axes = ["rep", "dp", "ep"] shape = [R, D, E]`;
    - with `ep > 1`: splits each stacked expert weight by expert (the
      argument becomes the rank's `[n / E, ...]` slice) and puts a
      `moe.all_to_all` over `ep` on each side of `moe.expert_ffn` (rows to
      their experts' ranks, outputs back); a layer with a capacity gets them
      on every mesh, since which rows an expert keeps depends on the counts
      of the ranks before it;
    - with `dp > 1` (FSDP): makes every parameter argument the rank's flat,
      padded 1/D chunk (expert slices over `dp`, the rest over `dp` and `ep`)
      and gathers it with `moe.all_gather` just before its first use, then
      unflattens it (bufferization frees it after its last use);
    - on more than one rank: all-gathers the token rows the auxiliary losses
      read, over the whole mesh, so each loss is the global batch's, summed
      in the single-device order (layout invariance);
    - records each parameter's placement and global shape (`moe.placement`,
      `moe.global_shape`) for the artifact's signature.

    The placement rules are the runtime's (moe/runtime/mesh.h), so the
    compiler and the runtime agree on every shard. `mesh=1` leaves the module
    unchanged; a mesh of one named by its axes (`mesh=ep=1`) is placed, the
    exchange around the experts included, so that a world of one runs every
    collective of the sharded program.

    ```mlir
    // moe-opt --moe-place-on-mesh="mesh=ep=2"
    %r = moe.dispatch %x, %e : tensor<?x64xf32>, tensor<?x2xi32>
        -> !moe.routed<tensor<?x64xf32>, experts = 8, k = 2>
    // becomes
    %r = moe.dispatch ...
    %r2 = moe.all_to_all %r on @mesh axes = ["ep"] : !moe.routed<..., experts = 8, k = 2>
        -> !moe.routed<..., experts = 8, k = 2, expert_shards = 2>
    ```
  }];
  let options = [
    Option<"mesh", "mesh", "std::string", /*default=*/"\"\"",
           "the mesh: rep=R,dp=D,ep=E (axes left out are 1)">
  ];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

def MoEDifferentiate : Pass<"moe-differentiate", "::mlir::ModuleOp"> {
  let summary = "build each layer's backward (reverse mode) from its forward";
  let description = [{
    For each layer `@f`, adds `@f_backward`: it takes `@f`'s arguments, then
    one cotangent per result (`moe.cotangent = i`), and returns the gradient
    of every floating-point argument (`moe.gradient = "x"` or the
    parameter's name, e.g. `"experts.w_gate"`), of `sum_i <c_i, y_i>`.

    - The forward is recomputed in the backward; what the backward does not
      read of it is removed. With `keep-up-products`, each `moe.expert_ffn`'s
      up products are residuals instead (the recompute would be two of the
      backward's GEMMs): `@f_train` is `@f` returning them after its results
      (`moe.residual = i`), and `@f_backward` takes them after the
      cotangents, its `moe.expert_ffn_grad` reading them. With
      `keep-tensors`, the results of the forward's other moe ops that the
      backward reads (the router's logits, the routing, a shared expert's
      products) are residuals too, after the up products; only the routed
      chain (`dispatch`, a view of the rows, and `expert_ffn`) and the glue
      (casts, reshapes, constants) are recomputed.
    - Each op's rule is its `DifferentiableOpInterface`
      (dialect/lib/IR/MoEGradients.cpp); the backward ops are those of
      `MoEGradOps.td`. Casts and reshapes are inverted here.
    - Indices carry no gradient; an argument nothing flows back to gets zeros;
      cotangents reaching one value from several uses are summed
      (`moe.binary add`), in the order of the uses.

    The reference evaluator runs the result, and it equals
    `reference::gradient` (test/unit/GradientTest.cpp).

    ```mlir
    // moe-opt --moe-differentiate
    func.func @f(%x: tensor<?x8xf32> {moe.input = "x"}) -> tensor<?x8xf32> {
      %y = moe.unary silu %x : tensor<?x8xf32>
      return %y : tensor<?x8xf32>
    }
    // adds
    func.func @f_backward(%x: tensor<?x8xf32> {moe.input = "x"},
                          %dy: tensor<?x8xf32> {moe.cotangent = 0 : i64})
        -> (tensor<?x8xf32> {moe.gradient = "x"}) {
      %dx = moe.unary_grad silu %x, %dy : tensor<?x8xf32>
      return %dx : tensor<?x8xf32>
    }
    ```
  }];
  let options = [
    Option<"keepUpProducts", "keep-up-products", "bool", /*default=*/"false",
           "keep each expert_ffn's up products for the backward (adds @f_train)">,
    Option<"keepTensors", "keep-tensors", "bool", /*default=*/"false",
           "keep the results of the forward's moe ops (but dispatch and expert_ffn) that the backward reads, "
           "rather than recomputing them (adds @f_train)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::tensor::TensorDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD
