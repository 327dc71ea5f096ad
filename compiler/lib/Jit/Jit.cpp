//===- Jit.cpp - compile-on-first-call layers with a cache ------*- C++ -*-===//
#include "moe/Jit/Jit.h"

#include "moe/Compiler/Compiler.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/shard_io.h"
#include "moe/runtime/target.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdlib>
#include <unistd.h>

namespace rt = moe::runtime;

namespace moe::jit {
namespace {

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string signatureKey(const std::vector<InputSpec> &specs) {
  std::string key;
  for (const InputSpec &s : specs) {
    key += s.name + ":" + moe_dtype_name(s.dtype) + "[";
    for (size_t d = 1; d < s.shape.size(); ++d) // the first dimension stays symbolic
      key += std::to_string(s.shape[d]) + ",";
    key += "];";
  }
  return key;
}

std::string cacheDirectory(const Options &options) {
  std::string dir = options.cacheDir;
  if (dir.empty())
    if (const char *env = std::getenv("MOE_CACHE_DIR"))
      dir = env;
  if (dir == "-")
    return ""; // no disk cache, from the options or the environment alike
  if (!dir.empty())
    return dir;
  if (const char *home = std::getenv("HOME"))
    return std::string(home) + "/.cache/moec";
  return "";
}

} // namespace

std::string diskCacheKey(const Options &options, const std::string &source) {
  // Everything that changes the generated code: the compiler itself, the
  // target and whether a cubin is embedded, and the layer's source (which
  // holds every shape and dtype).
  // The target as the artifact names it: `sm_90a` and `cuda-sm_90a` are one.
  std::optional<rt::Target> parsed = rt::parseTarget(options.target);
  std::string target = parsed ? parsed->artifactName() : options.target;
  char hash[17];
  std::snprintf(
      hash, sizeof hash, "%016llx",
      static_cast<unsigned long long>(fnv1a(compilerIdentity() + "\n" + target + (options.cubin ? "+cubin" : "") +
                                            "\nmesh " + options.mesh.toString() + "\n" + source)));
  return hash;
}

moe_status_t compileSourceForCPU(const std::string &text, const std::string &bufferName, rt::Artifact &out) {
  return compileSource(text, bufferName, "cpu", out);
}

moe_status_t compileSource(const std::string &text, const std::string &bufferName, const std::string &target,
                           rt::Artifact &out, bool cubin, const rt::Mesh &mesh) {
  std::optional<rt::Target> parsed = rt::parseTarget(target);
  if (!parsed)
    return rt::fail(MOE_INVALID_ARGUMENT, "unknown JIT target \"" + target + "\"; " + rt::kTargetsHelp);
  moe::CompileSession session(llvm::MemoryBuffer::getMemBufferCopy(text, bufferName));
  mlir::OwningOpRef<mlir::ModuleOp> module = session.elaborate(frontend::ElaborationOptions());
  if (!module)
    return rt::fail(MOE_INVALID_ARGUMENT, "layer " + bufferName + " has errors (printed above)");
  moe::CompileOptions options;
  options.target = *parsed;
  // By default the JIT embeds PTX only: the driver compiles it at load (and
  // keeps it in its compute cache), so the compile does not wait for ptxas.
  options.cubin = cubin;
  options.mesh = mesh;
  if (mlir::failed(moe::compile(*module, options, out)))
    return rt::fail(MOE_INTERNAL, "compiling " + bufferName + " for " + target + " failed (printed above)");
  return MOE_OK;
}

Function::Function(std::string name, Definition define, Options options)
    : name(std::move(name)), define(std::move(define)), options(std::move(options)) {}

Function::~Function() = default;

void Function::setParameters(std::vector<rt::Tensor> p) {
  params = std::move(p);
  loaded.clear(); // rebind on the next call
}

moe_status_t Function::specialise(const std::vector<InputSpec> &specs, rt::Layer *&out) {
  // The layer's type parameter T is its first input's element type.
  builder::Graph graph(name, specs.empty() ? "f32" : rt::languageName(specs[0].dtype));
  define(graph, specs);
  source = graph.source();

  rt::Artifact artifact;
  std::string dir = cacheDirectory(options), path;
  bool haveArtifact = false;
  if (!dir.empty()) {
    path = dir + "/" + name + "-" + diskCacheKey(options, source) + ".moeb";
    if (llvm::sys::fs::exists(path) && rt::readArtifact(path, artifact) == MOE_OK) {
      haveArtifact = true;
      ++counters.diskHits;
    }
  }
  if (!haveArtifact) {
    if (moe_status_t s =
            compileSource(source, name + ".moe (generated)", options.target, artifact, options.cubin, options.mesh))
      return s;
    ++counters.compilations;
    if (!path.empty() && !llvm::sys::fs::create_directories(dir)) {
      // Write then rename: a concurrent reader never sees half a file.
      std::string temp = path + ".tmp" + std::to_string(::getpid());
      if (rt::writeArtifact(temp, artifact) == MOE_OK)
        llvm::sys::fs::rename(temp, path);
    }
  }
  std::unique_ptr<rt::Layer> layer;
  if (moe_status_t s = rt::Layer::load(std::move(artifact), layer))
    return s;
  // The given parameters, and random values by their init for the others.
  // bindParameters refuses a name the layer does not have (a misspelt name
  // must not run on random weights), as it does for moec run.
  if (layer->isSharded())
    if (moe_status_t s = layer->attach(options.communicator))
      return s;
  if (moe_status_t s = layer->checkParametersFit())
    return s;
  std::vector<rt::Tensor> bound = params;
  for (rt::Tensor &r : layer->randomParameters(options.seed))
    if (std::none_of(params.begin(), params.end(), [&](const rt::Tensor &p) { return p.name == r.name; }))
      bound.push_back(std::move(r));
  if (layer->isSharded()) {
    // The rank's shards of the global tensors, in signature order.
    std::vector<rt::Tensor> ordered;
    for (const rt::TensorSpec &spec : layer->signature().params)
      for (rt::Tensor &t : bound)
        if (t.name == spec.name)
          ordered.push_back(std::move(t));
    if (ordered.size() != layer->signature().params.size() || bound.size() != ordered.size())
      return rt::fail(MOE_INVALID_ARGUMENT, "the parameters given do not match layer " + name + "'s");
    bound = rt::shardParameters(*layer, ordered);
  }
  if (moe_status_t s = layer->bindParameters(std::move(bound)))
    return s;
  out = layer.get();
  loaded[signatureKey(specs)] = std::move(layer);
  return MOE_OK;
}

moe_status_t Function::operator()(const std::vector<rt::Tensor> &inputs, std::vector<rt::Tensor> &outputs) {
  std::vector<InputSpec> specs;
  for (const rt::Tensor &t : inputs)
    specs.push_back({t.name, t.dtype, t.shape});
  rt::Layer *layer = nullptr;
  auto it = loaded.find(signatureKey(specs));
  if (it != loaded.end()) {
    layer = it->second.get();
    ++counters.memoryHits;
  } else if (moe_status_t s = specialise(specs, layer)) {
    return s;
  }
  return layer->run(inputs, outputs);
}

} // namespace moe::jit
