// layer.cc - loading a compiled layer's shared object and calling its entry.
#include "moe/runtime/layer.h"

#include "moe/runtime/safetensors.h"
#include "moe/runtime/target.h"

#include "cuda/gpu_call.h"
#include "layer_abi.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <set>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

namespace moe::runtime {

std::vector<int64_t> descriptor(const void *data, const std::vector<int64_t> &shape) {
  std::vector<int64_t> d;
  d.push_back(reinterpret_cast<int64_t>(data));
  d.push_back(reinterpret_cast<int64_t>(data));
  d.push_back(0);
  for (int64_t s : shape)
    d.push_back(s);
  int64_t stride = 1;
  std::vector<int64_t> strides(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  d.insert(d.end(), strides.begin(), strides.end());
  return d;
}

moe_status_t checkShape(const TensorSpec &spec, moe_dtype_t dtype, const std::vector<int64_t> &shape, const char *what,
                        std::map<std::string, int64_t> *symbols) {
  if (dtype != spec.dtype)
    return fail(MOE_INVALID_ARGUMENT, std::string(what) + " \"" + spec.name + "\" is " + moe_dtype_name(dtype) +
                                          "; the layer needs " + moe_dtype_name(spec.dtype));
  if (shape.size() != spec.shape.size())
    return fail(MOE_INVALID_ARGUMENT, std::string(what) + " \"" + spec.name + "\" has shape " + shapeString(shape) +
                                          "; the layer needs rank " + std::to_string(spec.shape.size()));
  for (size_t d = 0; d < spec.shape.size(); ++d) {
    const Dim &want = spec.shape[d];
    if (!want.isSymbolic()) {
      if (shape[d] != want.size)
        return fail(MOE_INVALID_ARGUMENT, std::string(what) + " \"" + spec.name + "\" has shape " + shapeString(shape) +
                                              "; dimension " + std::to_string(d + 1) + " must be " +
                                              std::to_string(want.size));
      continue;
    }
    if (!symbols)
      continue;
    auto [it, inserted] = symbols->emplace(want.symbol, shape[d]);
    if (!inserted && it->second != shape[d])
      return fail(MOE_INVALID_ARGUMENT, std::string(what) + " \"" + spec.name + "\" has " + want.symbol + " = " +
                                            std::to_string(shape[d]) + ", but another input set it to " +
                                            std::to_string(it->second));
  }
  return MOE_OK;
}

namespace {

moe_status_t checkTensor(const TensorSpec &spec, const Tensor &t, const char *what,
                         std::map<std::string, int64_t> *symbols) {
  if (moe_status_t s = checkShape(spec, t.dtype, t.shape, what, symbols))
    return s;
  if (t.data.size() != static_cast<size_t>(t.numElements()) * moe_dtype_size(t.dtype))
    return fail(MOE_INVALID_ARGUMENT, std::string(what) + " \"" + spec.name + "\" holds " +
                                          std::to_string(t.data.size()) + " bytes for shape " + shapeString(t.shape));
  return MOE_OK;
}

} // namespace

Layer::~Layer() {
  if (gpu)
    gpu->makeCurrent(); // the code's destructor unloads its GPU module
  if (library)
    dlclose(library);
  if (libraryFd >= 0)
    close(libraryFd);
}

namespace {
uint64_t fnv1a(uint64_t h, const void *data, size_t size) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  for (size_t i = 0; i < size; ++i)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
uint64_t hashArtifact(const Artifact &a) {
  std::string sig = signatureToJson(a.signature);
  uint64_t h = fnv1a(0xcbf29ce484222325ull, sig.data(), sig.size());
  for (const auto &[name, bytes] : a.sections) {
    h = fnv1a(h, name.data(), name.size());
    h = fnv1a(h, bytes.data(), bytes.size());
  }
  return h;
}
} // namespace

moe_status_t Layer::attach(Communicator *communicator) {
  const Mesh &mesh = signature().mesh;
  if (communicator && communicator->world() != mesh.world())
    return fail(MOE_INVALID_ARGUMENT, "the artifact was compiled for mesh " + mesh.toString() + " (" +
                                          std::to_string(mesh.world()) + (mesh.world() == 1 ? " rank" : " ranks") +
                                          "), launched with " + std::to_string(communicator->world()) +
                                          (communicator->world() == 1 ? " rank" : " ranks") +
                                          "; compile with moec build --mesh to match the launch");
  if (communicator && gpu && std::string(communicator->engine()) != "nccl")
    return fail(MOE_INVALID_ARGUMENT, std::string("a sharded cuda layer exchanges device memory through NCCL, not a ") +
                                          communicator->engine() + " communicator");
  comm = communicator;
  params.clear();
  return MOE_OK;
}

ParamShard Layer::paramShardOf(const TensorSpec &spec) const {
  return paramShard(signature().mesh, rank(), spec.placement, spec.sizes());
}

moe_status_t Layer::loadFile(const std::string &path, std::unique_ptr<Layer> &out) {
  Artifact artifact;
  if (moe_status_t s = readArtifact(path, artifact))
    return s;
  return load(std::move(artifact), out);
}

moe_status_t Layer::load(Artifact artifact, std::unique_ptr<Layer> &out) {
  std::optional<Target> target = parseTarget(artifact.signature.target);
  std::unique_ptr<CudaDevice> gpu;
  if (!target && artifact.signature.target.rfind("cuda-", 0) == 0)
    return fail(MOE_INVALID_FORMAT,
                "artifact target \"" + artifact.signature.target + "\" names no CUDA architecture (sm_80 or later)");
  if (!target)
    return fail(MOE_UNAVAILABLE, "artifact for target \"" + artifact.signature.target +
                                     "\": this runtime executes cpu-x86_64 and cuda-sm_* artifacts");
  if (target->isCuda())
    if (moe_status_t s = openGpuFor(*target, gpu))
      return s;
  const char *sectionName = gpu ? "code.host.so" : "code.cpu.so";
  const std::vector<uint8_t> *code = artifact.section(sectionName);
  if (!code || code->size() < 4 ||
      std::memcmp(code->data(),
                  "\x7f"
                  "ELF",
                  4) != 0)
    return fail(MOE_INVALID_FORMAT, std::string("artifact has no host code (an ELF section \"") + sectionName + "\")");
  // Load the shared object from memory: a memfd, opened through /proc.
  int fd = memfd_create("moe-layer", MFD_CLOEXEC);
  if (fd < 0)
    return fail(MOE_INTERNAL, std::string("memfd_create: ") + std::strerror(errno));
  size_t written = 0;
  while (written < code->size()) {
    ssize_t n = write(fd, code->data() + written, code->size() - written);
    if (n <= 0) {
      close(fd);
      return fail(MOE_INTERNAL, "cannot stage the layer's code");
    }
    written += static_cast<size_t>(n);
  }
  // The descriptor stays open while the library is loaded: dlopen recognises
  // an already loaded object by its path, so two live layers must never share
  // a /proc/self/fd/N name.
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  // A GPU layer's constructors load its PTX through the runtime ABI.
  GpuCall loading;
  loading.device = gpu.get();
  loading.fallbackPtx = artifact.section("code.ptx");
  void *library = nullptr;
  {
    GpuCallScope scope(loading);
    library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  if (!library) {
    close(fd);
    return fail(MOE_INVALID_FORMAT, std::string("cannot load the layer's code: ") + dlerror());
  }
  if (loading.errorStatus != MOE_OK) {
    dlclose(library);
    close(fd);
    return fail(loading.errorStatus, loading.error);
  }
  auto entry = reinterpret_cast<void (*)(void **)>(dlsym(library, artifact.signature.entry.c_str()));
  if (!entry) {
    dlclose(library);
    close(fd);
    return fail(MOE_NOT_FOUND, "the layer's code has no entry point \"" + artifact.signature.entry + "\"");
  }
  void (*backwardEntry)(void **) = nullptr;
  if (artifact.signature.backward) {
    backwardEntry = reinterpret_cast<void (*)(void **)>(dlsym(library, artifact.signature.backward->entry.c_str()));
    if (!backwardEntry) {
      dlclose(library);
      close(fd);
      return fail(MOE_NOT_FOUND,
                  "the layer's code has no backward entry point \"" + artifact.signature.backward->entry + "\"");
    }
  }
  void (*trainEntry)(void **) = nullptr;
  if (artifact.signature.backward && !artifact.signature.backward->trainEntry.empty()) {
    const std::string &name = artifact.signature.backward->trainEntry;
    trainEntry = reinterpret_cast<void (*)(void **)>(dlsym(library, name.c_str()));
    if (!trainEntry) {
      dlclose(library);
      close(fd);
      return fail(MOE_NOT_FOUND, "the layer's code has no train forward entry point \"" + name + "\"");
    }
  }
  out.reset(new Layer());
  out->backwardEntry = backwardEntry;
  out->trainEntry = trainEntry;
  out->hash = hashArtifact(artifact);
  out->gpu = std::move(gpu);
  out->artifact = std::move(artifact);
  out->library = library;
  out->libraryFd = fd;
  out->entry = entry;
  return MOE_OK;
}

void Layer::convertWeightTypes(std::vector<Tensor> &weights, FILE *notes) const {
  for (Tensor &t : weights)
    for (const TensorSpec &spec : signature().params)
      if (spec.name == t.name && spec.dtype != t.dtype && isFloatDType(spec.dtype) && isFloatDType(t.dtype)) {
        if (notes)
          std::fprintf(notes, "note: weight \"%s\" converted from %s to %s, as the layer declares it\n", t.name.c_str(),
                       moe_dtype_name(t.dtype), moe_dtype_name(spec.dtype));
        t = convertFloat(t, spec.dtype);
      }
}

moe_status_t Layer::bindParameters(std::vector<Tensor> given) {
  kept.reset(); // residuals of other parameters
  std::vector<Tensor> bound;
  std::set<std::string> used;
  for (const TensorSpec &spec : signature().params) {
    Tensor *match = nullptr;
    for (Tensor &t : given)
      if (t.name == spec.name)
        match = &t;
    if (!match)
      return fail(MOE_NOT_FOUND,
                  "parameter \"" + spec.name + "\" " + shapeString(spec.sizes()) + " is missing from the weights");
    // On a mesh, the rank's shard (mesh.h) rather than the global tensor.
    TensorSpec local = spec;
    if (signature().mesh.isPlaced()) {
      local.shape.clear();
      for (int64_t size : paramShardOf(spec).localShape)
        local.shape.push_back({size, ""});
    }
    if (moe_status_t s = checkTensor(local, *match, "parameter", nullptr))
      return s;
    used.insert(spec.name);
    bound.push_back(std::move(*match));
  }
  for (const Tensor &t : given)
    if (!used.count(t.name) && !t.name.empty()) {
      std::string names;
      for (const TensorSpec &spec : signature().params)
        names += (names.empty() ? "" : ", ") + spec.name;
      return fail(MOE_INVALID_ARGUMENT, "the weights hold \"" + t.name + "\", which layer " + signature().layer +
                                            " has no parameter of (its parameters: " + names + ")");
    }
  params = std::move(bound);
  deviceParams.clear(); // uploaded again on the next GPU call
  hostParametersBehind = false;
  return MOE_OK;
}

moe_status_t Layer::orderArguments(const std::vector<Tensor> &inputs, std::vector<const Tensor *> &ordered,
                                   std::map<std::string, int64_t> &symbols) {
  const Signature &sig = signature();
  if (params.size() != sig.params.size())
    return fail(MOE_INVALID_ARGUMENT, "bind the layer's parameters before running it");
  for (const TensorSpec &spec : sig.inputs) {
    const Tensor *match = nullptr;
    for (const Tensor &t : inputs)
      if (t.name == spec.name)
        match = &t;
    if (!match)
      return fail(MOE_NOT_FOUND, "input \"" + spec.name + "\" is missing");
    if (moe_status_t s = checkTensor(spec, *match, "input", &symbols))
      return s;
    ordered.push_back(match);
  }
  for (const Tensor &t : inputs) {
    bool known = false;
    for (const TensorSpec &spec : sig.inputs)
      known = known || spec.name == t.name;
    if (!known)
      return fail(
          MOE_INVALID_ARGUMENT, "the inputs hold \"" + t.name + "\", which layer " + sig.layer +
                                    " has no input of (it takes: " +
                                    [&] {
                                      std::string names;
                                      for (const TensorSpec &spec : sig.inputs)
                                        names += (names.empty() ? "" : ", ") + spec.name;
                                      return names;
                                    }() +
                                    ")");
  }
  for (const Tensor &p : params)
    ordered.push_back(&p);
  return MOE_OK;
}

std::vector<int64_t> resultSlots(const std::vector<TensorSpec> &specs) {
  size_t resultWords = 0;
  for (const TensorSpec &o : specs)
    resultWords += 3 + 2 * o.shape.size();
  return std::vector<int64_t>(resultWords, 0);
}

std::vector<TensorSpec> trainForwardResults(const Signature &sig) {
  std::vector<TensorSpec> specs = sig.outputs;
  if (sig.backward)
    specs.insert(specs.end(), sig.backward->residuals.begin(), sig.backward->residuals.end());
  return specs;
}

void appendResultDescriptors(const std::vector<TensorSpec> &specs, const std::vector<int64_t> &results, size_t first,
                             std::vector<std::vector<int64_t>> &descriptors) {
  size_t at = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    size_t words = 3 + 2 * specs[i].shape.size();
    if (i >= first)
      descriptors.emplace_back(results.begin() + at, results.begin() + at + words);
    at += words;
  }
}

moe_status_t resultShapes(const std::vector<TensorSpec> &specs, const std::vector<int64_t> &results,
                          std::map<std::string, int64_t> &symbols, std::vector<Tensor> &outputs,
                          std::vector<uint64_t> &data) {
  outputs.clear();
  data.clear();
  size_t at = 0;
  moe_status_t status = MOE_OK;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec &spec = specs[i];
    size_t rank = spec.shape.size();
    const int64_t *d = results.data() + at;
    at += 3 + 2 * rank;
    Tensor out;
    out.name = spec.name;
    out.dtype = spec.dtype;
    out.shape.assign(d + 3, d + 3 + rank);
    for (size_t k = 0; k < rank; ++k)
      if (!spec.shape[k].isSymbolic()
              ? out.shape[k] != spec.shape[k].size
              : symbols.count(spec.shape[k].symbol) && out.shape[k] != symbols[spec.shape[k].symbol])
        status = fail(MOE_INTERNAL, "output \"" + out.name + "\" came back with shape " + shapeString(out.shape) +
                                        ", not the signature's");
    data.push_back(static_cast<uint64_t>(d[1]) + static_cast<uint64_t>(d[2]) * moe_dtype_size(out.dtype));
    outputs.push_back(std::move(out));
  }
  return status;
}

moe_status_t Layer::run(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs) {
  const Signature &sig = signature();
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = orderArguments(inputs, ordered, symbols))
    return s;
  if (gpu)
    return runOnGpu(entry, sig.outputs, ordered, symbols, outputs);
  return callOnCpu(entry, sig.outputs, ordered, symbols, outputs);
}

