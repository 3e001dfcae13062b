// The CSV cell splitter of core/io: one reading of a CSV line for every CSV reader (the scenario
// loader's task traces, the GPU trace importer in gpu_trace.cc), so both accept the same quoting.
// Each reader keeps its own line source (a streamed file, a text in memory) and counts lines, so
// its errors say "FILE:LINE: ...".
//
// A line is cells separated by commas. A cell whose first non-blank character is a double quote
// is quoted: up to the closing quote, commas stand for themselves and "" is one quote. Every cell
// is trimmed of blanks (spaces and tabs) at both ends, quoted text included. A line may not end
// inside quotes (a quoted cell never spans lines).
//
// Thread safety: a pure function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace orrery::io {

// Splits `line` (no line break) into *cells, reusing its storage. False when the line ends inside
// a quoted cell; the caller reports "FILE:LINE: unterminated quoted field". O(line length).
bool SplitCsvLine(std::string_view line, std::vector<std::string>* cells);

}  // namespace orrery::io
