// mesh.h - the device mesh and the placement rules: the compiler <-> runtime
// contract for sharded layers (spec, "Sharding"; docs/sharding.md).
//
// A mesh `rep=R,dp=D,ep=E` has R*D*E ranks. World rank w has coordinates
//   ep = w % E,  dp = (w / E) % D,  rep = w / (E * D)
// (ep innermost: an expert-parallel group is E consecutive ranks, one node's
// GPUs when E fits a node). The compiler decides each parameter's Placement
// and the local shape its code takes; the runtime reads exactly that shard
// from the checkpoint. Both call these functions, so they cannot disagree.
#ifndef MOE_RUNTIME_MESH_H
#define MOE_RUNTIME_MESH_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// A set of mesh axes a collective runs over (a bit mask; the generated code
/// passes it as an i32). Ranks that differ only in these axes form one group.
enum MeshAxes : int32_t { kAxisRep = 1, kAxisDp = 2, kAxisEp = 4, kAllAxes = 7 };

struct MeshCoords {
  int64_t rep = 0, dp = 0, ep = 0;
};

struct Mesh {
  int64_t rep = 1, dp = 1, ep = 1;
  /// Placed on a mesh although it has one device (`--mesh ep=1`): the layer
  /// is still the SPMD program, so a world of one runs every collective of
  /// it (how their cost is measured on one GPU).
  bool placedOnOne = false;

  int64_t world() const { return rep * dp * ep; }
  bool isSingleDevice() const { return world() == 1; }
  /// Whether the layer is the per-rank program of this mesh (every mesh of
  /// more than one device, and one of one asked for by name).
  bool isPlaced() const { return world() > 1 || placedOnOne; }
  /// `rep=R,dp=D,ep=E` with the axes of size 1 left out; "1" for one device
  /// (unplaced), "rep=1,dp=1,ep=1" for a placed mesh of one.
  std::string toString() const;
  bool operator==(const Mesh &o) const {
    return rep == o.rep && dp == o.dp && ep == o.ep && isPlaced() == o.isPlaced();
  }
  bool operator!=(const Mesh &o) const { return !(*this == o); }

  MeshCoords coords(int64_t rank) const { return {rank / (ep * dp), (rank / ep) % dp, rank % ep}; }
  int64_t rankOf(MeshCoords c) const { return (c.rep * dp + c.dp) * ep + c.ep; }
  /// The world ranks of `rank`'s group over `axes`, in increasing order (the
  /// order collectives concatenate in).
  std::vector<int64_t> group(int64_t rank, int32_t axes) const;
  /// The size of a group over `axes`.
  int64_t groupSize(int32_t axes) const;
};

/// Parses `rep=R,dp=D,ep=E` (any subset, any order, positive sizes; "1" or ""
/// for one device, unplaced; named axes all of size 1 give a placed mesh of
/// one). On failure returns nullopt and sets `error`.
std::optional<Mesh> parseMesh(std::string_view text, std::string &error);

/// The rows of a [tokens, ...] tensor rank `rank` holds: the global batch in
/// rank order, the first `tokens % world` ranks one row more.
struct RowSlice {
  int64_t begin = 0, count = 0;
};
RowSlice tokenSlice(int64_t tokens, int64_t world, int64_t rank);

/// How a parameter is laid out on the mesh.
enum class Placement {
  Replicated, ///< every rank of a replica needs all of it (router, dense and shared-expert weights)
  Experts,    ///< stacked [n_experts, ...]: split by expert over ep
};
const char *placementName(Placement p);
std::optional<Placement> parsePlacement(std::string_view name);

/// The part of a parameter (global shape `shape`, row-major) one rank stores.
/// Elements [begin, begin + count) of the flattened global tensor, then zeros
/// up to `stored` elements (FSDP chunks are equal, the last one padded).
struct ParamShard {
  int64_t begin = 0, count = 0, stored = 0;
  /// The shape of the tensor the compiled code takes for it: the local
  /// experts' slice when not FSDP-sharded, else the 1-D chunk [stored].
  std::vector<int64_t> localShape;
  /// With FSDP: the shape the chunks gather back to (the local slice), the
  /// group the gather runs over and the group's size; fsdpAxes == 0 without.
  std::vector<int64_t> gatheredShape;
  int32_t fsdpAxes = 0;
  int64_t fsdpSize = 1;
};

/// Where `rank`'s shard of a parameter lies. Experts tensors need
/// shape[0] % mesh.ep == 0 (checked by the compiler, with a message).
ParamShard paramShard(const Mesh &mesh, int64_t rank, Placement placement, const std::vector<int64_t> &shape);

} // namespace moe::runtime

#endif // MOE_RUNTIME_MESH_H
