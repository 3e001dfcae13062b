// libFuzzer: `orrery explain` case JSON (core/io/json_input.h JsonDocument, core/io/case_json.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/io/case_json.h"
#include "core/io/json_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orrery;
  auto doc = io::JsonDocument::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!doc.ok()) return 0;
  auto c = io::ParseExplainCase(*doc);
  (void)c;
  return 0;
}
