//===- Optimizer.cpp - the training step's GPU kernels --------------------===//
//
// What a GPU training step needs besides the layer's forward and backward:
// the loss's cotangent and AdamW. The runtime launches them between the
// layer's calls (moe/runtime/train_kernels.h), so that outputs, gradients,
// master weights and moments stay on the device.
//
//===----------------------------------------------------------------------===//
#include "Kernels.h"

#include "KernelEmitter.h"

#include "moe/Conversion/TrainKernels.h"
#include "moe/runtime/train_kernels.h"

using namespace moe::gpu_kernels;

namespace {

std::string binary(KernelEmitter &k, const char *op, const std::string &a, const std::string &b) {
  return k.op(std::string("arith.") + op + " " + a + ", " + b + " : f32");
}

} // namespace

std::string moe::gpu_kernels::adamwKernel(const std::string &param, const std::string &grad) {
  // Each operation on its own (no fastmath flags, so no FMA contraction):
  // the order of AdamW::step, which rounds as PyTorch's single-tensor step.
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, "%n") + " {");
  std::string g = k.loadF32("%grad", i, grad);
  std::string w = binary(k, "mulf", k.load("%master", i, "f32"), "%decay");
  std::string m = k.load("%m", i, "f32"), v = k.load("%v", i, "f32");
  m = binary(k, "addf", m, binary(k, "mulf", "%oneMinusBeta1", binary(k, "subf", g, m)));
  v = binary(k, "addf", binary(k, "mulf", v, "%beta2"), binary(k, "mulf", binary(k, "mulf", "%oneMinusBeta2", g), g));
  // sqrt.rn.f32, correctly rounded as the CPU's: math.sqrt would become
  // libdevice's __nv_sqrtf, which the NVPTX back end emits as sqrt.approx.
  std::string root =
      k.op("llvm.inline_asm asm_dialect = att \"sqrt.rn.f32 $0, $1;\", \"=f,f\" " + v + " : (f32) -> f32");
  std::string denom = binary(k, "addf", binary(k, "divf", root, "%correction2Sqrt"), "%eps");
  std::string negStep = k.op("arith.negf %stepSize : f32");
  w = binary(k, "addf", w, binary(k, "divf", binary(k, "mulf", negStep, m), denom));
  k.store(w, "%master", i, "f32");
  k.store(m, "%m", i, "f32");
  k.store(v, "%v", i, "f32");
  k.storeF32(w, "%param", i, param);
  k.line("}");
  auto pd = ::moe::runtime::parseLanguageName(param), gd = ::moe::runtime::parseLanguageName(grad);
  return k.finish("@" + ::moe::runtime::adamwKernelName(*pd, *gd) + "(%param: " + flatMemref(param) +
                  ", %grad: " + flatMemref(grad) +
                  ", %master: memref<?xf32>, %m: memref<?xf32>, %v: memref<?xf32>, %n: index, %decay: f32, "
                  "%oneMinusBeta1: f32, %beta2: f32, %oneMinusBeta2: f32, %correction2Sqrt: f32, %eps: f32, "
                  "%stepSize: f32)");
}

std::string moe::gpu_kernels::squaredErrorKernel(const std::string &elt) {
  KernelEmitter k;
  std::string id = k.globalId(), c32 = k.index(32);
  std::string row = k.div(id, c32), lane = k.rem(id, c32);
  // The row is the warp's: every lane takes part in the shuffles or none.
  k.line("scf.if " + k.lt(row, "%rows") + " {");
  std::string base = k.mul(row, "%cols");
  std::vector<std::string> acc;
  std::string loop = k.openF32Loop("c", lane, "%cols", c32, "acc", {k.f32(0.0)}, acc);
  std::string at = k.add(base, "%c");
  std::string d = binary(k, "subf", k.loadF32("%y", at, elt), k.loadF32("%target", at, elt));
  k.storeF32(binary(k, "mulf", d, "%scale"), "%dy", at, elt);
  k.yieldF32({binary(k, "addf", acc[0], binary(k, "mulf", d, d))});
  k.line("}");
  std::string sum = k.warpReduce(KernelEmitter::results(loop, 1)[0], "addf");
  k.line("scf.if " + k.op("arith.cmpi eq, " + lane + ", " + k.index(0) + " : index") + " {");
  k.store(sum, "%rowSums", row, "f32");
  k.line("}");
  k.line("}");
  auto dt = ::moe::runtime::parseLanguageName(elt);
  return k.finish("@" + ::moe::runtime::squaredErrorKernelName(*dt) + "(%y: " + flatMemref(elt) +
                  ", %target: " + flatMemref(elt) + ", %dy: " + flatMemref(elt) +
                  ", %rowSums: memref<?xf32>, %rows: index, %cols: index, %scale: f32)");
}

std::string moe::trainKernelsModule(const std::set<std::pair<std::string, std::string>> &adamw,
                                    const std::set<std::string> &squaredError) {
  std::string text = "module attributes {gpu.container_module} {\ngpu.module @moe_train_kernels {\n";
  for (const auto &[param, grad] : adamw)
    text += adamwKernel(param, grad);
  for (const std::string &elt : squaredError)
    text += squaredErrorKernel(elt);
  return text + "}\n}\n";
}
