// hf.cc - a Hugging Face MoE layer to and from moec's weights (hf.h).
#include "moe/runtime/hf.h"

#include "moe/runtime/json.h"
#include "moe/runtime/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <map>
#include <memory>
#include <sys/stat.h>

namespace moe::runtime {

namespace {

/// moec's name of an expert FFN weight and HF's, per family.
struct ExpertName {
  const char *ours, *theirs;
};
constexpr ExpertName kMixtralExperts[] = {{"w_gate", "w1"}, {"w_up", "w3"}, {"w_down", "w2"}};
constexpr ExpertName kProjExperts[] = {{"w_gate", "gate_proj"}, {"w_up", "up_proj"}, {"w_down", "down_proj"}};

/// Where a family keeps its MoE block under model.layers.<L>.
struct Names {
  std::string block;     ///< "block_sparse_moe." or "mlp."
  const ExpertName *ffn; ///< the three expert weights
  bool bias = false;     ///< DeepSeek-V3's gate.e_score_correction_bias
  bool shared = false;   ///< DeepSeek-V3's shared_experts
};

Names namesOf(HfFamily family, int64_t layer) {
  std::string p = "model.layers." + std::to_string(layer) + ".";
  switch (family) {
  case HfFamily::Mixtral:
    return {p + "block_sparse_moe.", kMixtralExperts, false, false};
  case HfFamily::Qwen3Moe:
    return {p + "mlp.", kProjExperts, false, false};
  case HfFamily::DeepSeekV3:
    return {p + "mlp.", kProjExperts, true, true};
  }
  return {};
}

bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool endsWith(const std::string &s, const char *suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

/// The checkpoint's tensors: which file holds each (HF's
/// model.safetensors.index.json weight_map, or every file's own header).
class Checkpoint {
public:
  moe_status_t open(const std::string &source) {
    std::string dir = source, index;
    if (isDirectory(source)) {
      if (FILE *f = std::fopen((source + "/model.safetensors.index.json").c_str(), "rb")) {
        std::fclose(f);
        index = source + "/model.safetensors.index.json";
      }
    } else if (endsWith(source, ".json")) {
      index = source;
      dir = source.find('/') == std::string::npos ? "." : source.substr(0, source.rfind('/'));
    } else {
      return addFile(source);
    }
    if (!index.empty())
      return readIndex(index, dir);
    // A directory without an index: every safetensors file in it.
    DIR *d = ::opendir(dir.c_str());
    if (!d)
      return fail(MOE_NOT_FOUND, "hf: cannot open " + dir + ": " + std::strerror(errno));
    std::vector<std::string> files;
    while (dirent *e = ::readdir(d))
      if (endsWith(e->d_name, ".safetensors"))
        files.push_back(dir + "/" + e->d_name);
    ::closedir(d);
    if (files.empty())
      return fail(MOE_NOT_FOUND, "hf: " + dir + " holds no model.safetensors.index.json and no .safetensors file");
    std::sort(files.begin(), files.end());
    for (const std::string &f : files)
      if (moe_status_t s = addFile(f))
        return s;
    return MOE_OK;
  }

  bool has(const std::string &name) const { return where_.count(name) != 0; }

  /// A tensor, checked against its expected rank; `near` names it in errors.
  moe_status_t get(const std::string &name, Tensor &out) {
    auto it = where_.find(name);
    if (it == where_.end())
      return fail(MOE_NOT_FOUND, "hf: the checkpoint has no tensor \"" + name + "\"");
    SafetensorsFile *file = nullptr;
    if (moe_status_t s = fileFor(it->second, file))
      return s;
    const TensorEntry *e = file->find(name);
    if (!e)
      return fail(MOE_INVALID_FORMAT,
                  "hf: the index puts \"" + name + "\" in " + it->second + ", which does not hold it");
    if (e->dtype != MOE_F32 && e->dtype != MOE_BF16 && e->dtype != MOE_F16)
      return fail(MOE_INVALID_ARGUMENT,
                  "hf: \"" + name + "\" is " + moe_dtype_name(e->dtype) + "; moec's weights are F32, BF16 or F16");
    out = Tensor::zeros(name, e->dtype, e->shape);
    return file->readElements(*e, 0, out.numElements(), out.data.data());
  }

private:
  moe_status_t addFile(const std::string &path) {
    auto file = std::make_unique<SafetensorsFile>();
    if (moe_status_t s = file->open(path))
      return s;
    for (const TensorEntry &e : file->entries())
      where_[e.name] = path;
    files_[path] = std::move(file);
    return MOE_OK;
  }

  moe_status_t readIndex(const std::string &index, const std::string &dir) {
    std::vector<uint8_t> text;
    if (moe_status_t s = readFile(index, text))
      return s;
    json::Value root;
    std::string error;
    if (!json::parse(std::string(text.begin(), text.end()), root, error))
      return fail(MOE_INVALID_FORMAT, "hf: " + index + " is not valid JSON: " + error);
    const json::Value *map = root.find("weight_map");
    if (!map || !map->isObject())
      return fail(MOE_INVALID_FORMAT, "hf: " + index + " has no \"weight_map\" object (tensor name -> shard file)");
    for (const auto &[name, file] : map->object) {
      if (!file.isString() || file.string.empty() || file.string.find('/') != std::string::npos)
        return fail(MOE_INVALID_FORMAT, "hf: " + index + " maps \"" + name + "\" to no shard file name");
      where_[name] = dir + "/" + file.string;
    }
    return MOE_OK;
  }

  moe_status_t fileFor(const std::string &path, SafetensorsFile *&out) {
    auto it = files_.find(path);
    if (it == files_.end()) {
      auto file = std::make_unique<SafetensorsFile>();
      if (moe_status_t s = file->open(path))
        return fail(s, "hf: a shard the index names cannot be read: " + std::string(moe_last_error()));
      it = files_.emplace(path, std::move(file)).first;
    }
    out = it->second.get();
    return MOE_OK;
  }

  std::map<std::string, std::string> where_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

/// An nn.Linear weight [out, in] as [in, out] (or back): a 2-D transpose.
Tensor transposed(const Tensor &t, const std::string &name) {
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const size_t size = moe_dtype_size(t.dtype);
  Tensor out = Tensor::zeros(name, t.dtype, {cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(out.data.data() + (c * rows + r) * size, t.data.data() + (r * cols + c) * size, size);
  return out;
}

std::string shapeOf(const Tensor &t) { return shapeString(t.shape); }

/// A Linear weight of the shape [out, in] the layer's sizes give.
moe_status_t linear(Checkpoint &ck, const std::string &name, int64_t out, int64_t in, Tensor &w) {
  if (moe_status_t s = ck.get(name, w))
    return s;
  if (w.shape.size() != 2 || (out >= 0 && w.shape[0] != out) || (in >= 0 && w.shape[1] != in))
    return fail(MOE_INVALID_ARGUMENT, "hf: \"" + name + "\" has shape " + shapeOf(w) + "; an nn.Linear weight [" +
                                          (out >= 0 ? std::to_string(out) : std::string("out")) + ", " +
                                          (in >= 0 ? std::to_string(in) : std::string("in")) + "] was expected");
  return MOE_OK;
}

} // namespace

const char *hfFamilyName(HfFamily family) {
  switch (family) {
  case HfFamily::Mixtral:
    return "mixtral";
  case HfFamily::Qwen3Moe:
    return "qwen3_moe";
  case HfFamily::DeepSeekV3:
    return "deepseek_v3";
  }
  return "?";
}

std::optional<HfFamily> parseHfFamily(const std::string &name) {
  for (HfFamily f : {HfFamily::Mixtral, HfFamily::Qwen3Moe, HfFamily::DeepSeekV3})
    if (name == hfFamilyName(f))
      return f;
  return std::nullopt;
}

moe_status_t importHuggingFace(const HfLayer &hf, std::vector<Tensor> &out, HfFamily *familyOut) {
  Checkpoint ck;
  if (moe_status_t s = ck.open(hf.source))
    return s;
  const std::string p = "model.layers." + std::to_string(hf.layer) + ".";
  std::optional<HfFamily> family = hf.family;
  if (!family) {
    if (ck.has(p + "block_sparse_moe.gate.weight"))
      family = HfFamily::Mixtral;
    else if (ck.has(p + "mlp.gate.e_score_correction_bias"))
      family = HfFamily::DeepSeekV3;
    else if (ck.has(p + "mlp.gate.weight") && ck.has(p + "mlp.experts.0.gate_proj.weight"))
      family = HfFamily::Qwen3Moe;
    else
      return fail(MOE_NOT_FOUND, "hf: " + hf.source + " holds no MoE block of layer " + std::to_string(hf.layer) +
                                     " (no " + p + "block_sparse_moe.gate.weight or " + p +
                                     "mlp.gate.weight with mlp.experts.0.*): wrong --layer?");
  }
  const Names names = namesOf(*family, hf.layer);
  out.clear();
  // The router: gate.weight [E, d] -> router.weight [d, E].
  Tensor gate;
  if (moe_status_t s = linear(ck, names.block + "gate.weight", -1, -1, gate))
    return s;
  const int64_t experts = gate.shape[0], d = gate.shape[1];
  out.push_back(transposed(gate, "router.weight"));
  // The experts, stacked: [E, d, f] (gate, up) and [E, f, d] (down).
  int64_t f = -1;
  for (int which = 0; which < 3; ++which) {
    const ExpertName &n = names.ffn[which];
    const bool down = std::strcmp(n.ours, "w_down") == 0;
    Tensor stacked;
    for (int64_t e = 0; e < experts; ++e) {
      std::string name = names.block + "experts." + std::to_string(e) + "." + n.theirs + ".weight";
      if (!ck.has(name))
        return fail(MOE_NOT_FOUND, "hf: the checkpoint has no \"" + name + "\" (the gate routes to " +
                                       std::to_string(experts) + " experts)");
      Tensor w;
      if (moe_status_t s = down ? linear(ck, name, d, f, w) : linear(ck, name, f, d, w))
        return s;
      if (f < 0)
        f = down ? w.shape[1] : w.shape[0];
      Tensor t = transposed(w, "");
      if (e == 0) {
        stacked = Tensor::zeros("experts." + std::string(n.ours), t.dtype, {experts, t.shape[0], t.shape[1]});
      } else if (t.dtype != stacked.dtype) {
        return fail(MOE_INVALID_ARGUMENT, "hf: \"" + name + "\" is " + moe_dtype_name(t.dtype) + ", expert 0's " +
                                              moe_dtype_name(stacked.dtype));
      }
      std::memcpy(stacked.data.data() + e * t.data.size(), t.data.data(), t.data.size());
    }
    out.push_back(std::move(stacked));
  }
  if (names.bias) { // DeepSeek-V3's selection bias: an f32 [E]
    Tensor b;
    if (moe_status_t s = ck.get(names.block + "gate.e_score_correction_bias", b))
      return s;
    if (b.shape != std::vector<int64_t>{experts})
      return fail(MOE_INVALID_ARGUMENT, "hf: \"" + names.block + "gate.e_score_correction_bias\" has shape " +
                                            shapeOf(b) + "; the gate routes to [" + std::to_string(experts) + "]");
    b.name = "bias";
    out.push_back(std::move(b));
  }
  if (names.shared) { // the shared expert: one SwiGLU of its own width
    int64_t fs = -1;
    for (const ExpertName &n : kProjExperts) {
      const bool down = std::strcmp(n.ours, "w_down") == 0;
      std::string name = names.block + "shared_experts." + n.theirs + ".weight";
      Tensor w;
      if (moe_status_t s = down ? linear(ck, name, d, fs, w) : linear(ck, name, fs, d, w))
        return s;
      if (fs < 0)
        fs = down ? w.shape[1] : w.shape[0];
      out.push_back(transposed(w, "shared." + std::string(n.ours)));
    }
  }
  if (familyOut)
    *familyOut = *family;
  return MOE_OK;
}

moe_status_t exportHuggingFace(const std::vector<Tensor> &weights, HfFamily family, int64_t layer,
                               const std::string &path) {
  const Names names = namesOf(family, layer);
  auto find = [&](const std::string &name, const Tensor *&t) {
    t = nullptr;
    for (const Tensor &w : weights)
      if (w.name == name)
        t = &w;
    return t ? MOE_OK : fail(MOE_NOT_FOUND, "hf export: the weights have no \"" + name + "\"");
  };
  std::vector<Tensor> out;
  const Tensor *router = nullptr;
  if (moe_status_t s = find("router.weight", router))
    return s;
  if (router->shape.size() != 2)
    return fail(MOE_INVALID_ARGUMENT, "hf export: router.weight has shape " + shapeOf(*router));
  out.push_back(transposed(*router, names.block + "gate.weight"));
  for (int which = 0; which < 3; ++which) {
    const Tensor *stacked = nullptr;
    if (moe_status_t s = find("experts." + std::string(names.ffn[which].ours), stacked))
      return s;
    if (stacked->shape.size() != 3)
      return fail(MOE_INVALID_ARGUMENT, "hf export: " + stacked->name + " has shape " + shapeOf(*stacked));
    const int64_t rows = stacked->shape[1], cols = stacked->shape[2];
    const size_t bytes = static_cast<size_t>(rows * cols) * moe_dtype_size(stacked->dtype);
    for (int64_t e = 0; e < stacked->shape[0]; ++e) {
      Tensor one = Tensor::zeros("", stacked->dtype, {rows, cols});
      std::memcpy(one.data.data(), stacked->data.data() + e * bytes, bytes);
      out.push_back(
          transposed(one, names.block + "experts." + std::to_string(e) + "." + names.ffn[which].theirs + ".weight"));
    }
  }
  if (names.bias) {
    const Tensor *b = nullptr;
    if (moe_status_t s = find("bias", b))
      return s;
    Tensor copy = *b;
    copy.name = names.block + "gate.e_score_correction_bias";
    out.push_back(std::move(copy));
  }
  if (names.shared)
    for (const ExpertName &n : kProjExperts) {
      const Tensor *w = nullptr;
      if (moe_status_t s = find("shared." + std::string(n.ours), w))
        return s;
      out.push_back(transposed(*w, names.block + "shared_experts." + n.theirs + ".weight"));
    }
  return writeSafetensors(path, out);
}

} // namespace moe::runtime
