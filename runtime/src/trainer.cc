// trainer.cc - a training step, the training loop of moe-run --train, and
// teacher data for it.
#include "moe/runtime/trainer.h"

#include "gpu_train_step.h"

#include "moe/runtime/kernel_abi.h"
#include "moe/runtime/plot.h"
#include "moe/runtime/safetensors.h"
#include "moe/runtime/shard_io.h"

#include <algorithm>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace moe::runtime {

namespace {
/// Where a step's time goes, on stderr, when MOE_TRAIN_PROFILE is set.
struct StepProfile {
  using Clock = std::chrono::steady_clock;
  bool on = std::getenv("MOE_TRAIN_PROFILE") != nullptr;
  Clock::time_point last = Clock::now();
  std::string line;
  void mark(const char *phase) {
    if (!on)
      return;
    Clock::time_point now = Clock::now();
    line += " " + std::string(phase) + " " +
            std::to_string(std::chrono::duration<double, std::milli>(now - last).count()) + " ms";
    last = now;
  }
  ~StepProfile() {
    if (on)
      std::fprintf(stderr, "profile:%s\n", line.c_str());
  }
};
} // namespace

Trainer::Trainer(Layer &layer, AdamWOptions options, double balanceRate, Communicator *comm)
    : layer_(layer), optimizer_(options), balanceRate_(balanceRate), comm_(comm) {}

Trainer::~Trainer() = default;

bool Trainer::onDevice() const {
  // MOE_TRAIN_STEP=host: a GPU layer's step the host's way (outputs and
  // gradients downloaded, AdamW on the host), to check the device's against.
  const char *where = std::getenv("MOE_TRAIN_STEP");
  return (!comm_ || comm_->world() == 1) && GpuTrainStep::available(layer_) && !(where && std::string(where) == "host");
}

moe_status_t Trainer::prepareDeviceStep() {
  if (moe_status_t s = checkAdamWOptions(optimizer_.options()))
    return s;
  if (!gpuStep_)
    if (moe_status_t s = GpuTrainStep::create(layer_, gpuStep_))
      return s;
  optimizer_.countStep();
  return MOE_OK;
}

bool Trainer::holdData(const Tensor &x, const Tensor &target) {
  if (!onDevice())
    return false;
  if (!gpuStep_ && GpuTrainStep::create(layer_, gpuStep_) != MOE_OK)
    return false;
  heldData_ = gpuStep_->holdData(x, target) == MOE_OK;
  return heldData_;
}

moe_status_t Trainer::stepBatch(int64_t batch, double &loss) {
  if (!heldData_)
    return fail(MOE_INVALID_ARGUMENT, "stepBatch needs the training data on the device (holdData)");
  StepProfile profile;
  if (moe_status_t s = prepareDeviceStep())
    return s;
  moe_status_t s =
      gpuStep_->stepBatch(batch, optimizer_.options(), optimizer_.steps(), balanceRate_, optimizer_.state(), loss);
  profile.mark("device step");
  return s;
}

