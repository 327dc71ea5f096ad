//===- KernelEmitter.cpp - writes GPU kernels as MLIR text ------*- C++ -*-===//
#include "KernelEmitter.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace moe::gpu_kernels;

std::string KernelEmitter::constant(const std::string &valueAndType) {
  auto it = constantNames.find(valueAndType);
  if (it != constantNames.end())
    return it->second;
  std::string name = "%c" + std::to_string(constantNames.size());
  constants += "    " + name + " = arith.constant " + valueAndType + "\n";
  constantNames[valueAndType] = name;
  return name;
}

std::string KernelEmitter::f32(double v) {
  // Hexadecimal bits: exact, and infinities have no decimal spelling.
  float f = static_cast<float>(v);
  uint32_t bits;
  static_assert(sizeof bits == sizeof f);
  __builtin_memcpy(&bits, &f, sizeof bits);
  return constant(llvm::formatv("{0:X8} : f32", bits).str());
}

std::string KernelEmitter::loadF32(const std::string &memref, const std::string &i, const std::string &elt) {
  std::string v = load(memref, i, elt);
  return elt == "f32" ? v : op("arith.extf " + v + " : " + elt + " to f32");
}

void KernelEmitter::storeF32(const std::string &value, const std::string &memref, const std::string &i,
                             const std::string &elt) {
  std::string v = elt == "f32" ? value : op("arith.truncf " + value + " : f32 to " + elt);
  store(v, memref, i, elt);
}

std::string KernelEmitter::openF32Loop(const std::string &iv, const std::string &lb, const std::string &ub,
                                       const std::string &step, const std::string &argPrefix,
                                       const std::vector<std::string> &inits, std::vector<std::string> &args) {
  std::string loop = fresh(), carried, types;
  args.clear();
  for (size_t i = 0; i < inits.size(); ++i) {
    args.push_back("%" + argPrefix + std::to_string(i));
    carried += (i ? ", " : "") + args.back() + " = " + inits[i];
    types += i ? ", f32" : "f32";
  }
  line(loop + ":" + std::to_string(inits.size()) + " = scf.for %" + iv + " = " + lb + " to " + ub + " step " + step +
       " iter_args(" + carried + ") -> (" + types + ") {");
  return loop;
}

void KernelEmitter::yieldF32(const std::vector<std::string> &values) {
  std::string list, types;
  for (size_t i = 0; i < values.size(); ++i) {
    list += (i ? ", " : "") + values[i];
    types += i ? ", f32" : "f32";
  }
  line("scf.yield " + list + " : " + types);
}

std::vector<std::string> KernelEmitter::results(const std::string &loop, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back(loop + "#" + std::to_string(i));
  return out;
}

std::string KernelEmitter::loadF32If(const std::string &condition, const std::string &memref, const std::string &i,
                                     const std::string &elt) {
  std::string v = fresh();
  line(v + " = scf.if " + condition + " -> (f32) {");
  line("scf.yield " + loadF32(memref, i, elt) + " : f32");
  line("} else {");
  line("scf.yield " + f32(0.0) + " : f32");
  line("}");
  return v;
}

std::string KernelEmitter::globalId() {
  std::string b = op("gpu.block_id x"), d = op("gpu.block_dim x"), t = op("gpu.thread_id x");
  return add(mul(b, d), t);
}

std::string moe::gpu_kernels::address(KernelEmitter &k, const std::string &m, const std::string &elt) {
  std::string p = k.op("memref.extract_aligned_pointer_as_index " + m + " : " + flatMemref(elt) + " -> index");
  return k.op("arith.index_cast " + p + " : index to i64");
}

std::string moe::gpu_kernels::i64(KernelEmitter &k, const std::string &index) {
  return k.op("arith.index_cast " + index + " : index to i64");
}

/// Element `i` of global memref `m` as a global-space pointer.
static std::string globalPointer(KernelEmitter &k, const std::string &m, const std::string &elt, const std::string &i) {
  std::string base = address(k, m, elt), offset = i64(k, k.mul(i, k.index(eltBytes(elt))));
  return k.op("llvm.inttoptr " + k.op("arith.addi " + base + ", " + offset + " : i64") + " : i64 to !llvm.ptr<1>");
}

std::vector<std::string> KernelEmitter::loadVectorF32(const std::string &m, const std::string &elt,
                                                      const std::string &i, int64_t width) {
  std::string type = "vector<" + std::to_string(width) + "x" + elt + ">";
  std::string v = op("llvm.load " + globalPointer(*this, m, elt, i) +
                     " {alignment = " + std::to_string(width * eltBytes(elt)) + " : i64} : !llvm.ptr<1> -> " + type);
  std::vector<std::string> out;
  for (int64_t j = 0; j < width; ++j) {
    std::string x = op("llvm.extractelement " + v + "[" + i32(j) + " : i32] : " + type);
    out.push_back(elt == "f32" ? x : op("arith.extf " + x + " : " + elt + " to f32"));
  }
  return out;
}

