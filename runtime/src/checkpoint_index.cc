// checkpoint_index.cc - parsing and checking a checkpoint's index
// (checkpoint_index.h).
#include "moe/runtime/checkpoint_index.h"

#include "moe/runtime/json.h"
#include "moe/runtime/safetensors.h" // readFile

#include <algorithm>

namespace moe::runtime {

moe_status_t parseCheckpointIndex(std::string_view text, const std::string &dir, CheckpointIndex &out) {
  json::Value index;
  std::string error;
  auto bad = [&](const std::string &why) { return fail(MOE_INVALID_FORMAT, "checkpoint " + dir + ": " + why); };
  if (!json::parse(text, index, error))
    return bad("the index is not valid JSON: " + error);
  const json::Value *format = index.find("format"), *version = index.find("version"), *step = index.find("step"),
                    *optSteps = index.find("optimizer_steps"), *tensors = index.find("tensors");
  if (!format || !format->isString() || format->string != "moec-checkpoint")
    return bad("not a moec checkpoint index");
  if (!version || !version->isInteger || version->integer < 1 || version->integer > kCheckpointVersion)
    return fail(MOE_VERSION_MISMATCH, "checkpoint " + dir + ": format version " +
                                          (version && version->isInteger ? std::to_string(version->integer) : "?") +
                                          ", this runtime reads 1 to " + std::to_string(kCheckpointVersion));
  if (!step || !step->isInteger || step->integer < 0 || !optSteps || !optSteps->isInteger || !tensors ||
      !tensors->isObject())
    return bad("the index needs step, optimizer_steps and tensors");
  const json::Value *block = index.find("crc32_block_bytes");
  if (version->integer >= 2 && (!block || !block->isInteger || block->integer <= 0))
    return bad("the index needs crc32_block_bytes");
  out.step = step->integer;
  out.optimizerSteps = optSteps->integer;
  if (const json::Value *by = index.find("written_by"); by && by->isString())
    out.writtenBy = by->string;
  for (const auto &[name, spec] : tensors->object) {
    const json::Value *dtype = spec.find("dtype"), *shape = spec.find("shape"), *list = spec.find("chunks");
    std::optional<moe_dtype_t> dt = dtype && dtype->isString() ? parseDType(dtype->string) : std::nullopt;
    if (!dt || !shape || !shape->isArray() || !list || !list->isArray() || list->array.empty())
      return bad("tensor \"" + name + "\" needs a dtype, a shape and its chunks");
    SavedTensor t;
    t.dtype = *dt;
    int64_t elements = 1;
    for (const json::Value &d : shape->array) {
      if (!d.isInteger || d.integer < 0 || __builtin_mul_overflow(elements, d.integer, &elements))
        return bad("tensor \"" + name + "\" has a bad shape");
      t.shape.push_back(d.integer);
    }
    if (const json::Value *p = spec.find("placement"); p && p->isString())
      t.placement = p->string;
    const int64_t size = static_cast<int64_t>(moe_dtype_size(*dt));
    for (const json::Value &chunk : list->array) {
      const json::Value *file = chunk.find("file"), *begin = chunk.find("begin"), *end = chunk.find("end"),
                        *crc = chunk.find("crc32"), *range = chunk.find("elements");
      SavedChunk c;
      if (!file || !file->isString() || file->string.empty() || file->string.find('/') != std::string::npos || !begin ||
          !begin->isInteger || !end || !end->isInteger || begin->integer < 0 || !crc)
        return bad("tensor \"" + name + "\" has a malformed chunk");
      c.file = file->string;
      c.begin = begin->integer;
      c.bytes = end->integer - begin->integer;
      if (range) {
        if (!range->isArray() || range->array.size() != 2 || !range->array[0].isInteger || !range->array[1].isInteger)
          return bad("a chunk of \"" + name + "\" has malformed elements");
        c.first = range->array[0].integer;
        c.last = range->array[1].integer;
      } else {
        c.first = 0, c.last = elements; // version 1: the whole tensor
      }
      if (c.first < 0 || c.last > elements || c.first >= c.last || c.bytes != (c.last - c.first) * size)
        return bad("a chunk of \"" + name + "\" holds elements [" + std::to_string(c.first) + ", " +
                   std::to_string(c.last) + ") in " + std::to_string(c.bytes) + " bytes; the tensor has " +
                   std::to_string(elements) + " elements of " + std::to_string(size) + " bytes");
      c.blockBytes = version->integer >= 2 ? block->integer : std::max<int64_t>(c.bytes, 1);
      if (crc->isInteger) {
        c.crcs.push_back(static_cast<uint32_t>(crc->integer));
      } else if (crc->isArray()) {
        for (const json::Value &v : crc->array) {
          if (!v.isInteger)
            return bad("a chunk of \"" + name + "\" has a malformed crc32");
          c.crcs.push_back(static_cast<uint32_t>(v.integer));
        }
      }
      if (static_cast<int64_t>(c.crcs.size()) != (c.bytes + c.blockBytes - 1) / c.blockBytes)
        return bad("a chunk of \"" + name + "\" has " + std::to_string(c.crcs.size()) + " checksums for " +
                   std::to_string(c.bytes) + " bytes");
      t.chunks.push_back(std::move(c));
    }
    std::sort(t.chunks.begin(), t.chunks.end(),
              [](const SavedChunk &a, const SavedChunk &b) { return a.first < b.first; });
    for (size_t i = 1; i < t.chunks.size(); ++i)
      if (t.chunks[i].first < t.chunks[i - 1].last)
        return bad("the chunks of \"" + name + "\" overlap");
    out.tensors[name] = std::move(t);
  }
  return MOE_OK;
}

moe_status_t readCheckpointIndex(const std::string &dir, CheckpointIndex &out) {
  std::vector<uint8_t> text;
  if (moe_status_t s = readFile(dir + "/index.json", text))
    return s;
  return parseCheckpointIndex(std::string_view(reinterpret_cast<const char *>(text.data()), text.size()), dir, out);
}

} // namespace moe::runtime