moe_status_t Trainer::step(const std::vector<Tensor> &inputs, const Tensor &target, double &loss) {
  const Signature &sig = layer_.signature();
  const int64_t world = comm_ ? comm_->world() : 1;
  StepProfile profile;
  if (onDevice()) {
    if (moe_status_t s = prepareDeviceStep())
      return s;
    // A restored checkpoint's moments (the host optimizer's state) seed the
    // device's on their first step.
    moe_status_t s = gpuStep_->step(inputs, target, optimizer_.options(), optimizer_.steps(), balanceRate_,
                                    optimizer_.state(), loss);
    profile.mark("device step");
    return s;
  }
  std::vector<Tensor> outputs;
  // The backward below takes this forward's residuals.
  if (moe_status_t s = layer_.forwardForBackward(inputs, outputs))
    return s;
  profile.mark("forward");
  const Tensor &y = outputs[0];
  if (target.shape != y.shape)
    return fail(MOE_INVALID_ARGUMENT, "the target has shape " + shapeString(target.shape) + ", the layer's " +
                                          outputs[0].name + " " + shapeString(y.shape));
  // The loss and its cotangents: the mean over the global batch (every
  // rank's rows), the squares summed in double, the ranks' sums in rank order.
  // The cotangent is formed as the GPU step's kernel forms it (train_kernels.h):
  // (y - target) * (2 / elements) in f32.
  const int64_t n = y.numElements();
  std::vector<float> yValues(static_cast<size_t>(n)), targetValues(static_cast<size_t>(n));
  loadFloats(y, 0, n, yValues.data());
  loadFloats(target, 0, n, targetValues.data());
  std::vector<float> diff(static_cast<size_t>(n));
  double squares = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff[i] = yValues[i] - targetValues[i];
    squares += static_cast<double>(diff[i]) * static_cast<double>(diff[i]);
  }
  double count = static_cast<double>(n);
  if (world > 1) {
    std::vector<double> mine{squares, count}, all(2 * static_cast<size_t>(world));
    if (moe_status_t s = comm_->allGather(everyRank(), mine.data(), all.data(), sizeof(double) * 2, "loss"))
      return s;
    squares = count = 0;
    for (int64_t r = 0; r < world; ++r)
      squares += all[2 * r], count += all[2 * r + 1];
  }
  loss = count > 0 ? squares / count : 0.0;
  std::vector<Tensor> cotangents;
  Tensor dy = Tensor::zeros(y.name, y.dtype, y.shape);
  std::vector<float> dyValues(static_cast<size_t>(n));
  const float scale = count > 0 ? static_cast<float>(2.0 / count) : 0.0f;
  for (int64_t i = 0; i < n; ++i)
    dyValues[i] = diff[i] * scale;
  storeFloats(dy, 0, dyValues.data(), n);
  cotangents.push_back(std::move(dy));
  for (size_t o = 1; o < outputs.size(); ++o) {
    Tensor c = Tensor::zeros(outputs[o].name, outputs[o].dtype, outputs[o].shape);
    if (outputs[o].shape.empty()) { // a scalar output is an auxiliary loss: part of the loss
      loss += outputs[o].at(0);
      float one = 1.0f;
      storeFloats(c, 0, &one, 1);
    }
    cotangents.push_back(std::move(c));
  }
  // One backward over the batch forms every sum over the tokens per 128-token
  // block in f32, the partials added in block order (the spec's order), on
  // one device and on a placed layer's mesh alike (whose backward sums the
  // gathered rows, and the experts' rows in global token order). Data
  // parallelism over whole layers sums the ranks' blocks here instead.
  std::vector<Tensor> gradients;
  const bool dataParallel = !layer_.isSharded() && comm_ && comm_->world() > 1;
  if (dataParallel && !sig.rowIndependent)
    return fail(MOE_INVALID_ARGUMENT, "layer " + sig.layer + " couples its tokens: it trains on one process");
  profile.mark("loss");
  if (moe_status_t s = dataParallel ? blockedGradients(inputs, cotangents, gradients)
                                    : layer_.backward(inputs, cotangents, gradients))
    return s;
  profile.mark("backward");
  moe_status_t applied = apply(std::move(gradients));
  profile.mark("update");
  return applied;
}

moe_status_t Trainer::globalParameters(std::vector<Tensor> &out) const {
  if (moe_status_t s = layer_.pullParameters())
    return s;
  if (!layer_.isSharded()) {
    out = layer_.parameters();
    return MOE_OK;
  }
  return gatherShards(*layer_.communicator(), layer_.signature().mesh, layer_.signature().params, layer_.parameters(),
                      out);
}

std::map<std::string, TensorExtent> shardExtents(const Layer &layer) {
  std::map<std::string, TensorExtent> out;
  const Signature &sig = layer.signature();
  for (const TensorSpec &spec : sig.params)
    out[spec.name] = meshExtent(sig.mesh, layer.rank(), spec.placement, spec.sizes());
  return out;
}

