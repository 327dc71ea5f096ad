// mesh.cc - the device mesh and the placement rules (mesh.h).
#include "moe/runtime/mesh.h"

#include <algorithm>
#include <cstdlib>

namespace moe::runtime {

std::string Mesh::toString() const {
  std::string out;
  auto add = [&](const char *name, int64_t size) {
    if (size != 1)
      out += (out.empty() ? "" : ",") + std::string(name) + "=" + std::to_string(size);
  };
  add("rep", rep);
  add("dp", dp);
  add("ep", ep);
  if (out.empty())
    return placedOnOne ? "rep=1,dp=1,ep=1" : "1";
  return out;
}

int64_t Mesh::groupSize(int32_t axes) const {
  return ((axes & kAxisRep) ? rep : 1) * ((axes & kAxisDp) ? dp : 1) * ((axes & kAxisEp) ? ep : 1);
}

std::vector<int64_t> Mesh::group(int64_t rank, int32_t axes) const {
  MeshCoords me = coords(rank);
  std::vector<int64_t> out;
  for (int64_t w = 0; w < world(); ++w) {
    MeshCoords c = coords(w);
    if (((axes & kAxisRep) || c.rep == me.rep) && ((axes & kAxisDp) || c.dp == me.dp) &&
        ((axes & kAxisEp) || c.ep == me.ep))
      out.push_back(w);
  }
  return out;
}

std::optional<Mesh> parseMesh(std::string_view text, std::string &error) {
  Mesh mesh;
  if (text.empty() || text == "1")
    return mesh;
  bool seen[3] = {false, false, false};
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    std::string_view item = text.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at);
    size_t eq = item.find('=');
    std::string_view name = item.substr(0, eq);
    int slot = name == "rep" ? 0 : name == "dp" ? 1 : name == "ep" ? 2 : -1;
    if (eq == std::string_view::npos || slot < 0) {
      error = "mesh '" + std::string(text) + "': expected axes rep=R,dp=D,ep=E, got '" + std::string(item) + "'";
      return std::nullopt;
    }
    if (seen[slot]) {
      error = "mesh '" + std::string(text) + "': axis " + std::string(name) + " given twice";
      return std::nullopt;
    }
    seen[slot] = true;
    std::string digits(item.substr(eq + 1));
    char *end = nullptr;
    long long size = std::strtoll(digits.c_str(), &end, 10);
    if (digits.empty() || *end || size < 1 || size > (1 << 20)) {
      error = "mesh '" + std::string(text) + "': axis " + std::string(name) + " needs a size from 1 to 1048576, got '" +
              digits + "'";
      return std::nullopt;
    }
    (slot == 0 ? mesh.rep : slot == 1 ? mesh.dp : mesh.ep) = size;
    mesh.placedOnOne = true;
    if (comma == std::string_view::npos)
      break;
    at = comma + 1;
  }
  if (mesh.world() > (1 << 20)) {
    error = "mesh '" + std::string(text) + "' has " + std::to_string(mesh.world()) + " ranks, more than 1048576";
    return std::nullopt;
  }
  return mesh;
}

RowSlice tokenSlice(int64_t tokens, int64_t world, int64_t rank) {
  int64_t base = tokens / world, extra = tokens % world;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

const char *placementName(Placement p) { return p == Placement::Experts ? "experts" : "replicated"; }

std::optional<Placement> parsePlacement(std::string_view name) {
  if (name == "experts")
    return Placement::Experts;
  if (name == "replicated")
    return Placement::Replicated;
  return std::nullopt;
}

ParamShard paramShard(const Mesh &mesh, int64_t rank, Placement placement, const std::vector<int64_t> &shape) {
  MeshCoords c = mesh.coords(rank);
  int64_t total = 1;
  for (int64_t s : shape)
    total *= s;
  // The slice this rank's code computes with: its experts, or everything.
  std::vector<int64_t> slice = shape;
  int64_t sliceBegin = 0, sliceElements = total;
  if (placement == Placement::Experts && !shape.empty() && shape[0] > 0) {
    int64_t local = shape[0] / mesh.ep;
    slice[0] = local;
    sliceElements = total / shape[0] * local;
    sliceBegin = c.ep * sliceElements;
  }
  ParamShard shard;
  // FSDP over dp: experts over the dp ranks sharing an expert slice, the rest
  // over the dp * ep ranks of a replica.
  int32_t axes = placement == Placement::Experts ? kAxisDp : (kAxisDp | kAxisEp);
  int64_t parts = mesh.groupSize(axes);
  if (mesh.dp == 1 || parts == 1) {
    shard.begin = sliceBegin;
    shard.count = shard.stored = sliceElements;
    shard.localShape = slice;
    return shard;
  }
  int64_t index = placement == Placement::Experts ? c.dp : c.dp * mesh.ep + c.ep;
  int64_t chunk = (sliceElements + parts - 1) / parts;
  int64_t first = std::min(sliceElements, index * chunk);
  shard.begin = sliceBegin + first;
  shard.count = std::min(chunk, sliceElements - first);
  shard.stored = chunk;
  shard.localShape = {chunk};
  shard.gatheredShape = slice;
  shard.fsdpAxes = axes;
  shard.fsdpSize = parts;
  return shard;
}

} // namespace moe::runtime