void KernelEmitter::storeVectorF32(const std::vector<std::string> &values, const std::string &m, const std::string &elt,
                                   const std::string &i) {
  const int64_t width = static_cast<int64_t>(values.size());
  std::string type = "vector<" + std::to_string(width) + "x" + elt + ">";
  std::string v = op("llvm.mlir.undef : " + type);
  for (int64_t j = 0; j < width; ++j) {
    std::string x = elt == "f32" ? values[j] : op("arith.truncf " + values[j] + " : f32 to " + elt);
    v = op("llvm.insertelement " + x + ", " + v + "[" + i32(j) + " : i32] : " + type);
  }
  line("llvm.store " + v + ", " + globalPointer(*this, m, elt, i) +
       " {alignment = " + std::to_string(width * eltBytes(elt)) + " : i64} : " + type + ", !llvm.ptr<1>");
}

std::string KernelEmitter::shuffleXor(const std::string &value, int64_t mask, const std::string &type) {
  std::string r = fresh(), valid = fresh();
  line(r + ", " + valid + " = gpu.shuffle xor " + value + ", " + i32(mask) + ", " + i32(32) + " : " + type);
  return r;
}

std::string KernelEmitter::warpReduce(std::string value, const std::string &combine) {
  for (int64_t mask = 16; mask >= 1; mask /= 2)
    value = op("arith." + combine + " " + value + ", " + shuffleXor(value, mask, "f32") + " : f32");
  return value;
}

std::string KernelEmitter::finish(const std::string &signature, const std::string &attributions,
                                  const std::string &attributes) {
  return "  gpu.func " + signature + " " + attributions + " kernel " + attributes + " {\n" + constants + body +
         "    gpu.return\n  }\n";
}

/// The max of a row of `experts` logits at `base` and the sum of exp(logit -
/// max): softmax's and logsumexp's statistics, in f32.
std::pair<std::string, std::string> moe::gpu_kernels::maxAndSumExp(KernelEmitter &k, const std::string &logits,
                                                                   const std::string &elt, const std::string &base,
                                                                   int64_t experts) {
  std::string c0 = k.index(0), c1 = k.index(1), cE = k.index(experts);
  std::string m = k.fresh();
  k.line(m + " = scf.for %e = " + c0 + " to " + cE + " step " + c1 + " iter_args(%m = " + k.f32(-INFINITY) +
         ") -> (f32) {");
  std::string v = k.loadF32(logits, k.add(base, "%e"), elt);
  k.line("scf.yield " + k.op("arith.maximumf %m, " + v + " : f32") + " : f32");
  k.line("}");
  std::string sum = k.fresh();
  k.line(sum + " = scf.for %e = " + c0 + " to " + cE + " step " + c1 + " iter_args(%s = " + k.f32(0.0) +
         ") -> (f32) {");
  std::string v2 = k.loadF32(logits, k.add(base, "%e"), elt);
  std::string x = k.op("math.exp " + k.op("arith.subf " + v2 + ", " + m + " : f32") + " : f32");
  k.line("scf.yield " + k.op("arith.addf %s, " + x + " : f32") + " : f32");
  k.line("}");
  return {m, sum};
}

std::string moe::gpu_kernels::activation(KernelEmitter &k, const std::string &name, const std::string &x) {
  if (name == "relu")
    return k.op("arith.maximumf " + x + ", " + k.f32(0.0) + " : f32");
  if (name == "sigmoid" || name == "silu") {
    std::string neg = k.op("arith.negf " + x + " : f32");
    std::string e = k.op("math.exp " + neg + " : f32");
    std::string den = k.op("arith.addf " + e + ", " + k.f32(1.0) + " : f32");
    std::string s = k.op("arith.divf " + k.f32(1.0) + ", " + den + " : f32");
    return name == "sigmoid" ? s : k.op("arith.mulf " + x + ", " + s + " : f32");
  }
  if (name == "gelu") {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string x2 = k.op("arith.mulf " + x + ", " + x + " : f32");
    std::string x3 = k.op("arith.mulf " + x2 + ", " + x + " : f32");
    std::string inner = k.op("math.fma " + x3 + ", " + k.f32(0.044715) + ", " + x + " : f32");
    std::string scaled = k.op("arith.mulf " + inner + ", " + k.f32(0.7978845608028654) + " : f32");
    std::string t = k.op("math.tanh " + scaled + " : f32");
    std::string onePlus = k.op("arith.addf " + t + ", " + k.f32(1.0) + " : f32");
    std::string half = k.op("arith.mulf " + x + ", " + k.f32(0.5) + " : f32");
    return k.op("arith.mulf " + half + ", " + onePlus + " : f32");
  }
  return x;
}
