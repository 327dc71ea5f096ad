// checkpoint.cc - saving and loading training checkpoints (checkpoint.h,
// docs/checkpoint.md): every rank writes the chunks it holds into its own
// safetensors file, rank 0 writes the index of every global tensor's chunks
// last, and a load reads, from whichever chunks hold them, only the element
// ranges a rank needs.
#include "moe/runtime/checkpoint.h"
#include "moe/runtime/checkpoint_index.h"

#include "moe/runtime/artifact.h" // crc32
#include "moe/runtime/json.h"
#include "moe/runtime/safetensors.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace moe::runtime {

namespace {

constexpr const char *kIndexFile = "index.json";
/// The checksums cover blocks of a chunk, so that a rank reading part of a
/// chunk (another mesh's shard) checks what it reads and reads little more.
constexpr int64_t kCrcBlockBytes = 1 << 20;

std::string stepName(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%08lld", static_cast<long long>(step));
  return buffer;
}

std::string shardFileName(int64_t rank) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "rank-%05lld.safetensors", static_cast<long long>(rank));
  return buffer;
}

moe_status_t ioError(const std::string &what, const std::string &path) {
  return fail(MOE_INVALID_ARGUMENT, "checkpoint: cannot " + what + " " + path + ": " + std::strerror(errno));
}

/// Flushes a file or directory to the disk, so that a rename after it never
/// points at bytes still in memory.
moe_status_t syncPath(const std::string &path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0)
    return ioError("open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? MOE_OK : ioError("sync", path);
}

moe_status_t writeText(const std::string &path, const std::string &text) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return ioError("write", path);
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;
  return ok ? syncPath(path, false) : ioError("write", path);
}

