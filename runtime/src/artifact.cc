// artifact.cc - writing and (strictly) reading .moeb artifacts.
#include "moe/runtime/artifact.h"

#include "moe/runtime/json.h"
#include "moe/runtime/kernel_abi.h"
#include "moe/runtime/safetensors.h"

#include <cstdio>
#include <cstring>
#include <set>

namespace moe::runtime {

std::string outputName(size_t index, size_t count) {
  return count == 1 ? "output" : "output" + std::to_string(index + 1);
}

namespace {

const uint8_t kMagic[8] = {'M', 'O', 'E', 'B', '\r', '\n', 0x1a, '\n'};
constexpr size_t kHeaderSize = 32, kEntrySize = 48, kNameSize = 24, kMaxSections = 64;

uint64_t readU64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
uint32_t readU32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
void putU64(std::vector<uint8_t> &out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void putU32(std::vector<uint8_t> &out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

moe_status_t bad(const std::string &m) { return fail(MOE_INVALID_FORMAT, "artifact: " + m); }

void writeSpecs(std::string &out, const char *key, const std::vector<TensorSpec> &specs, bool isParam) {
  out += ",\"";
  out += key;
  out += "\":[";
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec &s = specs[i];
    out += i ? ",{\"name\":" : "{\"name\":";
    json::writeString(out, s.name);
    out += ",\"dtype\":\"" + std::string(moe_dtype_name(s.dtype)) + "\",\"shape\":[";
    for (size_t d = 0; d < s.shape.size(); ++d) {
      if (d)
        out += ",";
      if (s.shape[d].isSymbolic())
        json::writeString(out, s.shape[d].symbol);
      else
        out += std::to_string(s.shape[d].size);
    }
    out += "]";
    if (isParam) {
      out += ",\"init\":";
      json::writeString(out, s.init);
      out += s.trainable ? ",\"trainable\":true" : ",\"trainable\":false";
      if (!s.update.empty())
        out += ",\"update\":\"" + s.update + "\"";
    }
    // A parameter's, or its gradient's (which is placed as the parameter).
    if (s.placement != Placement::Replicated)
      out += ",\"placement\":\"" + std::string(placementName(s.placement)) + "\"";
    out += "}";
  }
  out += "]";
}

moe_status_t readSpecs(const json::Value &root, const char *key, std::vector<TensorSpec> &out, bool isParam) {
  const json::Value *list = root.find(key);
  if (!list || !list->isArray())
    return bad(std::string("signature needs an array \"") + key + "\"");
  std::set<std::string> names;
  for (const json::Value &v : list->array) {
    const json::Value *name = v.find("name"), *dtype = v.find("dtype"), *shape = v.find("shape");
    if (!v.isObject() || !name || !name->isString() || name->string.empty() || !dtype || !dtype->isString() || !shape ||
        !shape->isArray())
      return bad(std::string("each of \"") + key + "\" needs a name, a dtype and a shape");
    TensorSpec s;
    s.name = name->string;
    if (!names.insert(s.name).second)
      return bad("two " + std::string(key) + " named \"" + s.name + "\"");
    std::optional<moe_dtype_t> dt = parseDType(dtype->string);
    if (!dt)
      return bad("\"" + s.name + "\" has unknown dtype \"" + dtype->string + "\"");
    s.dtype = *dt;
    for (const json::Value &d : shape->array) {
      Dim dim;
      if (d.isString() && !d.string.empty())
        dim.symbol = d.string;
      else if (d.isInteger && d.integer >= 0)
        dim.size = d.integer;
      else
        return bad("\"" + s.name + "\" has a dimension that is neither a size nor a symbol");
      s.shape.push_back(dim);
    }
    if (isParam) {
      for (const Dim &d : s.shape)
        if (d.isSymbolic())
          return bad("parameter \"" + s.name + "\" has a symbolic dimension");
      // A size no allocation can have: refused here, before any arithmetic on it.
      if (!s.bytes())
        return bad("parameter \"" + s.name + "\" is too large: its size in bytes overflows 64 bits");
      if (const json::Value *init = v.find("init")) {
        if (!init->isString() || (init->string != "normal" && init->string != "zeros" && init->string != "ones"))
          return bad("parameter \"" + s.name + "\" has an unknown init");
        s.init = init->string;
      }
      if (const json::Value *t = v.find("trainable"))
        s.trainable = t->kind == json::Value::Kind::Bool && t->boolean;
      if (const json::Value *u = v.find("update")) {
        if (!u->isString() || u->string != "balance")
          return bad("parameter \"" + s.name + "\" has an unknown update (balance)");
        s.update = u->string;
      }
    }
    if (const json::Value *p = v.find("placement")) {
      std::optional<Placement> placement = p->isString() ? parsePlacement(p->string) : std::nullopt;
      if (!placement)
        return bad("tensor \"" + s.name + "\" has an unknown placement (replicated or experts)");
      s.placement = *placement;
    }
    out.push_back(std::move(s));
  }
  return MOE_OK;
}

} // namespace

uint32_t crc32(const uint8_t *bytes, size_t size) {
  // Slicing-by-8 (eight bytes a step through eight tables): checkpoints and
  // artifacts of gigabytes are checked at memory speed, not a byte a step.
  static uint32_t table[8][256] = {};
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int t = 1; t < 8; ++t)
        table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    return true;
  }();
  (void)ready;
  uint32_t c = 0xFFFFFFFFu;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, bytes + i, 4);
    std::memcpy(&hi, bytes + i + 4, 4);
    lo ^= c; // little-endian hosts (the runtime's targets)
    c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24] ^
        table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
  }
  for (; i < size; ++i)
    c = table[0][(c ^ bytes[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

const std::vector<uint8_t> *Artifact::section(const std::string &name) const {
  for (const auto &[n, bytes] : sections)
    if (n == name)
      return &bytes;
  return nullptr;
}

std::string signatureToJson(const Signature &s) {
  std::string out = "{\"layer\":";
  json::writeString(out, s.layer);
  out += ",\"description\":";
  json::writeString(out, s.description);
  out += ",\"entry\":";
  json::writeString(out, s.entry);
  out += ",\"target\":";
  json::writeString(out, s.target);
  writeSpecs(out, "inputs", s.inputs, false);
  writeSpecs(out, "params", s.params, true);
  writeSpecs(out, "outputs", s.outputs, false);
  out += ",\"hyperparameters\":" + s.hyperparameters;
  out += ",\"kernel_abi\":" + std::to_string(MOE_KERNEL_ABI_VERSION);
  if (s.mesh.isPlaced())
    out += ",\"mesh\":\"" + s.mesh.toString() + "\"";
  if (s.rowIndependent)
    out += ",\"row_independent\":true";
  if (s.backward) {
    out += ",\"backward\":{\"entry\":";
    json::writeString(out, s.backward->entry);
    writeSpecs(out, "gradients", s.backward->gradients, false);
    if (!s.backward->trainEntry.empty()) {
      out += ",\"train_entry\":";
      json::writeString(out, s.backward->trainEntry);
      writeSpecs(out, "residuals", s.backward->residuals, false);
    }
    out += "}";
  }
  char flops[40];
  std::snprintf(flops, sizeof flops, ",\"flops_per_token\":%.17g}", s.flopsPerToken);
  return out + flops;
}

moe_status_t signatureFromJson(const std::string &text, Signature &out) {
  json::Value root;
  std::string error;
  if (!json::parse(text, root, error))
    return bad("signature is not valid JSON: " + error);
  if (!root.isObject())
    return bad("signature must be a JSON object");
  auto str = [&](const char *key, std::string &field, bool required) -> moe_status_t {
    const json::Value *v = root.find(key);
    if (!v)
      return required ? bad(std::string("signature needs \"") + key + "\"") : MOE_OK;
    if (!v->isString())
      return bad(std::string("signature \"") + key + "\" must be a string");
    field = v->string;
    return MOE_OK;
  };
  out = Signature();
  if (moe_status_t s = str("layer", out.layer, true))
    return s;
  if (moe_status_t s = str("description", out.description, false))
    return s;
  if (moe_status_t s = str("entry", out.entry, true))
    return s;
  if (moe_status_t s = str("target", out.target, true))
    return s;
  if (moe_status_t s = readSpecs(root, "inputs", out.inputs, false))
    return s;
  if (moe_status_t s = readSpecs(root, "params", out.params, true))
    return s;
  if (moe_status_t s = readSpecs(root, "outputs", out.outputs, false))
    return s;
  if (const json::Value *h = root.find("hyperparameters")) {
    if (!h->isObject())
      return bad("signature \"hyperparameters\" must be an object");
  }
  // Compiled for other kernels than this runtime's: refused (kernel_abi.h).
  const json::Value *abi = root.find("kernel_abi");
  const int64_t compiledFor = abi && abi->isInteger ? abi->integer : 1;
  if (compiledFor != MOE_KERNEL_ABI_VERSION)
    return fail(MOE_VERSION_MISMATCH, "artifact: compiled for kernel ABI " + std::to_string(compiledFor) +
                                          "; this runtime's kernels are ABI " + std::to_string(MOE_KERNEL_ABI_VERSION) +
                                          " (rebuild it with this release's moec, or run it with the runtime it "
                                          "was built for)");
  if (const json::Value *f = root.find("flops_per_token")) {
    if (f->kind != json::Value::Kind::Number || f->number < 0)
      return bad("signature \"flops_per_token\" must be a non-negative number");
    out.flopsPerToken = f->number;
  }
  if (const json::Value *m = root.find("mesh")) {
    std::string error;
    std::optional<Mesh> mesh = m->isString() ? parseMesh(m->string, error) : std::nullopt;
    if (!mesh)
      return bad("signature \"mesh\": " + (error.empty() ? std::string("must be a string") : error));
    out.mesh = *mesh;
  }
  if (const json::Value *r = root.find("row_independent")) {
    if (r->kind != json::Value::Kind::Bool)
      return bad("signature \"row_independent\" must be a boolean");
    out.rowIndependent = r->boolean;
  }
  if (const json::Value *b = root.find("backward")) {
    const json::Value *entry = b->find("entry");
    if (!b->isObject() || !entry || !entry->isString() || entry->string.empty())
      return bad("signature \"backward\" needs an \"entry\" symbol");
    BackwardSignature backward;
    backward.entry = entry->string;
    if (moe_status_t s = readSpecs(*b, "gradients", backward.gradients, false))
      return s;
    if (const json::Value *train = b->find("train_entry")) {
      if (!train->isString() || train->string.empty())
        return bad("signature \"backward\" has a \"train_entry\" that is not a symbol");
      backward.trainEntry = train->string;
      if (moe_status_t s = readSpecs(*b, "residuals", backward.residuals, false))
        return s;
      if (backward.residuals.empty())
        return bad("signature \"backward\" has a \"train_entry\" but no \"residuals\"");
    }
    out.backward = std::move(backward);
  }
  for (const TensorSpec &p : out.params)
    if (p.placement == Placement::Experts && (p.shape.empty() || p.shape[0].size % out.mesh.ep != 0))
      return bad("parameter \"" + p.name + "\" is split by expert, but its first dimension does not divide by ep = " +
                 std::to_string(out.mesh.ep));
  if (out.inputs.empty() || out.outputs.empty())
    return bad("signature has no inputs or no outputs");
  if (out.entry.empty())
    return bad("signature has an empty entry symbol");
  return MOE_OK;
}

moe_status_t serializeArtifact(const Artifact &artifact, std::vector<uint8_t> &out) {
  std::vector<std::pair<std::string, const std::vector<uint8_t> *>> all;
  std::string signature = signatureToJson(artifact.signature);
  std::vector<uint8_t> signatureBytes(signature.begin(), signature.end());
  all.emplace_back("signature", &signatureBytes);
  for (const auto &[name, bytes] : artifact.sections) {
    if (name.empty() || name.size() >= kNameSize || name == "signature")
      return fail(MOE_INVALID_ARGUMENT, "artifact: bad section name \"" + name + "\"");
    all.emplace_back(name, &bytes);
  }
  if (all.size() > kMaxSections)
    return fail(MOE_INVALID_ARGUMENT, "artifact: too many sections");
  size_t offset = kHeaderSize + all.size() * kEntrySize;
  out.assign(offset, 0);
  std::memcpy(out.data(), kMagic, 8);
  putU32(out, 8, kArtifactVersion);
  putU32(out, 12, static_cast<uint32_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    offset = (out.size() + 15) & ~size_t{15};
    out.resize(offset, 0);
    const std::vector<uint8_t> &bytes = *all[i].second;
    size_t entry = kHeaderSize + i * kEntrySize;
    std::memcpy(out.data() + entry, all[i].first.data(), all[i].first.size());
    putU64(out, entry + 24, offset);
    putU64(out, entry + 32, bytes.size());
    putU32(out, entry + 40, crc32(bytes.data(), bytes.size()));
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  putU64(out, 16, out.size());
  return MOE_OK;
}

moe_status_t writeArtifact(const std::string &path, const Artifact &artifact) {
  std::vector<uint8_t> bytes;
  if (moe_status_t s = serializeArtifact(artifact, bytes))
    return s;
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return fail(MOE_INVALID_ARGUMENT, "cannot write '" + path + "': " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fclose(f) == 0 && ok;
  return ok ? MOE_OK : fail(MOE_INVALID_ARGUMENT, "cannot write '" + path + "'");
}

moe_status_t parseArtifact(const uint8_t *bytes, size_t size, Artifact &out) {
  out = Artifact();
  if (size < kHeaderSize || std::memcmp(bytes, kMagic, 8) != 0)
    return bad("not a moec artifact (no MOEB magic at the start)");
  uint32_t version = readU32(bytes + 8);
  if (version != kArtifactVersion)
    return fail(MOE_VERSION_MISMATCH, "artifact: format version " + std::to_string(version) +
                                          "; this runtime reads version " + std::to_string(kArtifactVersion) +
                                          " (rebuild it with moec build)");
  uint32_t count = readU32(bytes + 12);
  uint64_t declared = readU64(bytes + 16);
  if (declared != size)
    return bad("truncated or padded: the header says " + std::to_string(declared) + " bytes, the file has " +
               std::to_string(size));
  if (count == 0 || count > kMaxSections || kHeaderSize + count * kEntrySize > size)
    return bad("bad section count " + std::to_string(count));
  struct Span {
    uint64_t begin, end;
  };
  std::vector<Span> spans;
  std::string signatureText;
  bool haveSignature = false;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t *entry = bytes + kHeaderSize + i * kEntrySize;
    size_t nameLength = strnlen(reinterpret_cast<const char *>(entry), kNameSize);
    if (nameLength == 0 || nameLength == kNameSize)
      return bad("section #" + std::to_string(i) + " has no NUL-terminated name");
    std::string name(reinterpret_cast<const char *>(entry), nameLength);
    for (char c : name)
      if (c < 0x21 || c > 0x7e)
        return bad("section #" + std::to_string(i) + " has a non-printable name");
    uint64_t offset = readU64(entry + 24), length = readU64(entry + 32);
    if (offset < kHeaderSize + count * kEntrySize || offset > size || length > size - offset)
      return bad("section \"" + name + "\" (offset " + std::to_string(offset) + ", " + std::to_string(length) +
                 " bytes) lies outside the file of " + std::to_string(size) + " bytes");
    for (const Span &s : spans)
      if (offset < s.end && s.begin < offset + length)
        return bad("section \"" + name + "\" overlaps another section");
    spans.push_back({offset, offset + length});
    uint32_t want = readU32(entry + 40), got = crc32(bytes + offset, length);
    if (want != got)
      return bad("section \"" + name + "\" is corrupted (CRC32 " + std::to_string(got) + ", expected " +
                 std::to_string(want) + ")");
    if (name == "signature") {
      signatureText.assign(reinterpret_cast<const char *>(bytes + offset), length);
      haveSignature = true;
      continue;
    }
    if (out.section(name))
      return bad("two sections named \"" + name + "\"");
    out.sections.emplace_back(name, std::vector<uint8_t>(bytes + offset, bytes + offset + length));
  }
  if (!haveSignature)
    return bad("no \"signature\" section");
  return signatureFromJson(signatureText, out.signature);
}

moe_status_t readArtifact(const std::string &path, Artifact &out) {
  std::vector<uint8_t> bytes;
  if (moe_status_t s = readFile(path, bytes))
    return s;
  if (moe_status_t s = parseArtifact(bytes.data(), bytes.size(), out))
    return fail(s, path + ": " + moe_last_error());
  return MOE_OK;
}

} // namespace moe::runtime