moe_status_t Trainer::state(int64_t step, TrainingState &out) const {
  out = TrainingState();
  out.step = step;
  out.optimizerSteps = optimizer_.steps();
  if (moe_status_t s = layer_.pullParameters())
    return s;
  out.params = layer_.parameters();
  out.optimizer = optimizer_.state();
  if (gpuStep_) { // the device's moments, over any restored ones not stepped since
    std::map<std::string, AdamW::State> onDevice;
    if (moe_status_t s = gpuStep_->state(onDevice))
      return s;
    for (auto &[name, st] : onDevice)
      out.optimizer[name] = std::move(st);
  }
  // A placed layer's rank keeps its shards: each rank saves its own.
  if (layer_.isSharded())
    out.extents = shardExtents(layer_);
  return MOE_OK;
}

moe_status_t Trainer::restore(const TrainingState &state) {
  std::vector<Tensor> params = state.params;
  layer_.convertWeightTypes(params, nullptr);
  std::map<std::string, AdamW::State> optimizer = state.optimizer;
  if (layer_.isSharded() && state.extents.empty()) {
    // Each rank keeps its shard of the global state (any mesh saved it).
    std::vector<Tensor> ordered; // the signature's order, as shardParameters takes them
    for (const TensorSpec &spec : layer_.signature().params) {
      const Tensor *match = nullptr;
      for (const Tensor &p : params)
        if (p.name == spec.name)
          match = &p;
      if (!match)
        return fail(MOE_NOT_FOUND, "the checkpoint holds no \"" + spec.name + "\"");
      if (match->shape != spec.sizes())
        return fail(MOE_INVALID_ARGUMENT, "the checkpoint's \"" + spec.name + "\" has shape " +
                                              shapeString(match->shape) + "; the layer needs " +
                                              shapeString(spec.sizes()));
      ordered.push_back(*match);
    }
    params = shardParameters(layer_, ordered);
    for (auto &[name, st] : optimizer)
      for (const TensorSpec &spec : layer_.signature().params)
        if (spec.name == name) {
          ParamShard shard = layer_.paramShardOf(spec);
          for (std::vector<float> *values : {&st.master, &st.m, &st.v}) {
            if (static_cast<int64_t>(values->size()) < shard.begin + shard.count)
              return fail(MOE_INVALID_ARGUMENT, "the checkpoint's optimizer state of \"" + name + "\" is too small");
            std::vector<float> mine(values->begin() + shard.begin, values->begin() + shard.begin + shard.count);
            mine.resize(static_cast<size_t>(shard.stored), 0.0f);
            *values = std::move(mine);
          }
        }
  }
  if (moe_status_t s = layer_.bindParameters(std::move(params)))
    return s;
  optimizer_.restore(std::move(optimizer), state.optimizerSteps);
  if (gpuStep_)
    gpuStep_->dropMoments(); // they start again from the restored ones
  return MOE_OK;
}

std::vector<int64_t> Trainer::everyRank() const {
  std::vector<int64_t> group;
  for (int64_t r = 0; r < (comm_ ? comm_->world() : 1); ++r)
    group.push_back(r);
  return group;
}

