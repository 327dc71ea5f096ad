//===- KernelEmitter.h - writes GPU kernels as MLIR text --------*- C++ -*-===//
//
// The GPU kernels of a layer (routing, dispatch, grouped GEMMs, combine) are
// generated per layer, specialised on its static sizes, element types and
// tile shapes, as `gpu.func` text that the conversion pass parses into the
// layer's `gpu.module`. Writing them as text keeps each kernel readable
// next to the PTX it becomes; this class names SSA values and hoists
// constants into the entry block, where they dominate every use.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_CONVERSION_GPUKERNELS_KERNELEMITTER_H
#define MOE_CONVERSION_GPUKERNELS_KERNELEMITTER_H

#include "moe/Support/MLIR.h"
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moe::gpu_kernels {

class KernelEmitter {
public:
  /// Emits `%vN = <rhs>` and returns `%vN`.
  std::string op(const std::string &rhs) {
    std::string name = fresh();
    body += "    " + name + " = " + rhs + "\n";
    return name;
  }
  /// Emits `<text>` as is (an op with no results, a region bracket).
  void line(const std::string &text) { body += "    " + text + "\n"; }
  std::string fresh() { return "%v" + std::to_string(next++); }

  /// Constants, defined once at the top of the kernel.
  std::string index(int64_t v) { return constant(std::to_string(v) + " : index"); }
  std::string i32(int64_t v) { return constant(std::to_string(v) + " : i32"); }
  std::string f32(double v);
  std::string boolean(bool v) { return constant(v ? "true" : "false"); }

  // Index arithmetic (type index).
  std::string add(const std::string &a, const std::string &b) { return op("arith.addi " + a + ", " + b + " : index"); }
  std::string mul(const std::string &a, const std::string &b) { return op("arith.muli " + a + ", " + b + " : index"); }
  std::string div(const std::string &a, const std::string &b) { return op("arith.divui " + a + ", " + b + " : index"); }
  std::string rem(const std::string &a, const std::string &b) { return op("arith.remui " + a + ", " + b + " : index"); }
  std::string lt(const std::string &a, const std::string &b) {
    return op("arith.cmpi ult, " + a + ", " + b + " : index");
  }
  std::string minIndex(const std::string &a, const std::string &b) {
    return op("arith.minui " + a + ", " + b + " : index");
  }
  // The same on i32.
  std::string add32(const std::string &a, const std::string &b) { return op("arith.addi " + a + ", " + b + " : i32"); }
  std::string mul32(const std::string &a, const std::string &b) { return op("arith.muli " + a + ", " + b + " : i32"); }
  std::string xor32(const std::string &a, const std::string &b) { return op("arith.xori " + a + ", " + b + " : i32"); }
  std::string toI32(const std::string &index) { return op("arith.index_cast " + index + " : index to i32"); }
  std::string toIndex(const std::string &i32) { return op("arith.index_cast " + i32 + " : i32 to index"); }
  std::string select(const std::string &c, const std::string &a, const std::string &b, const std::string &type) {
    return op("arith.select " + c + ", " + a + ", " + b + " : " + type);
  }

  /// Loads element `i` of a 1-D memref of `elt` and widens it to f32.
  std::string loadF32(const std::string &memref, const std::string &i, const std::string &elt);
  /// Narrows an f32 to `elt` and stores it at element `i`.
  void storeF32(const std::string &value, const std::string &memref, const std::string &i, const std::string &elt);
  std::string load(const std::string &memref, const std::string &i, const std::string &elt) {
    return op("memref.load " + memref + "[" + i + "] : memref<?x" + elt + ">");
  }
  void store(const std::string &value, const std::string &memref, const std::string &i, const std::string &elt) {
    line("memref.store " + value + ", " + memref + "[" + i + "] : memref<?x" + elt + ">");
  }

  /// Opens `scf.for %<iv> = lb to ub step st` carrying f32 values
  /// (`%<argPrefix>i = inits[i]`); returns the loop's result name (results are
  /// `name#i`) and the carried values' names in `args`. Close it with
  /// yieldF32 and `}`.
  std::string openF32Loop(const std::string &iv, const std::string &lb, const std::string &ub, const std::string &step,
                          const std::string &argPrefix, const std::vector<std::string> &inits,
                          std::vector<std::string> &args);
  /// `scf.yield v0, v1, ... : f32, f32, ...`
  void yieldF32(const std::vector<std::string> &values);
  /// The results `loop#0 ... loop#(n-1)` of a loop opened by openF32Loop.
  static std::vector<std::string> results(const std::string &loop, size_t n);
  /// Element `i` of a 1-D memref of `elt` widened to f32 where `condition`
  /// holds, else 0 (no load).
  std::string loadF32If(const std::string &condition, const std::string &memref, const std::string &i,
                        const std::string &elt);

  /// The global linear thread id (block_id.x * block_dim.x + thread_id.x).
  std::string globalId();

  /// `width` consecutive elements of `elt` at element `i` of memref `m` (in
  /// global memory, aligned to their total size) in one load, as f32.
  std::vector<std::string> loadVectorF32(const std::string &m, const std::string &elt, const std::string &i,
                                         int64_t width);
  /// f32 `values` narrowed to `elt` and stored at element `i` of `m` in one store.
  void storeVectorF32(const std::vector<std::string> &values, const std::string &m, const std::string &elt,
                      const std::string &i);

  /// `arith.<op> a, b : f32` (addf, subf, mulf, divf): no fastmath flags, so
  /// no FMA contraction.
  std::string f32op(const char *op, const std::string &a, const std::string &b) {
    return this->op(std::string("arith.") + op + " " + a + ", " + b + " : f32");
  }
  /// The correctly rounded square root (sqrt.rn.f32), as the CPU's:
  /// math.sqrt would become libdevice's __nv_sqrtf, which the NVPTX back end
  /// emits as sqrt.approx.
  std::string sqrtRn(const std::string &x) {
    return op("llvm.inline_asm asm_dialect = att \"sqrt.rn.f32 $0, $1;\", \"=f,f\" " + x + " : (f32) -> f32");
  }
  /// The sum over a row's columns [0, `cols`) of `term(column)` by a warp:
  /// each lane (`lane`) its columns in order, stride 32, then the warp's
  /// tree (the same bits in every lane and call). `iv` names the loop.
  template <typename Term>
  std::string warpRowSum(const std::string &lane, const std::string &cols, const std::string &iv, Term term) {
    std::vector<std::string> acc;
    std::string loop = openF32Loop(iv, lane, cols, index(32), iv + "acc", {f32(0.0)}, acc);
    yieldF32({f32op("addf", acc[0], term("%" + iv))});
    line("}");
    return warpReduce(results(loop, 1)[0], "addf");
  }

  /// `value` (f32 or i32) of the lane whose id differs from this one's in `mask`.
  std::string shuffleXor(const std::string &value, int64_t mask, const std::string &type);
  /// `combine` (an f32 arith op: maximumf, addf) of `value` over the warp, the
  /// same bits in every lane (each step combines the same two values in both
  /// lanes of a pair, and these ops commute).
  std::string warpReduce(std::string value, const std::string &combine);

  /// The finished `gpu.func` with `signature` (e.g. `@name(%a: memref<?xf32>)`)
  /// and `attributions` (e.g. `workgroup(%s : memref<...>)`).
  std::string finish(const std::string &signature, const std::string &attributions = "",
                     const std::string &attributes = "");

private:
  std::string constant(const std::string &valueAndType);
  std::string body, constants;
  std::map<std::string, std::string> constantNames;
  int next = 0;
};

/// A flat buffer of `elt`: `memref<?xelt>`.
inline std::string flatMemref(const std::string &elt) { return "memref<?x" + elt + ">"; }
/// The byte address of a memref argument's data, as i64.
std::string address(KernelEmitter &k, const std::string &m, const std::string &elt);
/// An index as i64.
std::string i64(KernelEmitter &k, const std::string &index);

/// Bytes of an element type (f32 and i32, or a 16-bit one).
inline int64_t eltBytes(const std::string &elt) { return elt == "f32" || elt == "i32" ? 4 : 2; }

/// f32 math on `x` for activation `name`: relu, gelu (tanh form, as the
/// reference), silu, sigmoid, identity.
std::string activation(KernelEmitter &k, const std::string &name, const std::string &x);

/// The max of a row of `experts` logits at element `base` of `logits` and the
/// sum of exp(logit - max): softmax's and logsumexp's statistics, in f32.
std::pair<std::string, std::string> maxAndSumExp(KernelEmitter &k, const std::string &logits, const std::string &elt,
                                                 const std::string &base, int64_t experts);

} // namespace moe::gpu_kernels

#endif
