// moe-run.cc - the runtime-only runner: executes a .moeb artifact without the
// compiler (no MLIR, no LLVM), e.g. on a machine that only has the runtime.
//
//   moe-run LAYER.moeb [--weights W.safetensors] [--input X.safetensors]
//           [--output Y.safetensors] [--tokens N] [--seed N] [--bench]
//           [--iterations N] [--num-threads N]
//   mpirun -n 4 moe-run LAYER.moeb ...   (a layer built with --mesh; docs/sharding.md)
#include "moe/runtime/comm.h"
#include "moe/runtime/session.h"
#include "moe/runtime/shard_io.h"
#include "moe/runtime/trainer.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "moe/runtime/cpu_kernels.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace {

const char *kUsage =
    "usage: moe-run LAYER.moeb [options]\n"
    "Runs a layer compiled by `moec build` on the CPU or a CUDA GPU.\n"
    "  --weights FILE     parameters (safetensors); default: random, by --seed\n"
    "  --input FILE       inputs named after the forward arguments; default: random\n"
    "  --output FILE      write the outputs (output, or output1, output2, ...)\n"
    "  --tokens N         size of symbolic dimensions of random inputs (default 16)\n"
    "  --seed N           seed of random weights and inputs (default 0)\n"
    "  --bench            time the layer (median of --iterations calls, default 10)\n"
    "  --bench-tokens N,M also time these token counts on the same weights\n"
    "  --bench-eager      on a GPU, time plain calls rather than CUDA-graph replays\n"
    "  --num-threads N    kernel threads (default: MOE_NUM_THREADS, else all; --threads too)\n"
    "  --backward         a train artifact (moec build --train): the gradients too, written with\n"
    "                     the outputs to --output as grad.x, grad.<param> (docs/training.md)\n"
    "  --cotangent FILE   --backward: a cotangent per output, named as it (default: random normals)\n"
    "Training (a layer built with `moec build --train`; docs/training.md): on one process; under\n"
    "  mpirun -n N, data parallel (each rank its rows of every batch); built with --train --mesh\n"
    "  rep=R,dp=D,ep=E, on that mesh (its experts, FSDP chunks and replicas): the same weights on any mesh\n"
    "  --train            train on --data for --steps steps: loss = mean squared error of the first\n"
    "                     output to the target, plus the layer's scalar outputs; AdamW\n"
    "  --data FILE        x [steps, tokens, ...] and target [steps, tokens, ...] (batches cycle)\n"
    "  --steps N          train until step N; with --make-data: the batches to write\n"
    "  --lr X --beta1 X --beta2 X --eps X --weight-decay X   AdamW (1e-3, 0.9, 0.999, 1e-8, 0.01)\n"
    "  --lr-schedule S    constant (default), linear or cosine decay to 0 at --steps\n"
    "  --warmup-steps N   a linear warm-up from 0 over the first N steps\n"
    "  --balance-rate X   the step of an update = :balance bias (DeepSeek-V3; default 1e-3)\n"
    "  --save-weights F   write the trained weights (safetensors, the --weights format)\n"
    "  --loss-csv F       write step,loss,seconds per step\n"
    "  --plot F.png       draw the loss curve (log scale) into a PNG\n"
    "  --checkpoint-dir C --checkpoint-every K   save the training state every K steps (docs/checkpoint.md)\n"
    "  --resume C         continue from C's newest complete checkpoint (same --data and --steps; any N)\n"
    "  --async            write checkpoints in the background (training blocks for the snapshot only)\n"
    "  --auto-resume      resume from --checkpoint-dir if it holds a checkpoint, else start (for restarts)\n"
    "  --make-data FILE   write teacher data: --steps batches of --tokens random inputs (by --seed)\n"
    "                     and this layer's first output on each, as x and target\n"
    "  MOE_TRAIN_PROFILE=1  print each step's forward, loss, backward and update times on stderr\n"
    "  MOE_TRAIN_STEP=host  a GPU layer's step the host's way (gradients downloaded, AdamW on the host;\n"
    "                     by default the whole step stays on the device): the same weights, to check it\n"
    "A layer built with `moec build --mesh rep=R,dp=D,ep=E` runs on R*D*E ranks:\n"
    "  mpirun -n R*D*E moe-run LAYER.moeb ..., or torchrun --nproc-per-node=R*D*E --no-python moe-run ...\n"
    "  (CPU ranks: MPI, or TCP under torchrun; GPU: one a rank, NCCL). Every rank reads its shard of\n"
    "  --weights and its rows of --input; rank 0 writes the global --output (and, --backward, the\n"
    "  global gradients).\n"
    "  MOE_COLLECTIVE_TIMEOUT=S ends every rank when a collective waits S seconds (300).\n";

