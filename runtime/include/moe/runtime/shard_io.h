// shard_io.h - a sharded layer's files on a mesh (docs/sharding.md): every
// rank reads only its shard of each weight and its rows of each input, and
// the outputs are the global ones, so the same files serve every mesh and
// `cmp` of two output files tells whether two meshes agree.
#ifndef MOE_RUNTIME_SHARD_IO_H
#define MOE_RUNTIME_SHARD_IO_H

#include "moe/runtime/comm.h"
#include "moe/runtime/layer.h"

#include <cstdio>

namespace moe::runtime {

/// Refuses, on every rank, a launch whose ranks run different artifacts
/// (their hashes are all-gathered and compared with rank 0's).
moe_status_t checkSameArtifact(Communicator &comm, const Layer &layer);

/// This rank's shard of every parameter, read with pread from a safetensors
/// file of global tensors (float types converted as convertWeightTypes does,
/// with a note on `notes` from rank 0).
moe_status_t readParameterShards(const Layer &layer, const std::string &path, std::vector<Tensor> &out, FILE *notes);
/// This rank's shard of each of `global` (random parameters made whole).
std::vector<Tensor> shardParameters(const Layer &layer, const std::vector<Tensor> &global);

/// Whether a signature tensor is split by rows over the ranks (its first
/// dimension is symbolic: the tokens).
bool isTokenSliced(const TensorSpec &spec);
/// This rank's rows of each input (tokenSlice), read with pread.
moe_status_t readInputRows(const Layer &layer, const std::string &path, int64_t rank, int64_t world,
                           std::vector<Tensor> &out);
/// This rank's rows of each of `global`.
std::vector<Tensor> sliceInputs(const Layer &layer, const std::vector<Tensor> &global, int64_t rank, int64_t world);

/// The global outputs from every rank's `local` ones: token rows gathered in
/// rank order over the world, the rest (scalar losses, equal everywhere)
/// taken from this rank. A collective: every rank calls it.
moe_status_t gatherOutputs(Communicator &comm, const Layer &layer, const std::vector<Tensor> &local,
                           std::vector<Tensor> &global);

/// The global gradients of a backward from every rank's `local` ones (the
/// backward's order): the inputs' rows gathered in rank order, the
/// parameters' shards by gatherShards, the loads (global already) as they
/// are. A collective: every rank calls it.
moe_status_t gatherGradients(Communicator &comm, const Layer &layer, const std::vector<Tensor> &local,
                             std::vector<Tensor> &global);

/// The global tensors of `specs` (parameters, or their gradients, which have
/// their parameters' placement) from every rank's `local` shards, in specs'
/// order: each rank's elements (paramShard) gathered over the world. A
/// collective: every rank calls it, and every rank gets the whole tensors.
moe_status_t gatherShards(Communicator &comm, const Mesh &mesh, const std::vector<TensorSpec> &specs,
                          const std::vector<Tensor> &local, std::vector<Tensor> &global);

} // namespace moe::runtime

#endif // MOE_RUNTIME_SHARD_IO_H
