// checkpoint.cc - saving and loading training checkpoints (checkpoint.h).
#include "moe/runtime/checkpoint.h"

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

constexpr const char *kShardFile = "rank-00000.safetensors"; ///< replicated state: one writer
constexpr const char *kIndexFile = "index.json";

std::string stepName(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%08lld", static_cast<long long>(step));
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

/// MOE_FAULT_INJECT=savekill:0:S kills rank 0 (SIGKILL) halfway through the
/// save of step S: its shard written, its index not (tests, drills).
void injectSaveFault(int64_t step) {
  const char *spec = std::getenv("MOE_FAULT_INJECT");
  long long rank = -1, at = -1;
  if (!spec || std::sscanf(spec, "savekill:%lld:%lld", &rank, &at) != 2 || rank != 0 || at != step)
    return;
  std::fprintf(stderr, "moe: MOE_FAULT_INJECT: killed while saving the checkpoint of step %lld\n", at);
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

} // namespace

moe_status_t saveCheckpoint(const std::string &root, const TrainingState &state, const std::string &writer,
                            std::string &path) {
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST)
    return ioError("create", root);
  // Every tensor of the state, the optimizer's under PyTorch's names, written
  // from where it lies (no copy of a state that may be most of the memory).
  std::vector<TensorView> tensors;
  for (const Tensor &p : state.params)
    tensors.push_back({p.name, p.dtype, p.shape, p.data.data(), p.data.size()});
  for (const auto &[name, s] : state.optimizer) {
    const Tensor *param = nullptr;
    for (const Tensor &p : state.params)
      if (p.name == name)
        param = &p;
    if (!param)
      return fail(MOE_INVALID_ARGUMENT, "checkpoint: optimizer state for unknown parameter \"" + name + "\"");
    for (auto [part, values] : {std::pair{"master", &s.master}, {"exp_avg", &s.m}, {"exp_avg_sq", &s.v}}) {
      if (static_cast<int64_t>(values->size()) != param->numElements())
        return fail(MOE_INVALID_ARGUMENT, "checkpoint: optimizer state of \"" + name + "\" has the wrong size");
      tensors.push_back(
          {optimizerName(name, part), MOE_F32, param->shape, values->data(), values->size() * sizeof(float)});
    }
  }
  const std::string final = root + "/" + stepName(state.step);
  const std::string temporary = root + "/." + stepName(state.step) + ".tmp-" + std::to_string(::getpid());
  if (::mkdir(temporary.c_str(), 0755) != 0)
    return ioError("create", temporary);
  const std::string shard = temporary + "/" + kShardFile;
  std::vector<uint64_t> begins;
  if (moe_status_t s = writeSafetensors(shard, tensors, &begins))
    return s;
  if (moe_status_t s = syncPath(shard, false))
    return s;
  injectSaveFault(state.step);
  std::string index = "{\"format\":\"moec-checkpoint\",\"version\":" + std::to_string(kCheckpointVersion) +
                      ",\"step\":" + std::to_string(state.step) +
                      ",\"optimizer_steps\":" + std::to_string(state.optimizerSteps) + ",\"written_by\":";
  json::writeString(index, writer);
  index += ",\"tensors\":{";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView &t = tensors[i];
    std::string shape, offsets;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      shape += (d ? "," : "") + std::to_string(t.shape[d]);
      offsets += d ? ",0" : "0";
    }
    if (i)
      index += ",";
    json::writeString(index, t.name);
    index += ":{\"dtype\":\"" + std::string(moe_dtype_name(t.dtype)) + "\",\"shape\":[" + shape +
             "],\"chunks\":[{\"file\":\"" + kShardFile + "\",\"offsets\":[" + offsets + "],\"shape\":[" + shape +
             "],\"begin\":" + std::to_string(begins[i]) + ",\"end\":" + std::to_string(begins[i] + t.bytes) +
             ",\"crc32\":" + std::to_string(crc32(static_cast<const uint8_t *>(t.data), t.bytes)) + "}]}";
  }
  index += "}}\n";
  if (moe_status_t s = writeText(temporary + "/" + kIndexFile, index))
    return s;
  if (moe_status_t s = syncPath(temporary, true))
    return s;
  // Into place: a checkpoint of the same step (a run resumed before it) is replaced.
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
  if (moe_status_t s = writeText(latest + ".tmp", stepName(state.step) + "\n"))
    return s;
  if (::rename((latest + ".tmp").c_str(), latest.c_str()) != 0)
    return ioError("rename into place", latest);
  path = final;
  return syncPath(root, true);
}