/// MOE_FAULT_INJECT=savekill:R:S kills rank R (SIGKILL) halfway through the
/// save of step S: its file written, the index not (tests, drills).
void injectSaveFault(int64_t rank, int64_t step) {
  const char *spec = std::getenv("MOE_FAULT_INJECT");
  long long who = -1, at = -1;
  if (!spec || std::sscanf(spec, "savekill:%lld:%lld", &who, &at) != 2 || who != rank || at != step)
    return;
  std::fprintf(stderr, "moe: MOE_FAULT_INJECT: rank %lld killed while saving the checkpoint of step %lld\n", who, at);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

std::string optimizerName(const std::string &param, const char *part) { return "optimizer." + param + "." + part; }

bool isCompleteCheckpoint(const std::string &dir) {
  struct stat st;
  return ::stat((dir + "/" + kIndexFile).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// Removes a checkpoint directory this runtime wrote (its files, then it).
void removeCheckpointDirectory(const std::string &dir) {
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *entry = ::readdir(d))
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
        ::unlink((dir + "/" + entry->d_name).c_str());
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeJson(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? "," : "") + std::to_string(shape[d]);
  return s + "]";
}

std::vector<int64_t> everyRank(const Communicator &comm) {
  std::vector<int64_t> group;
  for (int64_t r = 0; r < comm.world(); ++r)
    group.push_back(r);
  return group;
}

/// One tensor of the state as this rank holds it.
struct HeldTensor {
  std::string name;
  moe_dtype_t dtype;
  TensorExtent extent;
  const void *data;
};

/// Every tensor of `state` (the optimizer's under PyTorch's names) with its
/// extent, pointing at the state's own memory (no copy).
moe_status_t heldTensors(const TrainingState &state, std::vector<HeldTensor> &out) {
  auto extentOf = [&](const Tensor &p) {
    auto it = state.extents.find(p.name);
    if (it != state.extents.end())
      return it->second;
    TensorExtent whole;
    whole.globalShape = whole.localShape = p.shape;
    whole.count = whole.stored = p.numElements();
    return whole;
  };
  for (const Tensor &p : state.params) {
    TensorExtent e = extentOf(p);
    if (p.numElements() != e.stored)
      return fail(MOE_INVALID_ARGUMENT, "checkpoint: \"" + p.name + "\" holds " + std::to_string(p.numElements()) +
                                            " elements, its extent " + std::to_string(e.stored));
    out.push_back({p.name, p.dtype, e, p.data.data()});
  }
  for (const auto &[name, s] : state.optimizer) {
    const Tensor *param = nullptr;
    for (const Tensor &p : state.params)
      if (p.name == name)
        param = &p;
    if (!param)
      return fail(MOE_INVALID_ARGUMENT, "checkpoint: optimizer state for unknown parameter \"" + name + "\"");
    TensorExtent e = extentOf(*param);
    for (auto [part, values] : {std::pair{"master", &s.master}, {"exp_avg", &s.m}, {"exp_avg_sq", &s.v}}) {
      if (static_cast<int64_t>(values->size()) != e.stored)
        return fail(MOE_INVALID_ARGUMENT, "checkpoint: optimizer state of \"" + name + "\" has the wrong size");
      out.push_back({optimizerName(name, part), MOE_F32, e, values->data()});
    }
  }
  return MOE_OK;
}

/// A chunk's shape in its file: whole rows of the global tensor's first
/// dimension when the range is made of them, else flat.
std::vector<int64_t> chunkShape(const TensorExtent &e, std::vector<int64_t> &offsets) {
  const std::vector<int64_t> &g = e.globalShape;
  int64_t row = g.empty() ? 1 : product(g) / std::max<int64_t>(g[0], 1);
  offsets.assign(g.size(), 0);
  if (!g.empty() && row > 0 && e.begin % row == 0 && e.count % row == 0) {
    std::vector<int64_t> shape = g;
    shape[0] = e.count / row;
    offsets[0] = e.begin / row;
    return shape;
  }
  offsets.clear();
  return {e.count};
}

/// The rank's file: the ranges it writes, and their index entries (a line
/// per tensor: its JSON-quoted name, its description and its chunk, as JSON
/// text separated by tabs), or a failure.
struct WrittenShard {
  moe_status_t status = MOE_OK;
  std::string error, entries;
};

WrittenShard writeShard(const std::string &dir, int64_t rank, const TrainingState &state) {
  WrittenShard out;
  std::vector<HeldTensor> held;
  if ((out.status = heldTensors(state, held)) != MOE_OK) {
    out.error = moe_last_error();
    return out;
  }
  std::vector<TensorView> views;
  std::vector<const HeldTensor *> written;
  std::vector<std::vector<int64_t>> offsets;
  for (const HeldTensor &t : held) {
    if (!t.extent.writes || t.extent.count == 0)
      continue;
    offsets.emplace_back();
    std::vector<int64_t> shape = chunkShape(t.extent, offsets.back());
    views.push_back({t.name, t.dtype, shape, t.data, static_cast<size_t>(t.extent.count) * moe_dtype_size(t.dtype)});
    written.push_back(&t);
  }
  const std::string file = shardFileName(rank);
  std::vector<uint64_t> begins;
  if (!views.empty()) {
    const std::string path = dir + "/" + file;
    if ((out.status = writeSafetensors(path, views, &begins)) == MOE_OK)
      out.status = syncPath(path, false);
    if (out.status != MOE_OK) {
      out.error = moe_last_error();
      return out;
    }
  }
  for (size_t i = 0; i < views.size(); ++i) {
    const HeldTensor &t = *written[i];
    const TensorView &v = views[i];
    std::string crcs;
    for (size_t at = 0; at < v.bytes; at += kCrcBlockBytes)
      crcs += (at ? "," : "") + std::to_string(crc32(static_cast<const uint8_t *>(v.data) + at,
                                                     std::min<size_t>(kCrcBlockBytes, v.bytes - at)));
    json::writeString(out.entries, t.name);
    out.entries += "\t\"dtype\":\"" + std::string(moe_dtype_name(t.dtype)) +
                   "\",\"shape\":" + shapeJson(t.extent.globalShape) + ",\"placement\":\"" + t.extent.placement +
                   "\"\t{\"file\":\"" + file + "\",\"elements\":[" + std::to_string(t.extent.begin) + "," +
                   std::to_string(t.extent.begin + t.extent.count) + "]" +
                   (offsets[i].empty() ? "" : ",\"offsets\":" + shapeJson(offsets[i])) +
                   ",\"shape\":" + shapeJson(v.shape) + ",\"begin\":" + std::to_string(begins[i]) +
                   ",\"end\":" + std::to_string(begins[i] + v.bytes) + ",\"crc32\":[" + crcs + "]}\n";
  }
  return out;
}

/// The index from every rank's entries: each tensor's chunks, in rank order.
moe_status_t buildIndex(const TrainingState &state, const std::string &writer, const std::string &mesh, int64_t world,
                        const std::vector<std::string> &entries, std::string &index) {
  std::map<std::string, std::string> heads;  // quoted name -> dtype, shape, placement
  std::map<std::string, std::string> chunks; // quoted name -> its chunks, in rank order
  for (const std::string &e : entries)
    for (size_t at = 0; at < e.size();) {
      size_t end = e.find('\n', at), tab1 = e.find('\t', at), tab2 = e.find('\t', tab1 + 1);
      if (end == std::string::npos || tab1 >= end || tab2 >= end)
        return fail(MOE_INTERNAL, "checkpoint: a rank's index entries are malformed");
      std::string name = e.substr(at, tab1 - at);
      heads[name] = e.substr(tab1 + 1, tab2 - tab1 - 1);
      std::string &list = chunks[name];
      list += (list.empty() ? "" : ",") + e.substr(tab2 + 1, end - tab2 - 1);
      at = end + 1;
    }
  index = "{\"format\":\"moec-checkpoint\",\"version\":" + std::to_string(kCheckpointVersion) +
          ",\"step\":" + std::to_string(state.step) + ",\"optimizer_steps\":" + std::to_string(state.optimizerSteps) +
          ",\"written_by\":";
  json::writeString(index, writer);
  index += ",\"mesh\":";
  json::writeString(index, mesh.empty() ? "one device" : mesh);
  index += ",\"writers\":" + std::to_string(world) + ",\"crc32_block_bytes\":" + std::to_string(kCrcBlockBytes) +
           ",\"tensors\":{";
  bool first = true;
  for (const auto &[name, head] : heads) {
    if (!first)
      index += ",";
    first = false;
    index += name + ":{" + head + ",\"chunks\":[" + chunks[name] + "]}";
  }
  index += "}}\n";
  return MOE_OK;
}

/// The directory into place, then `latest` at it.
moe_status_t commit(const std::string &root, const std::string &temporary, int64_t step, const std::string &index,
                    std::string &path) {
  if (moe_status_t s = writeText(temporary + "/" + kIndexFile, index))
    return s;
  if (moe_status_t s = syncPath(temporary, true))
    return s;
  // A checkpoint of the same step (a run resumed before it) is replaced.
  const std::string final = root + "/" + stepName(step);
  if (isCompleteCheckpoint(final)) {
    std::string old = final + ".old-" + std::to_string(::getpid());
    if (::rename(final.c_str(), old.c_str()) != 0)
      return ioError("replace", final);
    removeCheckpointDirectory(old);
  }
  if (::rename(temporary.c_str(), final.c_str()) != 0)
    return ioError("rename into place", final);
  if (moe_status_t s = syncPath(root, true))
    return s;
  const std::string latest = root + "/latest";
  if (moe_status_t s = writeText(latest + ".tmp", stepName(step) + "\n"))
    return s;
  if (::rename((latest + ".tmp").c_str(), latest.c_str()) != 0)
    return ioError("rename into place", latest);
  path = final;
  return syncPath(root, true);
}

std::string temporaryName(const std::string &root, int64_t step) { return root + "/." + stepName(step) + ".tmp"; }

/// Rank 0 makes the empty temporary directory (a stale one, from a save
/// that was killed, removed first); the others wait for it.
moe_status_t prepare(const std::string &root, int64_t step, Communicator *comm) {
  const bool multi = comm && comm->world() > 1;
  int32_t status = MOE_OK;
  std::string error;
  if (!comm || comm->rank() == 0) {
    const std::string temporary = temporaryName(root, step);
    if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST)
      status = ioError("create", root);
    else {
      removeCheckpointDirectory(temporary);
      if (::mkdir(temporary.c_str(), 0755) != 0)
        status = ioError("create", temporary);
    }
    if (status != MOE_OK)
      error = moe_last_error();
  }
  if (!multi)
    return status == MOE_OK ? MOE_OK : fail(static_cast<moe_status_t>(status), error);
  std::vector<int32_t> all(static_cast<size_t>(comm->world()));
  if (moe_status_t s = comm->allGather(everyRank(*comm), &status, all.data(), sizeof status, "checkpoint (prepare)"))
    return s;
  if (all[0] != MOE_OK)
    return fail(static_cast<moe_status_t>(all[0]),
                comm->rank() == 0 ? error : "checkpoint: rank 0 could not create " + temporaryName(root, step));
  return MOE_OK;
}

/// Every rank's entries to rank 0, which writes the index and commits; its
/// result to every rank.
moe_status_t gatherAndCommit(const std::string &root, const TrainingState &state, const std::string &writer,
                             const std::string &mesh, Communicator *comm, const WrittenShard &mine, std::string &path) {
  const bool multi = comm && comm->world() > 1;
  const int64_t world = multi ? comm->world() : 1, rank = multi ? comm->rank() : 0;
  std::vector<std::string> entries{mine.status == MOE_OK ? mine.entries : std::string()};
  std::vector<int64_t> failed; // ranks whose file could not be written
  if (mine.status != MOE_OK)
    failed.push_back(rank);
  if (multi) {
    int64_t size = mine.status == MOE_OK ? static_cast<int64_t>(mine.entries.size()) : -1;
    std::vector<int64_t> sizes(static_cast<size_t>(world));
    if (moe_status_t s = comm->allGather(everyRank(*comm), &size, sizes.data(), sizeof size, "checkpoint (sizes)"))
      return s;
    std::vector<int64_t> bytes;
    int64_t total = 0;
    for (int64_t s : sizes) {
      bytes.push_back(std::max<int64_t>(s, 0));
      total += bytes.back();
    }
    std::string all(static_cast<size_t>(total), '\0');
    if (moe_status_t s =
            comm->allGatherV(everyRank(*comm), mine.entries.data(), all.data(), bytes, "checkpoint (index entries)"))
      return s;
    entries.clear();
    failed.clear();
    int64_t at = 0;
    for (int64_t r = 0; r < world; ++r) {
      entries.push_back(all.substr(static_cast<size_t>(at), static_cast<size_t>(bytes[r])));
      at += bytes[r];
      if (sizes[r] < 0)
        failed.push_back(r);
    }
  }
  if (!failed.empty())
    return mine.status != MOE_OK ? fail(mine.status, mine.error)
                                 : fail(MOE_INVALID_ARGUMENT, "checkpoint of step " + std::to_string(state.step) +
                                                                  ": rank " + std::to_string(failed[0]) +
                                                                  " could not write its file; the previous "
                                                                  "checkpoint stays the newest");
  int32_t status = MOE_OK;
  std::string error;
  if (rank == 0) {
    std::string index;
    status = buildIndex(state, writer, mesh, world, entries, index);
    if (status == MOE_OK)
      status = commit(root, temporaryName(root, state.step), state.step, index, path);
    if (status != MOE_OK)
      error = moe_last_error();
  }
  if (multi) {
    std::vector<int32_t> all(static_cast<size_t>(world));
    if (moe_status_t s = comm->allGather(everyRank(*comm), &status, all.data(), sizeof status, "checkpoint (commit)"))
      return s;
    status = all[0];
    if (rank != 0) {
      path = root + "/" + stepName(state.step);
      error = "checkpoint: rank 0 could not write the index of " + path;
    }
  }
  return status == MOE_OK ? MOE_OK : fail(static_cast<moe_status_t>(status), error);
}

} // namespace

