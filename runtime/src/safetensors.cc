// safetensors.cc - strict safetensors reading, and writing.
#include "moe/runtime/safetensors.h"

#include "moe/runtime/json.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>

namespace moe::runtime {

moe_status_t readFile(const std::string &path, std::vector<uint8_t> &out) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return fail(MOE_NOT_FOUND, "cannot open '" + path + "': " + std::strerror(errno));
  out.clear();
  uint8_t buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    out.insert(out.end(), buffer, buffer + n);
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad)
    return fail(MOE_INVALID_ARGUMENT, "cannot read '" + path + "'");
  return MOE_OK;
}

namespace {
auto bad(const std::string &m) { return fail(MOE_INVALID_FORMAT, "safetensors: " + m); }

/// The header length and text of a safetensors image whose first bytes are
/// `prefix` (at least 8) and whose size is `size`.
moe_status_t headerLength(const uint8_t *prefix, uint64_t size, uint64_t &headerSize) {
  if (size < 8)
    return bad("file of " + std::to_string(size) + " bytes is shorter than the 8-byte header length");
  headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | prefix[i];
  if (headerSize > size - 8)
    return bad("header length " + std::to_string(headerSize) + " exceeds the file (" + std::to_string(size - 8) +
               " bytes after the length)");
  return MOE_OK;
}
} // namespace

moe_status_t parseSafetensorsHeader(std::string_view headerText, uint64_t dataSize, std::vector<TensorEntry> &out) {
  out.clear();
  json::Value header;
  std::string error;
  if (!json::parse(headerText, header, error))
    return bad("header is not valid JSON: " + error);
  if (!header.isObject())
    return bad("header must be a JSON object");

  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto &[name, entry] : header.object) {
    if (name == "__metadata__") {
      if (!entry.isObject())
        return bad("__metadata__ must be an object");
      for (const auto &[k, v] : entry.object)
        if (!v.isString())
          return bad("__metadata__ value of \"" + k + "\" must be a string");
      continue;
    }
    if (!entry.isObject())
      return bad("entry \"" + name + "\" must be an object");
    const json::Value *dtype = entry.find("dtype"), *shape = entry.find("shape"), *offsets = entry.find("data_offsets");
    if (!dtype || !dtype->isString() || !shape || !shape->isArray() || !offsets || !offsets->isArray() ||
        offsets->array.size() != 2)
      return bad("entry \"" + name + "\" needs \"dtype\", \"shape\" and \"data_offsets\": [begin, end]");
    std::optional<moe_dtype_t> dt = parseDType(dtype->string);
    if (!dt)
      return bad("tensor \"" + name + "\" has unsupported dtype \"" + dtype->string +
                 "\" (supported: F32, F16, BF16, I32)");
    TensorEntry t;
    t.name = name;
    t.dtype = *dt;
    uint64_t elements = 1;
    for (const json::Value &d : shape->array) {
      if (!d.isInteger || d.integer < 0)
        return bad("tensor \"" + name + "\" has a dimension that is not a non-negative integer");
      if (d.integer > 0 && elements > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(d.integer))
        return bad("tensor \"" + name + "\" is too large");
      elements *= static_cast<uint64_t>(d.integer);
      t.shape.push_back(d.integer);
    }
    const json::Value &b = offsets->array[0], &e = offsets->array[1];
    if (!b.isInteger || !e.isInteger || b.integer < 0 || e.integer < b.integer)
      return bad("tensor \"" + name + "\" has bad data_offsets");
    uint64_t begin = static_cast<uint64_t>(b.integer), end = static_cast<uint64_t>(e.integer);
    uint64_t want = elements * moe_dtype_size(*dt);
    if (end - begin != want)
      return bad("tensor \"" + name + "\" of shape " + shapeString(t.shape) + " and dtype " + dtype->string +
                 " needs " + std::to_string(want) + " bytes, data_offsets span " + std::to_string(end - begin));
    if (end > dataSize)
      return bad("tensor \"" + name + "\" ends at byte " + std::to_string(end) + " past the data region of " +
                 std::to_string(dataSize) + " bytes");
    t.begin = begin;
    t.end = end;
    spans.push_back({begin, end, name});
    out.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(), [](const Span &a, const Span &b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const Span &s : spans) {
    if (s.begin < covered)
      return bad("tensor \"" + s.name + "\" overlaps the previous tensor's data");
    if (s.begin > covered)
      return bad("a hole in the data region before tensor \"" + s.name + "\" (bytes " + std::to_string(covered) +
                 " to " + std::to_string(s.begin) + ")");
    covered = s.end;
  }
  if (covered != dataSize)
    return bad(std::to_string(dataSize - covered) + " bytes after the last tensor are not indexed");
  return MOE_OK;
}