namespace {

bool sameTensors(const std::vector<Tensor> &a, const std::vector<Tensor> &b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].dtype != b[i].dtype || a[i].shape != b[i].shape || a[i].data != b[i].data)
      return false;
  return true;
}

} // namespace

moe_status_t Layer::forwardForBackward(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs) {
  kept.reset();
  if (!trainEntry)
    return run(inputs, outputs);
  const Signature &sig = signature();
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = orderArguments(inputs, ordered, symbols))
    return s;
  auto residuals = std::make_unique<KeptResiduals>();
  if (gpu) {
    // The residuals stay in device memory, moved out of the call's arena.
    if (moe_status_t s =
            runOnGpu(trainEntry, trainForwardResults(sig), ordered, symbols, outputs, false, nullptr, residuals.get()))
      return s;
    residuals->inputs = inputs;
    kept = std::move(residuals);
    return MOE_OK;
  }
  if (moe_status_t s = trainForwardOnCpu(ordered, symbols, outputs, residuals->residuals))
    return s;
  residuals->inputs = inputs;
  kept = std::move(residuals);
  return MOE_OK;
}

moe_status_t Layer::trainForwardOnCpu(const std::vector<const Tensor *> &ordered,
                                      std::map<std::string, int64_t> &symbols, std::vector<Tensor> &outputs,
                                      std::vector<Tensor> &residuals) {
  const Signature &sig = signature();
  std::vector<const Tensor *> arguments(ordered.begin(), ordered.begin() + sig.inputs.size() + sig.params.size());
  if (moe_status_t s = callOnCpu(trainEntry, trainForwardResults(sig), arguments, symbols, outputs))
    return s;
  residuals.assign(std::make_move_iterator(outputs.begin() + sig.outputs.size()),
                   std::make_move_iterator(outputs.end()));
  outputs.resize(sig.outputs.size());
  return MOE_OK;
}