moe_status_t Trainer::blockedGradients(const std::vector<Tensor> &inputs, const std::vector<Tensor> &cotangents,
                                       std::vector<Tensor> &out) {
  const Signature &sig = layer_.signature();
  // The gradients summed over tokens (the parameters' and the balance loads),
  // in one f32 vector; the inputs' gradients are per token and not kept.
  std::vector<const TensorSpec *> summed;
  int64_t total = 0;
  for (const TensorSpec &g : sig.backward->gradients) {
    bool ofInput = false;
    for (const TensorSpec &in : sig.inputs)
      ofInput = ofInput || g.name == "grad." + in.name;
    if (ofInput)
      continue;
    summed.push_back(&g);
    int64_t elements = 1;
    for (const Dim &d : g.shape)
      elements *= d.size;
    total += elements;
  }
  // Each gradient block of the rank's rows on its own: its partial sums, as
  // the fused backward forms them for that block of a whole batch.
  const int64_t tokens = inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
  std::vector<std::vector<float>> partials;
  for (int64_t begin = 0; begin < tokens; begin += MOE_GRADIENT_BLOCK_TOKENS) {
    int64_t end = std::min<int64_t>(tokens, begin + MOE_GRADIENT_BLOCK_TOKENS);
    std::vector<Tensor> in, cot, grads;
    for (const Tensor &t : inputs)
      in.push_back(sliceRows(t, begin, end - begin));
    for (const Tensor &t : cotangents)
      cot.push_back(sliceRows(t, begin, end - begin));
    if (moe_status_t s = layer_.backward(in, cot, grads))
      return s;
    std::vector<float> flat;
    flat.reserve(static_cast<size_t>(total));
    for (const TensorSpec *spec : summed)
      for (const Tensor &g : grads)
        if (g.name == spec->name)
          for (int64_t i = 0; i < g.numElements(); ++i)
            flat.push_back(g.at(i));
    partials.push_back(std::move(flat));
  }
  // The global sum in block order: from zeros, rank 0's blocks, then rank
  // 1's (after rank 0's sum arrives), ...; the last rank's sum goes to all.
  std::vector<float> acc(static_cast<size_t>(total), 0.0f);
  const int64_t world = comm_ ? comm_->world() : 1, rank = comm_ ? comm_->rank() : 0;
  const int64_t bytes = total * static_cast<int64_t>(sizeof(float));
  if (rank > 0)
    if (moe_status_t s = comm_->exchange({}, {{rank - 1, acc.data(), bytes}}, "gradient blocks"))
      return s;
  for (const std::vector<float> &p : partials)
    for (int64_t i = 0; i < total; ++i)
      acc[i] += p[i];
  if (rank + 1 < world)
    if (moe_status_t s = comm_->exchange({{rank + 1, acc.data(), bytes}}, {}, "gradient blocks"))
      return s;
  if (world > 1) {
    std::vector<int64_t> sizes(static_cast<size_t>(world), 0);
    sizes.back() = bytes;
    std::vector<float> final(static_cast<size_t>(total));
    if (moe_status_t s = comm_->allGatherV(everyRank(), acc.data(), final.data(), sizes, "gradient sum"))
      return s;
    acc = std::move(final);
  }
  out.clear();
  int64_t at = 0;
  for (const TensorSpec *spec : summed) {
    Tensor g = Tensor::zeros(spec->name, MOE_F32, spec->sizes());
    storeFloats(g, 0, acc.data() + at, g.numElements());
    at += g.numElements();
    out.push_back(std::move(g));
  }
  return MOE_OK;
}

moe_status_t Trainer::apply(std::vector<Tensor> gradients) {
  const Signature &sig = layer_.signature();
  if (moe_status_t s = checkAdamWOptions(optimizer_.options()))
    return s;
  if (gpuStep_)
    return fail(MOE_INVALID_ARGUMENT, "this trainer's optimizer state is on the GPU (it has taken device steps): "
                                      "apply() would step from the host's");
  // AdamW on the trainable parameters, their gradients renamed after them.
  // Updated in place and bound again, also when a step is refused.
  std::vector<Tensor> params = layer_.takeParameters(), trainable, grads;
  auto rebind = [&](moe_status_t status) {
    moe_status_t bound = layer_.bindParameters(std::move(params));
    return status != MOE_OK ? status : bound;
  };
  std::vector<size_t> where;
  std::vector<bool> decays; // by the parameter's global rank (an FSDP chunk is 1-D)
  for (size_t i = 0; i < params.size(); ++i) {
    if (!sig.params[i].trainable)
      continue;
    for (Tensor &g : gradients)
      if (g.name == "grad." + params[i].name) {
        g.name = params[i].name;
        grads.push_back(std::move(g));
        trainable.push_back(std::move(params[i]));
        where.push_back(i);
        decays.push_back(takesWeightDecay(sig.params[i].shape.size()));
      }
  }
  moe_status_t stepped = optimizer_.step(trainable, grads, &decays);
  for (size_t j = 0; j < where.size(); ++j)
    params[where[j]] = std::move(trainable[j]);
  if (stepped != MOE_OK)
    return rebind(stepped);
  // DeepSeek-V3's aux-loss-free balancing: the bias follows the load.
  for (size_t i = 0; i < params.size(); ++i) {
    if (sig.params[i].update != "balance")
      continue;
    const Tensor *load = nullptr;
    for (const Tensor &g : gradients)
      if (g.name == "load." + params[i].name)
        load = &g;
    if (!load)
      return rebind(fail(MOE_INTERNAL, "the backward returned no load for \"" + params[i].name + "\""));
    // An FSDP chunk of the bias: the rule on the whole vector (its mean is
    // over every expert), of which the chunk keeps its range.
    ParamShard shard = layer_.paramShardOf(sig.params[i]);
    if (params[i].numElements() != load->numElements()) {
      Tensor whole = Tensor::zeros(params[i].name, params[i].dtype, {load->numElements()});
      std::memcpy(whole.data.data() + shard.begin * 4, params[i].data.data(), static_cast<size_t>(shard.count) * 4);
      if (moe_status_t s = updateBalanceBias(whole, *load, balanceRate_))
        return rebind(s);
      std::memcpy(params[i].data.data(), whole.data.data() + shard.begin * 4, static_cast<size_t>(shard.count) * 4);
      continue;
    }
    if (moe_status_t s = updateBalanceBias(params[i], *load, balanceRate_))
      return rebind(s);
  }
  return rebind(MOE_OK);
}

