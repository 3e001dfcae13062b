// The CSV splitter (csv.h). The scenario loader and the GPU trace importer had one each: the
// first let a quote open anywhere and accepted an unterminated one, the second refused both;
// the shared one takes the stricter reading, which no shipped trace depends on.
#include "core/io/csv.h"

namespace orrery::io {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

void TrimInPlace(std::string* s) {
  size_t b = 0, e = s->size();
  while (b < e && IsBlank((*s)[b])) ++b;
  while (e > b && IsBlank((*s)[e - 1])) --e;
  if (b > 0 || e < s->size()) *s = s->substr(b, e - b);
}

}  // namespace

bool SplitCsvLine(std::string_view line, std::vector<std::string>* cells) {
  size_t n = 0;  // cells filled so far; the vector's strings are reused
  auto cell = [&]() -> std::string& {
    if (n == cells->size()) cells->emplace_back();
    std::string& c = (*cells)[n];
    c.clear();
    return c;
  };
  std::string* cur = &cell();
  bool quoted = false, was_quoted = false, only_blanks = true;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        *cur += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        *cur += ch;
      }
    } else if (ch == '"' && only_blanks && !was_quoted) {
      cur->clear();
      quoted = was_quoted = true;
    } else if (ch == ',') {
      TrimInPlace(cur);
      ++n;
      cur = &cell();
      was_quoted = false;
      only_blanks = true;
    } else {
      *cur += ch;
      only_blanks = only_blanks && IsBlank(ch);
    }
  }
  TrimInPlace(cur);
  cells->resize(n + 1);
  return !quoted;
}

}  // namespace orrery::io