moe_status_t Layer::backward(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                             std::vector<Tensor> &gradients) {
  // Residuals kept for these inputs, used once.
  std::unique_ptr<KeptResiduals> residuals = std::move(kept);
  if (residuals && !sameTensors(residuals->inputs, inputs))
    residuals.reset();
  const Signature &sig = signature();
  if (!sig.backward || !backwardEntry)
    return fail(MOE_INVALID_ARGUMENT,
                "the artifact of layer " + sig.layer + " has no backward: build it with moec build --train");
  std::map<std::string, int64_t> symbols;
  std::vector<const Tensor *> ordered;
  if (moe_status_t s = orderArguments(inputs, ordered, symbols))
    return s;
  // A cotangent per output, named and shaped as the output.
  for (const TensorSpec &spec : sig.outputs) {
    const Tensor *match = nullptr;
    for (const Tensor &t : cotangents)
      if (t.name == spec.name)
        match = &t;
    if (!match)
      return fail(MOE_NOT_FOUND, "the cotangent of output \"" + spec.name +
                                     "\" is missing (one tensor per output, "
                                     "named as the output)");
    if (moe_status_t s = checkTensor(spec, *match, "cotangent", &symbols))
      return s;
    ordered.push_back(match);
  }
  if (cotangents.size() != sig.outputs.size())
    return fail(MOE_INVALID_ARGUMENT, "expected " + std::to_string(sig.outputs.size()) +
                                          " cotangents (one per "
                                          "output), got " +
                                          std::to_string(cotangents.size()));
  // On a mesh a parameter's gradient is the rank's shard, as the parameter.
  std::vector<TensorSpec> results = sig.backward->gradients;
  if (sig.mesh.isPlaced())
    for (TensorSpec &spec : results) {
      if ((!spec.shape.empty() && spec.shape[0].isSymbolic()) || spec.name.rfind("grad.", 0) != 0)
        continue; // an input's gradient (the rank's rows), or a balance load (global)
      std::vector<Dim> local;
      for (int64_t d : paramShardOf(spec).localShape)
        local.push_back({d, ""});
      spec.shape = std::move(local);
    }
  if (gpu)
    return runOnGpu(backwardEntry, results, ordered, symbols, gradients,
                    /*residualsFirst=*/trainEntry != nullptr && !residuals, residuals.get());
  // The residuals: the train forward's results after the outputs, on the
  // same inputs and parameters (kept, or formed now).
  std::vector<Tensor> trainedOutputs, trained;
  if (!residuals && trainEntry)
    if (moe_status_t s = trainForwardOnCpu(ordered, symbols, trainedOutputs, trained))
      return s;
  for (const Tensor &r : residuals ? residuals->residuals : trained)
    ordered.push_back(&r);
  return callOnCpu(backwardEntry, results, ordered, symbols, gradients);
}