moe_status_t loadCheckpoint(const std::string &root, TrainingState &state, std::string &path) {
  // The one `latest` names, if complete; else the highest complete step.
  std::string dir;
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
  if (dir.empty()) {
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
  }
  std::vector<uint8_t> text;
  if (moe_status_t s = readFile(dir + "/" + kIndexFile, text))
    return s;
  json::Value index;
  std::string error;
  auto bad = [&](const std::string &why) { return fail(MOE_INVALID_FORMAT, "checkpoint " + dir + ": " + why); };
  if (!json::parse(std::string(text.begin(), text.end()), index, error))
    return bad("the index is not valid JSON: " + error);
  const json::Value *format = index.find("format"), *version = index.find("version"), *step = index.find("step"),
                    *optSteps = index.find("optimizer_steps"), *tensors = index.find("tensors");
  if (!format || !format->isString() || format->string != "moec-checkpoint")
    return bad("not a moec checkpoint index");
  if (!version || !version->isInteger || version->integer != kCheckpointVersion)
    return fail(MOE_VERSION_MISMATCH, "checkpoint " + dir + ": format version " +
                                          (version && version->isInteger ? std::to_string(version->integer) : "?") +
                                          ", this runtime reads " + std::to_string(kCheckpointVersion));
  if (!step || !step->isInteger || step->integer < 0 || !optSteps || !optSteps->isInteger || !tensors ||
      !tensors->isObject())
    return bad("the index needs step, optimizer_steps and tensors");
  TrainingState out;
  out.step = step->integer;
  out.optimizerSteps = optSteps->integer;
  if (const json::Value *by = index.find("written_by"); by && by->isString())
    out.writtenBy = by->string;
  // Every chunk checked and placed first: where its bytes go is decided
  // before any is read, so the state is allocated once.
  struct Chunk {
    std::string name, file;
    int64_t begin, bytes;
    uint32_t crc;
    void *into = nullptr;
  };
  std::vector<Chunk> chunks;
  std::map<std::string, std::pair<moe_dtype_t, std::vector<int64_t>>> specs;
  for (const auto &[name, spec] : tensors->object) {
    const json::Value *dtype = spec.find("dtype"), *shape = spec.find("shape"), *list = spec.find("chunks");
    std::optional<moe_dtype_t> dt = dtype && dtype->isString() ? parseDType(dtype->string) : std::nullopt;
    if (!dt || !shape || !shape->isArray() || !list || !list->isArray() || list->array.size() != 1)
      return bad("tensor \"" + name + "\" needs a dtype, a shape and its chunk");
    std::vector<int64_t> dims;
    int64_t elements = 1;
    for (const json::Value &d : shape->array) {
      if (!d.isInteger || d.integer < 0 || __builtin_mul_overflow(elements, d.integer, &elements))
        return bad("tensor \"" + name + "\" has a bad shape");
      dims.push_back(d.integer);
    }
    const json::Value &chunk = list->array[0];
    const json::Value *file = chunk.find("file"), *begin = chunk.find("begin"), *end = chunk.find("end"),
                      *crc = chunk.find("crc32");
    if (!file || !file->isString() || file->string.find('/') != std::string::npos || !begin || !begin->isInteger ||
        !end || !end->isInteger || !crc || !crc->isInteger)
      return bad("tensor \"" + name + "\" has a malformed chunk");
    int64_t bytes = elements * static_cast<int64_t>(moe_dtype_size(*dt));
    if (end->integer - begin->integer != bytes || begin->integer < 0)
      return bad("the chunk of \"" + name + "\" spans " + std::to_string(end->integer - begin->integer) +
                 " bytes, its shape needs " + std::to_string(bytes));
    specs[name] = {*dt, dims};
    chunks.push_back({name, file->string, begin->integer, bytes, static_cast<uint32_t>(crc->integer)});
  }
  // Destinations: the weights as tensors, AdamW's state straight into its vectors.
  for (const auto &[name, spec] : specs)
    if (name.rfind("optimizer.", 0) != 0)
      out.params.push_back(Tensor::zeros(name, spec.first, spec.second));
  for (Tensor &p : out.params) {
    auto has = [&](const char *part) { return specs.count(optimizerName(p.name, part)) != 0; };
    if (!has("master") && !has("exp_avg") && !has("exp_avg_sq"))
      continue; // not trained by AdamW (a buffer, a balance bias)
    if (!has("master") || !has("exp_avg") || !has("exp_avg_sq"))
      return bad("the optimizer state of \"" + p.name + "\" is incomplete");
    AdamW::State &st = out.optimizer[p.name];
    for (auto [part, into] : {std::pair{"master", &st.master}, {"exp_avg", &st.m}, {"exp_avg_sq", &st.v}}) {
      const auto &spec = specs[optimizerName(p.name, part)];
      if (spec.first != MOE_F32 || spec.second != p.shape)
        return bad("the optimizer state of \"" + p.name + "\" does not match it");
      into->resize(static_cast<size_t>(p.numElements()));
    }
  }
  for (Chunk &c : chunks) {
    for (Tensor &p : out.params)
      if (p.name == c.name)
        c.into = p.data.data();
    for (auto &[param, st] : out.optimizer)
      for (auto [part, values] : {std::pair{"master", &st.master}, {"exp_avg", &st.m}, {"exp_avg_sq", &st.v}})
        if (optimizerName(param, part) == c.name)
          c.into = values->data();
    if (!c.into)
      return bad("tensor \"" + c.name + "\" belongs to no weight (an optimizer state of an unknown parameter)");
  }
  // Read and check the chunks on several threads: the CRC-32 runs at memory
  // speed per thread, and a load is most of the disk and memory traffic.
  std::vector<std::string> errors(chunks.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < chunks.size();) {
      const Chunk &c = chunks[i];
      const std::string filePath = dir + "/" + c.file;
      int fd = ::open(filePath.c_str(), O_RDONLY);
      if (fd < 0) {
        errors[i] =
            "the chunk of \"" + c.name + "\" is in " + c.file + ", which cannot be opened: " + std::strerror(errno);
        continue;
      }
      int64_t done = 0;
      while (done < c.bytes) {
        ssize_t got = ::pread(fd, static_cast<char *>(c.into) + done, static_cast<size_t>(c.bytes - done),
                              static_cast<off_t>(c.begin + done));
        if (got <= 0)
          break;
        done += got;
      }
      ::close(fd);
      std::string range =
          " in " + c.file + " [" + std::to_string(c.begin) + ", " + std::to_string(c.begin + c.bytes) + ")";
      if (done != c.bytes)
        errors[i] = "the chunk of \"" + c.name + "\"" + range + " is truncated";
      else if (crc32(static_cast<const uint8_t *>(c.into), static_cast<size_t>(c.bytes)) != c.crc)
        errors[i] = "the chunk of \"" + c.name + "\"" + range + " fails its checksum (corrupted)";
    }
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
  moe_status_t status = MOE_OK;
  std::string error, path;
  double seconds = 0;
};

BackgroundCheckpoint::BackgroundCheckpoint() = default;
BackgroundCheckpoint::~BackgroundCheckpoint() { (void)finish(); }

moe_status_t BackgroundCheckpoint::start(const std::string &root, TrainingState state, const std::string &writer) {
  if (moe_status_t s = finish())
    return s;
  job_ = std::make_unique<Job>();
  Job *job = job_.get();
  job->thread = std::thread([job, root, writer, state = std::move(state)]() {
    auto begin = std::chrono::steady_clock::now();
    job->status = saveCheckpoint(root, state, writer, job->path);
    if (job->status != MOE_OK)
      job->error = moe_last_error(); // the thread's own: handed to the caller's thread by finish()
    job->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  });
  return MOE_OK;
}

moe_status_t BackgroundCheckpoint::finish() {
  if (!job_)
    return MOE_OK;
  job_->thread.join();
  std::unique_ptr<Job> job = std::move(job_);
  if (job->status != MOE_OK)
    return fail(job->status, job->error);
  path_ = job->path;
  seconds_ = job->seconds;
  return MOE_OK;
}

} // namespace moe::runtime
