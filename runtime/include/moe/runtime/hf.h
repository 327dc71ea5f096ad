// hf.h - one MoE layer's weights from and to a Hugging Face checkpoint
// (docs/weights.md): the per-expert nn.Linear weights ([out, in]) stacked
// and transposed to moec's [n_experts, in, out], the router's transposed,
// names mapped to those of examples/{mixtral,deepseek_v3,qwen3_30b_a3b}.moe.
// Element types are kept bit for bit.
//
//   HfLayer hf{"path/to/checkpoint", /*layer=*/3};
//   std::vector<Tensor> weights;
//   importHuggingFace(hf, weights);            // the family from the names it finds
#ifndef MOE_RUNTIME_HF_H
#define MOE_RUNTIME_HF_H

#include "moe/runtime/status.h"
#include "moe/runtime/tensor.h"

#include <optional>
#include <string>
#include <vector>

namespace moe::runtime {

/// The model families whose MoE blocks map onto the examples' layers.
enum class HfFamily { Mixtral, Qwen3Moe, DeepSeekV3 };
const char *hfFamilyName(HfFamily family); ///< "mixtral", "qwen3_moe", "deepseek_v3" (HF's model_type)
std::optional<HfFamily> parseHfFamily(const std::string &name);

struct HfLayer {
  /// A checkpoint directory (with model.safetensors.index.json when it is
  /// sharded, else its *.safetensors files), an index file, or one
  /// .safetensors file.
  std::string source;
  int64_t layer = 0;              ///< the decoder layer (model.layers.<layer>.)
  std::optional<HfFamily> family; ///< detected from the tensor names when absent
};

/// The layer's weights under moec's names; `family` gets the family used.
/// A missing shard or tensor, a malformed index or a mis-shaped tensor is
/// refused with a message that names it.
moe_status_t importHuggingFace(const HfLayer &hf, std::vector<Tensor> &out, HfFamily *family = nullptr);

/// moec's weights of such a layer as HF tensors of decoder layer `layer`
/// (one safetensors file at `path`): the inverse of importHuggingFace.
moe_status_t exportHuggingFace(const std::vector<Tensor> &weights, HfFamily family, int64_t layer,
                               const std::string &path);

} // namespace moe::runtime

#endif // MOE_RUNTIME_HF_H
