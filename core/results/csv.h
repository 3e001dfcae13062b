// Text helpers shared by the result schema's renderers and readers: CSV (RFC 4180 quoting),
// fixed-point numbers and padded table columns.
// Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace orrery::results {

// `s` quoted when it holds a comma, a quote or a line break; as is otherwise.
std::string CsvQuote(const std::string& s);
// One CSV line split into fields (quotes undone; a trailing \r dropped).
std::vector<std::string> SplitCsvLine(const std::string& line);
// Fixed, locale-free: up to `decimals` decimals, trailing zeros dropped; "" for a non-finite x.
std::string FixedNum(double x, int decimals);
// `s` padded with spaces to `w` characters, on the left when `right` (right-aligned); as is when
// it is already that long.
std::string Pad(std::string s, size_t w, bool right);

}  // namespace orrery::results