bool number(const char *text, unsigned &out) {
  char *end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (!*text || *end || v > 0xFFFFFFFFul)
    return false;
  out = static_cast<unsigned>(v);
  return true;
}

} // namespace

int main(int argc, char **argv) {
#ifdef __GLIBC__
  // Training steps and benchmark calls allocate and free the same large
  // tensors (gradients, parameters, outputs) again and again: kept in the
  // heap rather than given back to the system and faulted in afresh (~120 ms
  // a 176 MB tensor on a 2-core machine), they cost a call no page faults.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
#endif
  moe::runtime::SessionOptions options;
  moe::runtime::TrainOptions train;
  bool training = false;
  std::string makeData;
  std::string artifact;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char *name) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n%s", name, kUsage);
        std::exit(1);
      }
      return argv[++i];
    };
    auto count = [&](const char *name, unsigned &out) {
      if (!number(value(name), out)) {
        std::fprintf(stderr, "error: %s needs a non-negative integer, got '%s'\n", name, argv[i]);
        std::exit(1);
      }
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--weights") {
      options.weights = value("--weights");
    } else if (arg == "--input") {
      options.inputs = value("--input");
    } else if (arg == "--output") {
      options.outputs = value("--output");
    } else if (arg == "--tokens") {
      count("--tokens", options.tokens);
    } else if (arg == "--seed") {
      count("--seed", options.seed);
    } else if (arg == "--iterations") {
      count("--iterations", options.iterations);
    } else if (arg == "--num-threads" || arg == "--threads") { // moec run's name, and the short one
      count(arg.c_str(), options.threads);
    } else if (arg == "--backward") {
      options.backward = true;
    } else if (arg == "--cotangent") {
      options.cotangents = value("--cotangent");
      options.backward = true;
    } else if (arg == "--train") {
      training = true;
    } else if (arg == "--data") {
      train.data = value("--data");
    } else if (arg == "--steps") {
      unsigned n = 0;
      count("--steps", n);
      train.steps = n;
    } else if (arg == "--lr" || arg == "--beta1" || arg == "--beta2" || arg == "--eps" || arg == "--weight-decay" ||
               arg == "--balance-rate") {
      const char *text = value(arg.c_str());
      char *end = nullptr;
      double v = std::strtod(text, &end);
      if (!*text || *end) {
        std::fprintf(stderr, "error: %s needs a number, got '%s'\n", arg.c_str(), text);
        return 1;
      }
      (arg == "--lr"             ? train.adamw.lr
       : arg == "--beta1"        ? train.adamw.beta1
       : arg == "--beta2"        ? train.adamw.beta2
       : arg == "--eps"          ? train.adamw.eps
       : arg == "--balance-rate" ? train.balanceRate
                                 : train.adamw.weightDecay) = v;
    } else if (arg == "--lr-schedule") {
      train.lrSchedule = value("--lr-schedule");
    } else if (arg == "--warmup-steps") {
      unsigned n = 0;
      count("--warmup-steps", n);
      train.warmupSteps = n;
    } else if (arg == "--save-weights") {
      train.saveWeights = value("--save-weights");
    } else if (arg == "--loss-csv") {
      train.lossCsv = value("--loss-csv");
    } else if (arg == "--plot") {
      train.plot = value("--plot");
    } else if (arg == "--checkpoint-dir") {
      train.checkpointDir = value("--checkpoint-dir");
    } else if (arg == "--checkpoint-every") {
      unsigned n = 0;
      count("--checkpoint-every", n);
      train.checkpointEvery = n;
    } else if (arg == "--resume") {
      train.resume = value("--resume");
    } else if (arg == "--async") {
      train.asyncCheckpoint = true;
    } else if (arg == "--auto-resume") {
      train.autoResume = true;
    } else if (arg == "--make-data") {
      makeData = value("--make-data");
    } else if (arg == "--bench") {
      options.bench = true;
    } else if (arg == "--bench-eager") {
      options.bench = options.benchEager = true;
    } else if (arg == "--bench-tokens") {
      // More token counts to time on the same weights: N[,N...].
      std::string list = value("--bench-tokens");
      for (size_t at = 0; at <= list.size();) {
        size_t comma = list.find(',', at);
        std::string item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        unsigned n = 0;
        if (!number(item.c_str(), n)) {
          std::fprintf(stderr, "error: --bench-tokens needs numbers separated by commas, got '%s'\n", list.c_str());
          return 1;
        }
        options.moreBenchTokens.push_back(n);
        if (comma == std::string::npos)
          break;
        at = comma + 1;
      }
      options.bench = true;
    } else if (arg.rfind("--", 0) == 0 || !artifact.empty()) {
      std::fprintf(stderr, "error: unexpected argument '%s'\n%s", arg.c_str(), kUsage);
      return 1;
    } else {
      artifact = arg;
    }
  }
  if (artifact.empty()) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  // Under a launcher (mpirun, torchrun) this process is one rank of a mesh.
  std::unique_ptr<moe::runtime::Layer> layer;
  std::unique_ptr<moe::runtime::Communicator> comm;
  moe::runtime::Launch launch = moe::runtime::detectLaunch();
  std::string where = launch.world > 1 ? " (rank " + std::to_string(launch.rank) + ")" : "";
  // A failed rank ends the whole job: its peers may wait in a collective.
  auto failed = [&]() -> int {
    std::fprintf(stderr, "moe-run: error%s: %s\n", where.c_str(), moe_last_error());
    if (comm && comm->world() > 1)
      comm->abort(1);
    return 1;
  };
  if (moe::runtime::Layer::loadFile(artifact, layer) != MOE_OK)
    return failed();
  const bool trainingRun = training || !makeData.empty();
  if (layer->isSharded() || launch.world > 1) {
    // Data-parallel training keeps an unplaced layer on its own rank: the
    // trainer, not the layer's code, talks to the other ranks.
    if (moe::runtime::openCommunicator(layer->onGpu(), comm) != MOE_OK ||
        ((!trainingRun || layer->isSharded()) && layer->attach(comm.get()) != MOE_OK))
      return failed();
  }
  options.errorPrefix = where;
  if (trainingRun) {
    if (!makeData.empty() && (layer->isSharded() || launch.world > 1)) {
      std::fprintf(stderr, "moe-run: error%s: --make-data runs a layer built without --mesh on one process\n",
                   where.c_str());
      return 1;
    }
    if (train.autoResume && (train.checkpointDir.empty() || !train.resume.empty())) {
      std::fprintf(stderr, "moe-run: error: --auto-resume resumes from --checkpoint-dir (and replaces --resume)\n");
      return 1;
    }
    if ((train.checkpointEvery > 0) != !train.checkpointDir.empty()) {
      std::fprintf(stderr, "moe-run: error: --checkpoint-dir and --checkpoint-every go together\n");
      return 1;
    }
    if (training && train.data.empty()) {
      std::fprintf(stderr, "moe-run: error: --train needs --data FILE (x and target; --make-data writes one)\n");
      return 1;
    }
    if (options.threads)
      moe_cpu_set_num_threads(static_cast<int>(options.threads));
    // A placed layer: each rank its shard; else the whole layer on every rank.
    if ((layer->isSharded() && moe::runtime::checkSameArtifact(*comm, *layer) != MOE_OK) ||
        moe::runtime::bindWeights(*layer, options.weights, options.seed, layer->isSharded() ? comm.get() : nullptr,
                                  stderr) != MOE_OK)
      return failed();
    if (!makeData.empty()) {
      if (moe::runtime::makeTeacherData(*layer, train.steps, options.tokens, options.seed, makeData) != MOE_OK)
        return failed();
      std::printf("wrote %lld batches of %u tokens to %s\n", static_cast<long long>(train.steps), options.tokens,
                  makeData.c_str());
      return 0;
    }
    int status = moe::runtime::runTraining(*layer, train, stdout, comm.get());
    if (status != 0 && comm && comm->world() > 1)
      comm->abort(status);
    return status;
  }
  int status = 1;
  try {
    status = moe::runtime::runSession(*layer, options, stdout);
  } catch (const std::bad_alloc &) { // sizes are checked first; this is the last line of defence
    std::fprintf(stderr, "moe-run: error%s: out of memory (the layer or its data do not fit this machine)\n",
                 where.c_str());
  }
  if (status != 0 && comm && comm->world() > 1)
    comm->abort(status);
  return status;
}