moe_status_t Layer::callOnCpu(void (*fn)(void **), const std::vector<TensorSpec> &resultSpecs,
                              const std::vector<const Tensor *> &ordered, std::map<std::string, int64_t> &symbols,
                              std::vector<Tensor> &outputs) {
  const Signature &sig = signature();
  // The C interface: result descriptors first, then one descriptor per argument.
  std::vector<int64_t> results = resultSlots(resultSpecs);
  std::vector<std::vector<int64_t>> descriptors;
  std::vector<void *> args{results.data()};
  for (const Tensor *t : ordered)
    descriptors.push_back(descriptor(t->data.data(), t->shape));
  for (auto &d : descriptors)
    args.push_back(d.data());
  std::unique_ptr<Communicator> alone;
  if (!comm && sig.mesh.isPlaced())
    return fail(MOE_INVALID_ARGUMENT, "the artifact is placed on mesh " + sig.mesh.toString() +
                                          "; attach the rank's communicator first (moe-run does under mpirun)");
  if (!comm)
    alone = localCommunicator();
  moe_status_t collectives = MOE_OK;
  {
    CallCommunicator call(comm ? comm : alone.get(), sig.mesh);
    fn(args.data());
    collectives = CallCommunicator::status();
  }

  std::vector<uint64_t> data;
  moe_status_t status = resultShapes(resultSpecs, results, symbols, outputs, data);
  for (size_t i = 0; i < outputs.size(); ++i) {
    size_t bytes = static_cast<size_t>(outputs[i].numElements()) * moe_dtype_size(outputs[i].dtype);
    const uint8_t *src = reinterpret_cast<const uint8_t *>(data[i]);
    outputs[i].data.assign(src, src + bytes);
  }
  // The code returns buffers it allocated (malloc); free each one once.
  std::set<int64_t> argumentData, freed;
  for (const Tensor *t : ordered)
    argumentData.insert(reinterpret_cast<int64_t>(t->data.data()));
  size_t at = 0;
  for (const TensorSpec &spec : resultSpecs) {
    int64_t allocated = results[at];
    at += 3 + 2 * spec.shape.size();
    if (allocated && !argumentData.count(allocated) && freed.insert(allocated).second)
      std::free(reinterpret_cast<void *>(allocated));
  }
  if (collectives != MOE_OK) {
    outputs.clear();
    return collectives; // the collective's message is the thread's last error
  }
  return status;
}

