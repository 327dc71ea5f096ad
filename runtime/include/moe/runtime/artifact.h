// artifact.h - the .moeb artifact: a compiled layer and its signature.
//
// Layout (little-endian; docs/artifact.md):
//   magic "MOEB\r\n\x1a\n" | u32 version | u32 section count | u64 file size |
//   u32 reserved | u32 reserved | section table (48 bytes each: name[24],
//   u64 offset, u64 size, u32 crc32, u32 reserved) | section bytes (16-aligned)
// Sections: "signature" (JSON: layer, inputs, parameters, outputs, symbolic
// dims), "code.cpu.so" (an ELF shared object with the entry point), and later
// "code.ptx.<arch>". Reading validates everything before anything is used.
#ifndef MOE_RUNTIME_ARTIFACT_H
#define MOE_RUNTIME_ARTIFACT_H

#include "moe/runtime/dtype.h"
#include "moe/runtime/mesh.h"
#include "moe/runtime/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moe::runtime {

/// A signature's output names: "output" for one result, else "output1",
/// "output2", ... (the compiler writes them, the runtime binds by them).
std::string outputName(size_t index, size_t count);

constexpr uint32_t kArtifactVersion = 1;

/// A dimension of a signature tensor: a size, or a symbol bound at call time.
struct Dim {
  int64_t size = 0;
  std::string symbol; ///< "tokens"; empty for a static size
  bool isSymbolic() const { return !symbol.empty(); }
};

struct TensorSpec {
  std::string name; ///< "x", "router.weight", "output"
  moe_dtype_t dtype = MOE_F32;
  std::vector<Dim> shape;
  std::string init = "normal"; ///< parameters: "normal", "zeros", "ones"
  bool trainable = true;
  /// Parameters: "balance" for one a training step moves by its experts'
  /// load (DeepSeek-V3's aux-loss-free bias; the backward returns the load
  /// as "load.<name>"), else empty.
  std::string update;
  /// Parameters: how the mesh splits it (mesh.h); the shape is the global one.
  Placement placement = Placement::Replicated;

  /// The sizes of a shape without symbols (a parameter's).
  std::vector<int64_t> sizes() const {
    std::vector<int64_t> out;
    for (const Dim &d : shape)
      out.push_back(d.size);
    return out;
  }
  /// The bytes of a shape without symbols, or nullopt if they overflow 64 bits.
  std::optional<uint64_t> bytes() const {
    uint64_t total = moe_dtype_size(dtype);
    for (const Dim &d : shape)
      if (d.size < 0 || __builtin_mul_overflow(total, static_cast<uint64_t>(d.size), &total))
        return std::nullopt;
    return total;
  }
};

/// A train artifact's backward (moec build --train): its entry takes the
/// forward's inputs and parameters, then a cotangent per output (shaped as
/// the output), and returns `gradients`: one per float input and parameter,
/// in signature order, named "grad." + its name ("grad.x",
/// "grad.experts.w_gate") and shaped as it; then, for each parameter with
/// update "balance", its experts' load "load.<name>" (f32 [experts]).
struct BackwardSignature {
  std::string entry;
  std::vector<TensorSpec> gradients;
  /// The train forward (`moe_entry_<layer>_train`), when the backward takes
  /// residuals: the forward's outputs, then `residuals` (named "residual.0",
  /// ...), which the backward takes after the cotangents. Empty when the
  /// backward recomputes everything it needs.
  std::string trainEntry;
  std::vector<TensorSpec> residuals;
};

struct Signature {
  std::string layer;       ///< "MixtralMoE"
  std::string description; ///< the layer's docstring
  std::string entry;       ///< the code's entry symbol
  std::string target;      ///< "cpu-x86_64"
  std::vector<TensorSpec> inputs, params, outputs;
  std::string hyperparameters = "{}"; ///< a JSON object, for people and tools
  /// Useful FLOPs per token (router, experts at k per token, dense layers), for
  /// `moec run --bench`; 0 when unknown.
  double flopsPerToken = 0;
  /// The mesh the code was placed on (moec build --mesh); one device by default.
  Mesh mesh;
  /// Whether every output row depends on its own input row only (no
  /// capacity, no loss or reduction over tokens, no collective): its
  /// gradients are then sums of independent per-token terms, so training
  /// may form them block by block and spread the blocks over ranks.
  bool rowIndependent = false;
  /// Train artifacts only: the backward.
  std::optional<BackwardSignature> backward;
};

struct Artifact {
  Signature signature;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> sections; ///< besides "signature"

  const std::vector<uint8_t> *section(const std::string &name) const;
};

std::string signatureToJson(const Signature &signature);
moe_status_t signatureFromJson(const std::string &text, Signature &out);

moe_status_t parseArtifact(const uint8_t *bytes, size_t size, Artifact &out);
moe_status_t readArtifact(const std::string &path, Artifact &out);
moe_status_t serializeArtifact(const Artifact &artifact, std::vector<uint8_t> &out);
moe_status_t writeArtifact(const std::string &path, const Artifact &artifact);

uint32_t crc32(const uint8_t *bytes, size_t size);

} // namespace moe::runtime

#endif // MOE_RUNTIME_ARTIFACT_H
