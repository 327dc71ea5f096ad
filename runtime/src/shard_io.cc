// shard_io.cc - a sharded layer's weights, inputs and outputs (shard_io.h).
#include "moe/runtime/shard_io.h"

#include "moe/runtime/safetensors.h"

#include <cstring>

namespace moe::runtime {

moe_status_t checkSameArtifact(Communicator &comm, const Layer &layer) {
  const Mesh &mesh = layer.signature().mesh;
  std::vector<int64_t> everyone = mesh.group(comm.rank(), kAllAxes);
  uint64_t mine = layer.artifactHash();
  std::vector<uint64_t> hashes(everyone.size());
  if (moe_status_t s = comm.allGather(everyone, &mine, hashes.data(), sizeof mine, "start-up (artifact check)"))
    return s;
  for (size_t r = 0; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) {
      char text[160];
      std::snprintf(text, sizeof text, "rank %zu runs another artifact than rank 0 (hash %016llx, rank 0 %016llx)", r,
                    static_cast<unsigned long long>(hashes[r]), static_cast<unsigned long long>(hashes[0]));
      return fail(MOE_INVALID_ARGUMENT,
                  std::string(text) + ": every rank must run the same .moeb, compiled for mesh " + mesh.toString());
    }
  return MOE_OK;
}

namespace {

/// `count` elements of `from` starting at `first`, as a tensor of `shape`
/// (zeros after them: an FSDP chunk's padding).
Tensor shardOf(const std::string &name, moe_dtype_t dtype, const std::vector<int64_t> &shape) {
  return Tensor::zeros(name, dtype, shape);
}

} // namespace

moe_status_t readParameterShards(const Layer &layer, const std::string &path, std::vector<Tensor> &out, FILE *notes) {
  SafetensorsFile file;
  if (moe_status_t s = file.open(path))
    return s;
  out.clear();
  for (const TensorSpec &spec : layer.signature().params) {
    const TensorEntry *e = file.find(spec.name);
    if (!e)
      return fail(MOE_NOT_FOUND, "parameter \"" + spec.name + "\" " + shapeString(spec.sizes()) +
                                     " is missing from the weights '" + path + "'");
    if (e->shape != spec.sizes())
      return fail(MOE_INVALID_ARGUMENT, "parameter \"" + spec.name + "\" has shape " + shapeString(e->shape) + " in '" +
                                            path + "'; the layer needs " + shapeString(spec.sizes()));
    bool convert = e->dtype != spec.dtype && isFloatDType(e->dtype) && isFloatDType(spec.dtype);
    if (e->dtype != spec.dtype && !convert)
      return fail(MOE_INVALID_ARGUMENT, "parameter \"" + spec.name + "\" is " + moe_dtype_name(e->dtype) + " in '" +
                                            path + "'; the layer needs " + moe_dtype_name(spec.dtype));
    ParamShard shard = layer.paramShardOf(spec);
    Tensor t = shardOf(spec.name, e->dtype, shard.localShape);
    if (moe_status_t s = file.readElements(*e, shard.begin, shard.count, t.data.data()))
      return s;
    if (convert) {
      if (notes && layer.rank() == 0)
        std::fprintf(notes, "note: weight \"%s\" converted from %s to %s, as the layer declares it\n",
                     spec.name.c_str(), moe_dtype_name(e->dtype), moe_dtype_name(spec.dtype));
      t = convertFloat(t, spec.dtype);
    }
    out.push_back(std::move(t));
  }
  for (const TensorEntry &e : file.entries()) {
    bool known = false;
    for (const TensorSpec &spec : layer.signature().params)
      known = known || spec.name == e.name;
    if (!known)
      return fail(MOE_INVALID_ARGUMENT, "the weights hold \"" + e.name + "\", which layer " + layer.signature().layer +
                                            " has no parameter of");
  }
  return MOE_OK;
}

std::vector<Tensor> shardParameters(const Layer &layer, const std::vector<Tensor> &global) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < global.size(); ++i) {
    const TensorSpec &spec = layer.signature().params[i];
    ParamShard shard = layer.paramShardOf(spec);
    Tensor t = shardOf(spec.name, global[i].dtype, shard.localShape);
    size_t size = moe_dtype_size(global[i].dtype);
    std::memcpy(t.data.data(), global[i].data.data() + shard.begin * size, static_cast<size_t>(shard.count) * size);
    out.push_back(std::move(t));
  }
  return out;
}

bool isTokenSliced(const TensorSpec &spec) { return !spec.shape.empty() && spec.shape[0].isSymbolic(); }

moe_status_t readInputRows(const Layer &layer, const std::string &path, int64_t rank, int64_t world,
                           std::vector<Tensor> &out) {
  SafetensorsFile file;
  if (moe_status_t s = file.open(path))
    return s;
  out.clear();
  for (const TensorEntry &e : file.entries()) {
    const TensorSpec *spec = nullptr;
    for (const TensorSpec &in : layer.signature().inputs)
      if (in.name == e.name)
        spec = &in;
    Tensor t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape = e.shape;
    int64_t first = 0, count = 1;
    for (int64_t d : e.shape)
      count *= d;
    // Names the layer does not take are passed on whole: run() refuses them by name.
    if (spec && isTokenSliced(*spec) && !e.shape.empty()) {
      RowSlice rows = tokenSlice(e.shape[0], world, rank);
      int64_t rowElements = e.shape[0] ? count / e.shape[0] : 0;
      t.shape[0] = rows.count;
      first = rows.begin * rowElements;
      count = rows.count * rowElements;
    }
    t.data.resize(static_cast<size_t>(count) * moe_dtype_size(e.dtype));
    if (moe_status_t s = file.readElements(e, first, count, t.data.data()))
      return s;
    out.push_back(std::move(t));
  }
  return MOE_OK;
}