TensorExtent meshExtent(const Mesh &mesh, int64_t rank, Placement placement, const std::vector<int64_t> &shape) {
  ParamShard mine = paramShard(mesh, rank, placement, shape);
  TensorExtent e;
  e.globalShape = shape;
  e.begin = mine.begin, e.count = mine.count, e.stored = mine.stored;
  e.localShape = mine.localShape;
  e.placement = placementName(placement);
  for (int64_t q = 0; q < rank && e.writes; ++q) {
    ParamShard other = paramShard(mesh, q, placement, shape);
    e.writes = other.count == 0 || other.begin + other.count <= e.begin || e.begin + e.count <= other.begin;
  }
  return e;
}

moe_status_t saveCheckpoint(const std::string &root, const TrainingState &state, const std::string &writer,
                            std::string &path, Communicator *comm, const std::string &mesh) {
  if (moe_status_t s = prepare(root, state.step, comm))
    return s;
  const int64_t rank = comm ? comm->rank() : 0;
  WrittenShard mine = writeShard(temporaryName(root, state.step), rank, state);
  injectSaveFault(rank, state.step);
  return gatherAndCommit(root, state, writer, mesh, comm, mine, path);
}

namespace {

/// The newest complete checkpoint under `root`: the one `latest` names, if
/// complete, else the highest complete step.
moe_status_t newestCheckpoint(const std::string &root, std::string &dir) {
  if (FILE *f = std::fopen((root + "/latest").c_str(), "rb")) {
    char name[64] = {};
    if (std::fgets(name, sizeof name, f)) {
      std::string n(name);
      n.erase(n.find_last_not_of("\r\n") + 1);
      if (n.rfind("step-", 0) == 0 && n.find('/') == std::string::npos && isCompleteCheckpoint(root + "/" + n))
        dir = root + "/" + n;
    }
    std::fclose(f);
  }
  if (!dir.empty())
    return MOE_OK;
  DIR *d = ::opendir(root.c_str());
  if (!d)
    return fail(MOE_NOT_FOUND, "checkpoint: no checkpoint directory " + root + ": " + std::strerror(errno));
  std::string best;
  while (dirent *entry = ::readdir(d)) {
    std::string n = entry->d_name;
    if (n.rfind("step-", 0) == 0 && n.find('.') == std::string::npos && isCompleteCheckpoint(root + "/" + n) &&
        n > best)
      best = n;
  }
  ::closedir(d);
  if (best.empty())
    return fail(MOE_NOT_FOUND,
                "checkpoint: " + root + " holds no complete checkpoint (a step-N directory with " + kIndexFile + ")");
  dir = root + "/" + best;
  return MOE_OK;
}

/// One read: elements [first, last) of a chunk into `into`, its covering
/// checksum blocks read and checked.
struct Read {
  std::string tensor;
  const SavedChunk *chunk;
  int64_t first, last, size;
  char *into;
};

std::string readOne(const std::string &dir, const Read &r) {
  const SavedChunk &c = *r.chunk;
  const int64_t from = (r.first - c.first) * r.size, to = (r.last - c.first) * r.size;
  const int64_t firstBlock = from / c.blockBytes, lastBlock = (to + c.blockBytes - 1) / c.blockBytes;
  const int64_t spanFrom = firstBlock * c.blockBytes, spanTo = std::min(c.bytes, lastBlock * c.blockBytes);
  // In place when the range is the whole span; else through a buffer.
  std::vector<char> buffer;
  char *span = r.into;
  if (spanFrom != from || spanTo != to) {
    buffer.resize(static_cast<size_t>(spanTo - spanFrom));
    span = buffer.data();
  }
  const std::string filePath = dir + "/" + c.file;
  int fd = ::open(filePath.c_str(), O_RDONLY);
  if (fd < 0)
    return "a chunk of \"" + r.tensor + "\" is in " + c.file + ", which cannot be opened: " + std::strerror(errno);
  int64_t done = 0;
  while (done < spanTo - spanFrom) {
    ssize_t got = ::pread(fd, span + done, static_cast<size_t>(spanTo - spanFrom - done),
                          static_cast<off_t>(c.begin + spanFrom + done));
    if (got <= 0)
      break;
    done += got;
  }
  ::close(fd);
  std::string range =
      " in " + c.file + " [" + std::to_string(c.begin + spanFrom) + ", " + std::to_string(c.begin + spanTo) + ")";
  if (done != spanTo - spanFrom)
    return "a chunk of \"" + r.tensor + "\"" + range + " is truncated";
  for (int64_t b = firstBlock; b < lastBlock; ++b) {
    int64_t at = b * c.blockBytes - spanFrom, n = std::min(c.blockBytes, c.bytes - b * c.blockBytes);
    if (crc32(reinterpret_cast<const uint8_t *>(span + at), static_cast<size_t>(n)) != c.crcs[b])
      return "a chunk of \"" + r.tensor + "\"" + range + " fails its checksum (corrupted)";
  }
  if (span != r.into)
    std::memcpy(r.into, span + (from - spanFrom), static_cast<size_t>(to - from));
  return "";
}

} // namespace

