// json.h - a small, strict JSON reader and writer for artifact signatures and
// safetensors headers. Untrusted input: depth-limited, rejects duplicate keys,
// trailing garbage, bad escapes and numbers out of range, with the byte offset.
#ifndef MOE_RUNTIME_JSON_H
#define MOE_RUNTIME_JSON_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger = false; ///< written without fraction or exponent, fits int64
  int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object; ///< in source order

  const Value *find(std::string_view key) const;
  bool isObject() const { return kind == Kind::Object; }
  bool isArray() const { return kind == Kind::Array; }
  bool isString() const { return kind == Kind::String; }
};

/// Parses `text`; on failure returns false and sets `error` ("at byte N: ...").
bool parse(std::string_view text, Value &out, std::string &error);

/// Appends `s` as a JSON string literal (quoted, escaped).
void writeString(std::string &out, std::string_view s);

} // namespace moe::runtime::json

#endif // MOE_RUNTIME_JSON_H