std::vector<Tensor> sliceInputs(const Layer &layer, const std::vector<Tensor> &global, int64_t rank, int64_t world) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < global.size(); ++i) {
    const Tensor &g = global[i];
    const TensorSpec &spec = layer.signature().inputs[i];
    if (!isTokenSliced(spec) || g.shape.empty()) {
      out.push_back(g);
      continue;
    }
    RowSlice rows = tokenSlice(g.shape[0], world, rank);
    out.push_back(sliceRows(g, rows.begin, rows.count));
  }
  return out;
}

moe_status_t gatherShards(Communicator &comm, const Mesh &mesh, const std::vector<TensorSpec> &specs,
                          const std::vector<Tensor> &local, std::vector<Tensor> &global) {
  const std::vector<int64_t> everyone = mesh.group(comm.rank(), kAllAxes);
  global.clear();
  for (const TensorSpec &spec : specs) {
    const Tensor *mine = nullptr;
    for (const Tensor &t : local)
      if (t.name == spec.name)
        mine = &t;
    if (!mine)
      return fail(MOE_INTERNAL, "no local shard of \"" + spec.name + "\" to gather");
    const std::vector<int64_t> shape = spec.sizes();
    ParamShard own = paramShard(mesh, comm.rank(), spec.placement, shape);
    Tensor whole = Tensor::zeros(spec.name, mine->dtype, shape);
    const int64_t size = static_cast<int64_t>(moe_dtype_size(mine->dtype));
    if (own.begin == 0 && own.count == whole.numElements()) { // every rank holds all of it
      std::memcpy(whole.data.data(), mine->data.data(), whole.data.size());
      global.push_back(std::move(whole));
      continue;
    }
    std::vector<int64_t> bytes;
    std::vector<ParamShard> shards;
    for (int64_t r : everyone) {
      shards.push_back(paramShard(mesh, r, spec.placement, shape));
      bytes.push_back(shards.back().count * size);
    }
    std::vector<char> all;
    int64_t total = 0;
    for (int64_t b : bytes)
      total += b;
    all.resize(static_cast<size_t>(total));
    if (moe_status_t s = comm.allGatherV(everyone, mine->data.data(), all.data(), bytes, "parameter shards"))
      return s;
    int64_t at = 0;
    for (size_t r = 0; r < shards.size(); ++r) {
      std::memcpy(whole.data.data() + shards[r].begin * size, all.data() + at, static_cast<size_t>(bytes[r]));
      at += bytes[r];
    }
    global.push_back(std::move(whole));
  }
  return MOE_OK;
}

namespace {

/// A [tokens, ...] tensor's rows from every rank, in rank order.
moe_status_t gatherTokenRows(Communicator &comm, const std::vector<int64_t> &everyone, const Tensor &t, Tensor &g) {
  int64_t rows = t.shape[0];
  std::vector<int64_t> counts(everyone.size());
  if (moe_status_t s = comm.allGather(everyone, &rows, counts.data(), sizeof rows, "outputs (row counts)"))
    return s;
  size_t rowBytes = moe_dtype_size(t.dtype); // from the shape, not the data (which may be empty)
  for (size_t d = 1; d < t.shape.size(); ++d)
    rowBytes *= static_cast<size_t>(t.shape[d]);
  int64_t total = 0;
  std::vector<int64_t> bytes;
  for (int64_t c : counts) {
    total += c;
    bytes.push_back(c * static_cast<int64_t>(rowBytes));
  }
  g = t;
  g.shape[0] = total;
  g.data.resize(static_cast<size_t>(total) * rowBytes);
  return comm.allGatherV(everyone, t.data.data(), g.data.data(), bytes, "outputs (rows)");
}

} // namespace

moe_status_t gatherOutputs(Communicator &comm, const Layer &layer, const std::vector<Tensor> &local,
                           std::vector<Tensor> &global) {
  const Signature &sig = layer.signature();
  std::vector<int64_t> everyone = sig.mesh.group(comm.rank(), kAllAxes);
  global.clear();
  for (size_t i = 0; i < local.size(); ++i) {
    const Tensor &t = local[i];
    if (i >= sig.outputs.size() || !isTokenSliced(sig.outputs[i]) || t.shape.empty()) {
      global.push_back(t);
      continue;
    }
    Tensor g;
    if (moe_status_t s = gatherTokenRows(comm, everyone, t, g))
      return s;
    global.push_back(std::move(g));
  }
  return MOE_OK;
}

moe_status_t gatherGradients(Communicator &comm, const Layer &layer, const std::vector<Tensor> &local,
                             std::vector<Tensor> &global) {
  const Signature &sig = layer.signature();
  if (!sig.backward)
    return fail(MOE_INVALID_ARGUMENT, "layer " + sig.layer + " has no backward");
  std::vector<int64_t> everyone = sig.mesh.group(comm.rank(), kAllAxes);
  global.clear();
  for (size_t i = 0; i < local.size() && i < sig.backward->gradients.size(); ++i) {
    const TensorSpec &spec = sig.backward->gradients[i];
    Tensor g;
    if (isTokenSliced(spec) && !local[i].shape.empty()) {
      if (moe_status_t s = gatherTokenRows(comm, everyone, local[i], g))
        return s;
    } else if (spec.name.rfind("grad.", 0) != 0) {
      g = local[i]; // a balance load: over the global batch already
    } else {
      std::vector<Tensor> whole;
      if (moe_status_t s = gatherShards(comm, sig.mesh, {spec}, {local[i]}, whole))
        return s;
      g = std::move(whole[0]);
    }
    global.push_back(std::move(g));
  }
  return MOE_OK;
}

} // namespace moe::runtime