namespace {

/// splitmix64: the state a stream of random bits starts from for `seed`, and
/// the next 64 bits of the stream.
uint64_t splitmixState(uint64_t seed) { return seed * 0x9e3779b97f4a7c15ull + 1; }
uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Standard normal floats one at a time (splitmix64 + Box-Muller in double),
/// for random inputs.
class Normals {
public:
  explicit Normals(uint64_t seed) : state(splitmixState(seed)) {}
  float next() {
    if (haveSpare) {
      haveSpare = false;
      return spare;
    }
    double u1 = (static_cast<double>(bits() >> 11) + 1.0) * 0x1.0p-53; // (0, 1]
    double u2 = static_cast<double>(bits() >> 11) * 0x1.0p-53;
    double r = std::sqrt(-2.0 * std::log(u1)), t = 6.283185307179586 * u2;
    spare = static_cast<float>(r * std::sin(t));
    haveSpare = true;
    return static_cast<float>(r * std::cos(t));
  }

private:
  uint64_t bits() { return splitmix64(state); }
  uint64_t state;
  float spare = 0;
  bool haveSpare = false;
};

/// Standard normals for parameters, in bulk: Box-Muller in float, one 64-bit
/// draw per pair. Billions of them (DeepSeek-sized layers) must take seconds,
/// not the minute the one-at-a-time double version took.
void fillNormals(uint64_t seed, float *out, int64_t count) {
  uint64_t state = splitmixState(seed);
  for (int64_t i = 0; i < count; i += 2) {
    uint64_t z = splitmix64(state);
    float u1 = (static_cast<float>(z >> 40) + 1.0f) * 0x1.0p-24f;    // (0, 1]
    float u2 = static_cast<float>((z >> 8) & 0xffffff) * 0x1.0p-24f; // [0, 1)
    float r = std::sqrt(-2.0f * std::log(u1)), t = 6.28318530718f * u2;
    out[i] = r * std::cos(t);
    if (i + 1 < count)
      out[i + 1] = r * std::sin(t);
  }
}

} // namespace