moe_status_t parseSafetensors(const uint8_t *bytes, size_t size, std::vector<Tensor> &out) {
  out.clear();
  uint64_t headerSize = 0;
  if (moe_status_t s = headerLength(bytes, size, headerSize))
    return s;
  std::vector<TensorEntry> entries;
  std::string_view text(reinterpret_cast<const char *>(bytes + 8), headerSize);
  if (moe_status_t s = parseSafetensorsHeader(text, size - 8 - headerSize, entries))
    return s;
  const uint8_t *data = bytes + 8 + headerSize;
  for (TensorEntry &e : entries) {
    Tensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data.assign(data + e.begin, data + e.end);
    out.push_back(std::move(t));
  }
  return MOE_OK;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd >= 0)
    ::close(fd);
}

moe_status_t SafetensorsFile::open(const std::string &path) {
  this->path = path;
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(MOE_NOT_FOUND, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail(MOE_INVALID_ARGUMENT, "cannot stat '" + path + "': " + std::strerror(errno));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t prefix[8] = {};
  uint64_t headerSize = 0;
  if (size >= 8 && pread(fd, prefix, 8, 0) != 8)
    return fail(MOE_INVALID_ARGUMENT, "cannot read '" + path + "'");
  moe_status_t s = headerLength(prefix, size, headerSize);
  std::string header;
  if (s == MOE_OK) {
    header.resize(headerSize);
    if (headerSize && pread(fd, header.data(), headerSize, 8) != static_cast<ssize_t>(headerSize))
      return fail(MOE_INVALID_ARGUMENT, "cannot read the header of '" + path + "'");
    s = parseSafetensorsHeader(header, size - 8 - headerSize, entries_);
  }
  if (s)
    return fail(s, path + ": " + moe_last_error());
  dataStart = 8 + headerSize;
  return MOE_OK;
}

const TensorEntry *SafetensorsFile::find(const std::string &name) const {
  for (const TensorEntry &e : entries_)
    if (e.name == name)
      return &e;
  return nullptr;
}

moe_status_t SafetensorsFile::readElements(const TensorEntry &e, int64_t first, int64_t count, void *out) const {
  uint64_t size = moe_dtype_size(e.dtype);
  uint64_t begin = e.begin + static_cast<uint64_t>(first) * size, bytes = static_cast<uint64_t>(count) * size;
  if (first < 0 || count < 0 || begin + bytes > e.end)
    return fail(MOE_INTERNAL, path + ": elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                                  ") are outside tensor \"" + e.name + "\"");
  uint64_t done = 0;
  while (done < bytes) {
    ssize_t n = pread(fd, static_cast<char *>(out) + done, bytes - done, static_cast<off_t>(dataStart + begin + done));
    if (n <= 0)
      return fail(MOE_INVALID_ARGUMENT, "cannot read tensor \"" + e.name + "\" from '" + path + "'");
    done += static_cast<uint64_t>(n);
  }
  return MOE_OK;
}

moe_status_t readSafetensors(const std::string &path, std::vector<Tensor> &out) {
  std::vector<uint8_t> bytes;
  if (moe_status_t s = readFile(path, bytes))
    return s;
  moe_status_t s = parseSafetensors(bytes.data(), bytes.size(), out);
  if (s)
    return fail(s, path + ": " + moe_last_error());
  return MOE_OK;
}

moe_status_t writeSafetensors(const std::string &path, const std::vector<Tensor> &tensors) {
  std::vector<TensorView> views;
  for (const Tensor &t : tensors)
    views.push_back({t.name, t.dtype, t.shape, t.data.data(), t.data.size()});
  return writeSafetensors(path, views);
}

moe_status_t writeSafetensors(const std::string &path, const std::vector<TensorView> &tensors,
                              std::vector<uint64_t> *fileOffsets) {
  std::string header = "{";
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView &t = tensors[i];
    for (size_t j = 0; j < i; ++j)
      if (tensors[j].name == t.name)
        return fail(MOE_INVALID_ARGUMENT, "safetensors: two tensors named \"" + t.name + "\"");
    int64_t elements = 1;
    for (int64_t d : t.shape)
      elements *= d;
    if (t.bytes != static_cast<size_t>(elements) * moe_dtype_size(t.dtype))
      return fail(MOE_INVALID_ARGUMENT, "safetensors: tensor \"" + t.name + "\" has " + std::to_string(t.bytes) +
                                            " bytes for shape " + shapeString(t.shape));
    if (i)
      header += ",";
    json::writeString(header, t.name);
    header += ":{\"dtype\":\"" + std::string(moe_dtype_name(t.dtype)) + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d)
      header += (d ? "," : "") + std::to_string(t.shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes) + "]}";
    offsets.push_back(offset);
    offset += t.bytes;
  }
  header += "}";
  while (header.size() % 8)
    header += ' '; // keep the data region 8-byte aligned, as the format recommends
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return fail(MOE_INVALID_ARGUMENT, "cannot write '" + path + "': " + std::strerror(errno));
  uint8_t length[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<uint8_t>(n >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const TensorView &t : tensors)
    ok = ok && std::fwrite(t.data, 1, t.bytes, f) == t.bytes;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok)
    return fail(MOE_INVALID_ARGUMENT, "cannot write '" + path + "'");
  if (fileOffsets) {
    for (uint64_t &o : offsets)
      o += 8 + header.size();
    *fileOffsets = std::move(offsets);
  }
  return MOE_OK;
}

} // namespace moe::runtime
