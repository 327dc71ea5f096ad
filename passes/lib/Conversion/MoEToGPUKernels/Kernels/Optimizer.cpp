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

std::string moe::gpu_kernels::adamwKernel(const std::string &param, const std::string &grad) {
  // Each operation on its own (no fastmath flags, so no FMA contraction):
  // the order of AdamW::step, which rounds as PyTorch's single-tensor step.
  KernelEmitter k;
  std::string i = k.globalId();
  k.line("scf.if " + k.lt(i, "%n") + " {");
  std::string g = k.loadF32("%grad", i, grad);
  std::string w = k.f32op("mulf", k.load("%master", i, "f32"), "%decay");
  std::string m = k.load("%m", i, "f32"), v = k.load("%v", i, "f32");
  m = k.f32op("addf", m, k.f32op("mulf", "%oneMinusBeta1", k.f32op("subf", g, m)));
  v = k.f32op("addf", k.f32op("mulf", v, "%beta2"), k.f32op("mulf", k.f32op("mulf", "%oneMinusBeta2", g), g));
  std::string root = k.sqrtRn(v);
  std::string denom = k.f32op("addf", k.f32op("divf", root, "%correction2Sqrt"), "%eps");
  std::string negStep = k.op("arith.negf %stepSize : f32");
  w = k.f32op("addf", w, k.f32op("divf", k.f32op("mulf", negStep, m), denom));
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
  std::string sum = k.warpRowSum(lane, "%cols", "c", [&](const std::string &col) {
    std::string at = k.add(base, col);
    std::string d = k.f32op("subf", k.loadF32("%y", at, elt), k.loadF32("%target", at, elt));
    k.storeF32(k.f32op("mulf", d, "%scale"), "%dy", at, elt);
    return k.f32op("mulf", d, d);
  });
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