/// Bytes this machine can still give (Linux's MemAvailable), or 0 if unknown.
static uint64_t availableHostBytes() {
  if (FILE *f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kib = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
        break;
    std::fclose(f);
    if (kib)
      return static_cast<uint64_t>(kib) * 1024;
  }
  long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

static std::string gibString(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1ull << 30));
  return text;
}

moe_status_t Layer::checkParametersFit() const {
  uint64_t total = 0, largest = 0;
  const TensorSpec *largestSpec = nullptr;
  for (const TensorSpec &spec : signature().params) {
    std::optional<uint64_t> size = spec.bytes();
    if (!size)
      return fail(MOE_OUT_OF_MEMORY, "parameter \"" + spec.name + "\" " + shapeString(spec.sizes()) +
                                         " is too large: its size in bytes overflows 64 bits");
    uint64_t bytes = *size;
    if (__builtin_add_overflow(total, bytes, &total))
      return fail(MOE_OUT_OF_MEMORY, "the layer's parameters are too large: their size overflows 64 bits");
    if (bytes >= largest) {
      largest = bytes;
      largestSpec = &spec;
    }
  }
  uint64_t available = availableHostBytes();
  if (largestSpec && available && total > available) {
    std::vector<int64_t> shape = largestSpec->sizes();
    return fail(MOE_OUT_OF_MEMORY, "the layer's parameters need " + gibString(static_cast<double>(total)) + " (" +
                                       std::to_string(static_cast<unsigned long long>(total)) +
                                       " bytes; the largest, \"" + largestSpec->name + "\" " + shapeString(shape) +
                                       " " + moe_dtype_name(largestSpec->dtype) + ", " +
                                       gibString(static_cast<double>(largest)) + "), more than the " +
                                       gibString(static_cast<double>(available)) + " this machine has available");
  }
  return MOE_OK;
}