namespace {

/// Batch `index` of a [batches, ...] tensor, as a tensor named `name`.
Tensor batch(const Tensor &all, int64_t index, const std::string &name) {
  Tensor t = sliceRows(all, index, 1);
  t.name = name;
  t.shape.erase(t.shape.begin());
  return t;
}

const Tensor *find(const std::vector<Tensor> &tensors, const std::string &name) {
  for (const Tensor &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

double scheduledLr(const TrainOptions &o, int64_t step) {
  const double t = static_cast<double>(step - 1), warmup = static_cast<double>(o.warmupSteps);
  const double total = static_cast<double>(o.steps);
  if (t < warmup)
    return o.adamw.lr * t / std::max(1.0, warmup);
  if (o.lrSchedule == "constant" || total <= warmup)
    return o.adamw.lr;
  const double progress = (t - warmup) / std::max(1.0, total - warmup);
  if (o.lrSchedule == "linear")
    return o.adamw.lr * std::max(0.0, 1.0 - progress);
  return o.adamw.lr * 0.5 * (1.0 + std::cos(M_PI * progress)); // cosine
}

moe_status_t checkSchedule(const TrainOptions &o) {
  if (o.lrSchedule != "constant" && o.lrSchedule != "linear" && o.lrSchedule != "cosine")
    return fail(MOE_INVALID_ARGUMENT, "--lr-schedule is constant, linear or cosine, not \"" + o.lrSchedule + "\"");
  if (o.warmupSteps < 0 || o.warmupSteps >= std::max<int64_t>(o.steps, 1))
    return fail(MOE_INVALID_ARGUMENT, "--warmup-steps " + std::to_string(o.warmupSteps) +
                                          " must be fewer than the run's " + std::to_string(o.steps) + " steps");
  return MOE_OK;
}

int runTraining(Layer &layer, const TrainOptions &options, FILE *out, Communicator *comm) {
  const int64_t world = comm ? comm->world() : 1, rank = comm ? comm->rank() : 0;
  const std::string where = world > 1 ? " (rank " + std::to_string(rank) + ")" : "";
  auto error = [&] {
    std::fprintf(stderr, "moe-run: error%s: %s\n", where.c_str(), moe_last_error());
    return 1;
  };
  const Signature &sig = layer.signature();
  if (!layer.hasBackward()) {
    fail(MOE_INVALID_ARGUMENT, "--train needs a train artifact (moec build --train)");
    return error();
  }
  if (sig.inputs.size() != 1) {
    fail(MOE_INVALID_ARGUMENT,
         "--train feeds one input (x); layer " + sig.layer + " takes " + std::to_string(sig.inputs.size()));
    return error();
  }
  if (moe_status_t s = checkAdamWOptions(options.adamw); s != MOE_OK)
    return error();
  if (moe_status_t s = checkSchedule(options); s != MOE_OK)
    return error();
  std::vector<Tensor> data;
  if (readSafetensors(options.data, data) != MOE_OK)
    return error();
  const Tensor *x = find(data, "x"), *target = find(data, "target");
  if (!x || !target || x->shape.empty() || target->shape.empty() || x->shape[0] != target->shape[0] ||
      x->shape[0] == 0) {
    fail(MOE_INVALID_ARGUMENT, options.data + ": a training data file holds x [steps, tokens, ...] and target "
                                              "[steps, ...] (the first output's shape per step), with as many "
                                              "steps each");
    return error();
  }
  if (options.steps <= 0) {
    fail(MOE_INVALID_ARGUMENT, "--steps needs a positive number of steps");
    return error();
  }
  // Data parallel: each rank takes its share of every batch's rows (a placed
  // layer: its rows, as a mesh's inputs are split).
  const int64_t batchRows = x->shape.size() > 1 ? x->shape[1] : 0;
  if (world > 1 && !layer.isSharded()) {
    if (!sig.rowIndependent) {
      fail(MOE_INVALID_ARGUMENT, "layer " + sig.layer +
                                     " couples its tokens (a capacity, a loss or a reduction over "
                                     "them): data-parallel training needs its sharded backward; build it with moec "
                                     "build --train --mesh rep=" +
                                     std::to_string(world) + " (or another mesh of " + std::to_string(world) +
                                     " ranks)");
      return error();
    }
    if (x->shape.size() < 2 || target->shape.size() < 2 || batchRows % world != 0 || target->shape[1] != batchRows) {
      fail(MOE_INVALID_ARGUMENT, "data-parallel training splits each batch's " + std::to_string(batchRows) +
                                     " rows over " + std::to_string(world) + " ranks: they must divide");
      return error();
    }
    if ((batchRows / world) % MOE_GRADIENT_BLOCK_TOKENS != 0 && rank == 0)
      std::fprintf(stderr,
                   "moe-run: note: %lld rows a rank is not a multiple of %d: the weights are deterministic, but "
                   "equal to another mesh's only when every rank's rows are (spec, \"Sharding\")\n",
                   static_cast<long long>(batchRows / world), MOE_GRADIENT_BLOCK_TOKENS);
  }
  if (layer.isSharded() && (x->shape.size() < 2 || target->shape.size() < 2 || target->shape[1] != batchRows)) {
    fail(MOE_INVALID_ARGUMENT, options.data + ": x and target need as many rows per batch to split over the mesh");
    return error();
  }
  auto mine = [&](Tensor t) {
    if (world == 1)
      return t;
    RowSlice share = tokenSlice(t.shape[0], world, rank); // as mesh runs slice inputs
    return sliceRows(t, share.begin, share.count);
  };
  FILE *csv = nullptr;
  if (!options.lossCsv.empty() && rank == 0) {
    csv = std::fopen(options.lossCsv.c_str(), "w");
    if (!csv) {
      fail(MOE_NOT_FOUND, "cannot write " + options.lossCsv + ": " + std::strerror(errno));
      return error();
    }
    std::fprintf(csv, "step,loss,seconds\n");
  }
  Trainer trainer(layer, options.adamw, options.balanceRate, world > 1 ? comm : nullptr);
  int64_t firstStep = 1;
  const std::string resumeFrom = options.autoResume ? options.checkpointDir : options.resume;
  if (!resumeFrom.empty()) {
    TrainingState state;
    std::string from;
    // A placed layer's rank reads only its shards (from any mesh's chunks).
    const std::map<std::string, TensorExtent> extents =
        layer.isSharded() ? shardExtents(layer) : std::map<std::string, TensorExtent>();
    moe_status_t loaded = loadCheckpoint(resumeFrom, state, from, layer.isSharded() ? &extents : nullptr);
    bool fresh = options.autoResume && loaded == MOE_NOT_FOUND; // the first attempt of a restarted job
    if (fresh && rank == 0)
      std::fprintf(out, "no checkpoint in %s yet: starting at step 1\n", resumeFrom.c_str());
    if (!fresh && (loaded != MOE_OK || trainer.restore(state) != MOE_OK))
      return error();
    if (!fresh) {
      if (state.step >= options.steps) {
        fail(MOE_INVALID_ARGUMENT, from + " is at step " + std::to_string(state.step) + ": nothing to do for --steps " +
                                       std::to_string(options.steps));
        return error();
      }
      firstStep = state.step + 1;
      if (rank == 0)
        std::fprintf(out, "resumed from %s (step %lld)\n", from.c_str(), static_cast<long long>(state.step));
    }
  }
  const int64_t batches = x->shape[0];
  // One GPU: the whole data on the device when it fits (no batch copied or
  // uploaded a step); else a batch at a time from the host.
  const bool held = trainer.holdData(*x, *target);
  const int64_t tokensPerStep = x->shape.size() > 1 ? x->shape[1] : 1;
  bool terminal = isatty(fileno(stderr));
  double first = 0, last = 0;
  std::vector<double> curve;
  auto start = std::chrono::steady_clock::now();
  BackgroundCheckpoint background;
  double blockedSeconds = 0; // training time spent in saves (the snapshot, with --async)
  for (int64_t step = firstStep; step <= options.steps; ++step) {
    int64_t b = (step - 1) % batches;
    double loss = 0;
    AdamWOptions adamw = options.adamw;
    adamw.lr = scheduledLr(options, step);
    trainer.setOptions(adamw);
    if ((held ? trainer.stepBatch(b, loss)
              : trainer.step({mine(batch(*x, b, sig.inputs[0].name))}, mine(batch(*target, b, sig.outputs[0].name)),
                             loss)) != MOE_OK) {
      if (csv)
        std::fclose(csv);
      return error();
    }
    if (step == firstStep)
      first = loss;
    last = loss;
    curve.push_back(loss);
    double elapsed = since(start);
    if (csv)
      std::fprintf(csv, "%lld,%.9g,%.6f\n", static_cast<long long>(step), loss, elapsed);
    // Data-parallel replicas hold the same state: rank 0 writes it, once. A
    // placed layer's ranks each write their own shards, in parallel.
    const bool saving = options.checkpointEvery > 0 && step % options.checkpointEvery == 0;
    if (saving && (rank == 0 || layer.isSharded())) {
      Communicator *savers = layer.isSharded() ? comm : nullptr;
      const std::string mesh = layer.isSharded() ? sig.mesh.toString() : "";
      std::string writer = layer.isSharded() ? "moe-run --train, mesh " + mesh
                           : world > 1       ? "moe-run --train, data parallel over " + std::to_string(world) + " ranks"
                                             : "moe-run --train, one process";
      if (options.progress && terminal && rank == 0)
        std::fputc('\n', stderr);
      auto blockedFrom = std::chrono::steady_clock::now();
      TrainingState snapshot;
      moe_status_t saved = trainer.state(step, snapshot);
      if (saved == MOE_OK && options.asyncCheckpoint) {
        saved = background.start(options.checkpointDir, std::move(snapshot), writer, savers, mesh);
        if (saved == MOE_OK && !background.lastPath().empty() && rank == 0)
          std::fprintf(stderr, "saved %s (written in the background in %.1f ms)\n", background.lastPath().c_str(),
                       background.lastSeconds() * 1e3);
        blockedSeconds += since(blockedFrom);
      } else if (saved == MOE_OK) {
        std::string path;
        saved = saveCheckpoint(options.checkpointDir, snapshot, writer, path, savers, mesh);
        blockedSeconds += since(blockedFrom);
        if (saved == MOE_OK && rank == 0)
          std::fprintf(stderr, "saved %s\n", path.c_str());
      }
      if (saved != MOE_OK) {
        if (csv)
          std::fclose(csv);
        return error();
      }
    }
    if (options.progress && rank == 0) {
      int filled = static_cast<int>(30 * step / options.steps);
      std::fprintf(stderr, "%sstep %lld/%lld [%-30s] loss %.6g, %.0f tokens/s%s", terminal ? "\r" : "",
                   static_cast<long long>(step), static_cast<long long>(options.steps),
                   std::string(static_cast<size_t>(filled), '#').c_str(), loss,
                   static_cast<double>((step - firstStep + 1) * tokensPerStep) / elapsed, terminal ? "" : "\n");
      std::fflush(stderr);
    }
  }
  if (options.progress && terminal && rank == 0)
    std::fputc('\n', stderr);
  if (csv)
    std::fclose(csv);
  if (background.finish() != MOE_OK)
    return error();
  double seconds = since(start);
  std::vector<Tensor> weights;
  if (!options.saveWeights.empty() && (rank == 0 || layer.isSharded()) && trainer.globalParameters(weights) != MOE_OK)
    return error();
  if (rank != 0)
    return 0;
  if (!background.lastPath().empty())
    std::fprintf(stderr, "saved %s (written in the background in %.1f ms)\n", background.lastPath().c_str(),
                 background.lastSeconds() * 1e3);
  if (options.checkpointEvery > 0)
    std::fprintf(out, "checkpoints blocked training for %.1f ms in all%s\n", blockedSeconds * 1e3,
                 options.asyncCheckpoint ? " (snapshots; written in the background)" : "");
  std::string steps = firstStep == 1 ? std::to_string(options.steps) + " steps"
                                     : "steps " + std::to_string(firstStep) + "-" + std::to_string(options.steps);
  std::string ranks = world > 1 ? ", " + std::to_string(world) + " ranks" : "";
  std::fprintf(out, "%s trained %s in %.2f s (%.0f tokens/s%s): loss %.6g -> %.6g (%.1fx lower)\n", sig.layer.c_str(),
               steps.c_str(), seconds, static_cast<double>((options.steps - firstStep + 1) * tokensPerStep) / seconds,
               ranks.c_str(), first, last, last > 0 ? first / last : 0.0);
  if (!options.plot.empty()) {
    if (writeLossPlot(options.plot, curve) != MOE_OK)
      return error();
    std::fprintf(out, "wrote the loss curve to %s\n", options.plot.c_str());
  }
  if (!options.saveWeights.empty()) {
    if (writeSafetensors(options.saveWeights, weights) != MOE_OK)
      return error();
    std::fprintf(out, "wrote the weights to %s\n", options.saveWeights.c_str());
  }
  return 0;
}

moe_status_t makeTeacherData(Layer &teacher, int64_t steps, int64_t tokens, uint64_t seed, const std::string &path) {
  const Signature &sig = teacher.signature();
  if (sig.inputs.size() != 1 || steps <= 0 || tokens <= 0)
    return fail(MOE_INVALID_ARGUMENT, "--make-data needs a layer of one input, --steps > 0 and --tokens > 0");
  Tensor x, target;
  for (int64_t s = 0; s < steps; ++s) {
    std::map<std::string, int64_t> symbols;
    for (const Dim &d : sig.inputs[0].shape)
      if (d.isSymbolic())
        symbols[d.symbol] = tokens;
    std::vector<Tensor> inputs, outputs;
    if (moe_status_t st = teacher.randomInputs(seed + static_cast<uint64_t>(s), symbols, inputs))
      return st;
    if (moe_status_t st = teacher.run(inputs, outputs))
      return st;
    for (auto [all, one, name] : {std::tuple{&x, &inputs[0], "x"}, std::tuple{&target, &outputs[0], "target"}}) {
      if (s == 0) {
        all->name = name;
        all->dtype = one->dtype;
        all->shape = one->shape;
        all->shape.insert(all->shape.begin(), steps);
      }
      all->data.insert(all->data.end(), one->data.begin(), one->data.end());
    }
  }
  return writeSafetensors(path, {x, target});
}

} // namespace moe::runtime