/// The newest complete checkpoint's directory and parsed index.
static moe_status_t readNewestIndex(const std::string &root, std::string &dir, CheckpointIndex &index) {
  if (moe_status_t s = newestCheckpoint(root, dir))
    return s;
  return readCheckpointIndex(dir, index);
}

moe_status_t checkpointLayout(const std::string &root, std::map<std::string, TensorExtent> &layout) {
  std::string dir;
  CheckpointIndex index;
  if (moe_status_t s = readNewestIndex(root, dir, index))
    return s;
  layout.clear();
  for (const auto &[name, t] : index.tensors) {
    TensorExtent e;
    e.globalShape = e.localShape = t.shape;
    e.count = e.stored = product(t.shape);
    e.placement = t.placement;
    layout[name] = e;
  }
  return MOE_OK;
}

moe_status_t loadCheckpoint(const std::string &root, TrainingState &state, std::string &path,
                            const std::map<std::string, TensorExtent> *wanted) {
  std::string dir;
  CheckpointIndex index;
  if (moe_status_t s = readNewestIndex(root, dir, index))
    return s;
  auto bad = [&](const std::string &why) { return fail(MOE_INVALID_FORMAT, "checkpoint " + dir + ": " + why); };
  TrainingState out;
  out.step = index.step;
  out.optimizerSteps = index.optimizerSteps;
  out.writtenBy = index.writtenBy;
  // What each tensor becomes: a wanted range, or the whole tensor.
  auto extentOf = [&](const std::string &weight, const SavedTensor &t) -> std::optional<TensorExtent> {
    if (!wanted) {
      TensorExtent whole;
      whole.globalShape = whole.localShape = t.shape;
      whole.count = whole.stored = product(t.shape);
      whole.placement = t.placement;
      return whole;
    }
    auto it = wanted->find(weight);
    if (it == wanted->end())
      return std::nullopt;
    return it->second;
  };
  std::vector<Read> reads;
  auto plan = [&](const std::string &name, const SavedTensor &t, const TensorExtent &e, char *into) -> moe_status_t {
    if (e.globalShape != t.shape)
      return bad("\"" + name + "\" has shape " + shapeString(t.shape) + "; the layer needs " +
                 shapeString(e.globalShape));
    const int64_t size = static_cast<int64_t>(moe_dtype_size(t.dtype));
    int64_t covered = e.begin;
    for (const SavedChunk &c : t.chunks) {
      int64_t first = std::max(e.begin, c.first), last = std::min(e.begin + e.count, c.last);
      if (first >= last)
        continue;
      if (first != covered)
        break;
      reads.push_back({name, &c, first, last, size, into + (first - e.begin) * size});
      covered = last;
    }
    if (covered != e.begin + e.count)
      return bad("the chunks of \"" + name + "\" do not hold its elements [" + std::to_string(covered) + ", " +
                 std::to_string(e.begin + e.count) + ")");
    return MOE_OK;
  };
  // The weights first, then AdamW's state straight into its vectors.
  for (const auto &[name, t] : index.tensors) {
    if (name.rfind("optimizer.", 0) == 0)
      continue;
    std::optional<TensorExtent> e = extentOf(name, t);
    if (!e)
      continue;
    out.params.push_back(Tensor::zeros(name, t.dtype, e->localShape));
    if (wanted)
      out.extents[name] = *e;
  }
  if (wanted)
    for (const auto &[name, e] : *wanted)
      if (!index.tensors.count(name))
        return fail(MOE_NOT_FOUND, "checkpoint " + dir + ": it holds no \"" + name + "\"");
  for (Tensor &p : out.params) {
    const SavedTensor &t = index.tensors.at(p.name);
    TensorExtent e = *extentOf(p.name, t);
    if (moe_status_t s = plan(p.name, t, e, reinterpret_cast<char *>(p.data.data())))
      return s;
    auto has = [&](const char *part) { return index.tensors.count(optimizerName(p.name, part)) != 0; };
    if (!has("master") && !has("exp_avg") && !has("exp_avg_sq"))
      continue; // not trained by AdamW (a buffer, a balance bias)
    if (!has("master") || !has("exp_avg") || !has("exp_avg_sq"))
      return bad("the optimizer state of \"" + p.name + "\" is incomplete");
    AdamW::State &st = out.optimizer[p.name];
    for (auto [part, into] : {std::pair{"master", &st.master}, {"exp_avg", &st.m}, {"exp_avg_sq", &st.v}}) {
      const SavedTensor &o = index.tensors.at(optimizerName(p.name, part));
      if (o.dtype != MOE_F32 || o.shape != t.shape)
        return bad("the optimizer state of \"" + p.name + "\" does not match it");
      into->assign(static_cast<size_t>(e.stored), 0.0f);
      if (moe_status_t s = plan(optimizerName(p.name, part), o, e, reinterpret_cast<char *>(into->data())))
        return s;
    }
  }
  for (const auto &[name, t] : index.tensors) {
    if (name.rfind("optimizer.", 0) != 0)
      continue;
    bool owned = false;
    for (const Tensor &p : out.params)
      for (const char *part : {"master", "exp_avg", "exp_avg_sq"})
        owned = owned || optimizerName(p.name, part) == name;
    if (!owned && !wanted)
      return bad("tensor \"" + name + "\" belongs to no weight (an optimizer state of an unknown parameter)");
  }
  // Read and check on several threads: the CRC-32 runs at memory speed per
  // thread, and a load is most of the disk and memory traffic.
  std::vector<std::string> errors(reads.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < reads.size();)
      errors[i] = readOne(dir, reads[i]);
  };
  unsigned threads = std::max(1u, std::min<unsigned>(8, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(work);
  work();
  for (std::thread &t : pool)
    t.join();
  for (const std::string &e : errors)
    if (!e.empty())
      return bad(e);
  state = std::move(out);
  path = dir;
  return MOE_OK;
}

struct BackgroundCheckpoint::Job {
  std::thread thread;
  std::string root, writer, mesh;
  Communicator *comm = nullptr;
  TrainingState state;
  WrittenShard written;
  moe_status_t status = MOE_OK;
  std::string error, path;
  std::chrono::steady_clock::time_point begin;
  double seconds = 0;
};

BackgroundCheckpoint::BackgroundCheckpoint() = default;
BackgroundCheckpoint::~BackgroundCheckpoint() { (void)finish(); }

moe_status_t BackgroundCheckpoint::start(const std::string &root, TrainingState state, const std::string &writer,
                                         Communicator *comm, const std::string &mesh) {
  if (moe_status_t s = finish())
    return s;
  const bool multi = comm && comm->world() > 1;
  if (multi)
    if (moe_status_t s = prepare(root, state.step, comm))
      return s;
  job_ = std::make_unique<Job>();
  Job *job = job_.get();
  job->root = root, job->writer = writer, job->mesh = mesh, job->comm = multi ? comm : nullptr;
  job->state = std::move(state);
  job->begin = std::chrono::steady_clock::now();
  // Alone, the thread does the whole save; on a mesh, the rank's file only
  // (the index needs every rank: finish() writes it).
  job->thread = std::thread([job, multi]() {
    if (multi) {
      job->written = writeShard(temporaryName(job->root, job->state.step), job->comm->rank(), job->state);
      return;
    }
    job->status = saveCheckpoint(job->root, job->state, job->writer, job->path);
    if (job->status != MOE_OK)
      job->error = moe_last_error(); // the thread's own: handed to the caller's thread by finish()
    job->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->begin).count();
  });
  return MOE_OK;
}

moe_status_t BackgroundCheckpoint::finish() {
  if (!job_)
    return MOE_OK;
  job_->thread.join();
  std::unique_ptr<Job> job = std::move(job_);
  if (job->comm) {
    injectSaveFault(job->comm->rank(), job->state.step);
    job->status = gatherAndCommit(job->root, job->state, job->writer, job->mesh, job->comm, job->written, job->path);
    if (job->status != MOE_OK)
      job->error = moe_last_error();
    job->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - job->begin).count();
  }
  if (job->status != MOE_OK)
    return fail(job->status, job->error);
  path_ = job->path;
  seconds_ = job->seconds;
  return MOE_OK;
}

} // namespace moe::runtime