std::vector<Tensor> Layer::randomParameters(uint64_t seed) const {
  std::vector<Tensor> out;
  uint64_t stream = 0;
  for (const TensorSpec &spec : signature().params) {
    ++stream;
    std::vector<int64_t> shape = spec.sizes();
    Tensor t = Tensor::zeros(spec.name, spec.dtype, shape);
    // Stacked expert weights [E, in, out] scale by their input width, others by dimension 1.
    double fanIn = shape.empty() ? 1.0 : static_cast<double>(shape.size() == 3 ? shape[1] : shape[0]);
    float scale = static_cast<float>(1.0 / std::sqrt(std::max(1.0, fanIn)));
    // Blocks of 2^20 values, each its own stream: the same values on every
    // machine and thread count, and billions of them in seconds.
    constexpr int64_t kBlock = 1 << 20, kChunk = 4096;
    int64_t n = t.numElements(), blocks = (n + kBlock - 1) / kBlock;
    const bool constant = spec.init == "zeros" || spec.init == "ones";
    std::atomic<int64_t> next{0};
    auto work = [&] {
      std::vector<float> chunk(kChunk);
      for (int64_t b; (b = next.fetch_add(1)) < blocks;) {
        uint64_t blockSeed = (seed * 1000003ull + stream) * 0x100000001b3ull + static_cast<uint64_t>(b);
        for (int64_t at = b * kBlock, end = std::min(n, (b + 1) * kBlock); at < end; at += kChunk) {
          int64_t count = std::min(kChunk, end - at);
          if (constant)
            std::fill(chunk.begin(), chunk.begin() + count, spec.init == "ones" ? 1.0f : 0.0f);
          else
            fillNormals(blockSeed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(at), chunk.data(), count);
          storeFloats(t, at, chunk.data(), count, constant ? 1.0f : scale);
        }
      }
    };
    unsigned threads = std::min<int64_t>(blocks, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i)
      pool.emplace_back(work);
    work();
    for (std::thread &th : pool)
      th.join();
    out.push_back(std::move(t));
  }
  return out;
}

moe_status_t Layer::randomInputs(uint64_t seed, const std::map<std::string, int64_t> &symbols,
                                 std::vector<Tensor> &out) const {
  Normals normal(seed ^ 0x5bd1e995u);
  out.clear();
  for (const TensorSpec &spec : signature().inputs) {
    std::vector<int64_t> shape;
    for (const Dim &d : spec.shape) {
      if (!d.isSymbolic()) {
        shape.push_back(d.size);
        continue;
      }
      auto it = symbols.find(d.symbol);
      if (it == symbols.end())
        return fail(MOE_INVALID_ARGUMENT, "input \"" + spec.name + "\" needs a size for '" + d.symbol + "'");
      shape.push_back(it->second);
    }
    double bytes = static_cast<double>(moe_dtype_size(spec.dtype));
    for (int64_t d : shape)
      bytes *= static_cast<double>(d);
    if (bytes > 64.0 * (1ull << 30))
      return fail(MOE_OUT_OF_MEMORY, "input \"" + spec.name + "\" " + shapeString(shape) + " would need " +
                                         std::to_string(static_cast<long long>(bytes / (1 << 30))) +
                                         " GiB; use fewer tokens");
    Tensor t = Tensor::zeros(spec.name, spec.dtype, shape);
    for (int64_t i = 0; i < t.numElements(); ++i) {
      float v = normal.next();
      storeFloats(t, i, &v, 1);
    }
    out.push_back(std::move(t));
  }
  return MOE_OK;
}

std::vector<Tensor> Layer::randomCotangents(uint64_t seed, const std::vector<Tensor> &outputs) const {
  Normals normal(seed ^ 0x27d4eb2fu);
  std::vector<Tensor> out;
  for (const Tensor &o : outputs) {
    Tensor t = Tensor::zeros(o.name, o.dtype, o.shape);
    for (int64_t i = 0; i < t.numElements(); ++i) {
      float v = normal.next();
      storeFloats(t, i, &v, 1);
    }
    out.push_back(std::move(t));
  }
  return out;
}

} // namespace moe::runtime
