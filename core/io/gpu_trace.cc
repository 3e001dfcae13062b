#include "core/io/gpu_trace.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/io/csv.h"

namespace orrery::io {
namespace {

constexpr int64_t kMaxCpuMilli = int64_t{1} << 40;   // ~10^9 cores: far beyond any node
constexpr int64_t kMaxMemoryMib = int64_t{1} << 40;  // 1 EiB
constexpr int64_t kMaxTraceFileBytes = int64_t{1} << 30;

std::string Quote(std::string_view s) {
  std::string out = "'";
  out.append(s.substr(0, 60));
  if (s.size() > 60) out += "...";
  return out + "'";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsNan(std::string_view s) { return s == "nan" || s == "NaN" || s == "NAN"; }

// Rows of a CSV file with a header, columns looked up by name.
class CsvTable {
 public:
  CsvTable(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);
  }

  // Reads the header; every name in `required` must be present.
  Status ReadHeader(const std::vector<std::string>& required) {
    std::string_view line;
    while (NextLine(&line)) {
      if (Trim(line).empty()) continue;
      if (!SplitCsvLine(line, &header_)) return Unterminated();
      for (size_t i = 0; i < header_.size(); ++i) {
        if (!columns_.emplace(header_[i], static_cast<int>(i)).second && !header_[i].empty()) {
          return InvalidArgument(Where() + ": column " + Quote(header_[i]) +
                                 " appears twice in the header");
        }
      }
      for (const auto& name : required) {
        if (!columns_.count(name)) {
          std::string have;
          for (const auto& h : header_) have += (have.empty() ? "" : ", ") + h;
          return InvalidArgument(Where() + ": missing column " + Quote(name) +
                                 " (the header has: " + have + ")");
        }
      }
      return Status::Ok();
    }
    return InvalidArgument(source_ + ": empty file (expected a header line naming the columns)");
  }

  // The next non-blank data row, or false at the end.
  StatusOr<bool> Next() {
    std::string_view line;
    while (NextLine(&line)) {
      if (Trim(line).empty()) continue;
      if (!SplitCsvLine(line, &row_)) return Unterminated();
      if (row_.size() != header_.size()) {
        return InvalidArgument(Where() + ": expected " + std::to_string(header_.size()) +
                               " fields (as the header), got " + std::to_string(row_.size()));
      }
      return true;
    }
    return false;
  }

  bool Has(const std::string& column) const { return columns_.count(column) > 0; }
  // The trimmed cell of `column` in the current row ("" if the column is absent).
  std::string_view Cell(const std::string& column) const {
    auto it = columns_.find(column);
    return it == columns_.end() ? std::string_view() : Trim(row_[size_t(it->second)]);
  }
  int line() const { return line_; }
  std::string Where() const { return source_ + ":" + std::to_string(line_); }
  Status Unterminated() const { return InvalidArgument(Where() + ": unterminated quoted field"); }
  Status Bad(const std::string& column, const std::string& expected) const {
    return InvalidArgument(Where() + ": column " + Quote(column) + ": expected " + expected +
                           ", got " + Quote(Cell(column)));
  }

  // A whole number in [lo, hi], written as an integer or a whole decimal.
  StatusOr<int64_t> Whole(const std::string& column, int64_t lo, int64_t hi) const {
    const std::string_view s = Cell(column);
    const std::string expected =
        "a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (s.empty()) return Bad(column, expected);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      double d = 0;
      auto [pd, ecd] = std::from_chars(s.data(), s.data() + s.size(), d);
      if (ecd != std::errc() || pd != s.data() + s.size() || !std::isfinite(d) ||
          d != std::floor(d) || std::abs(d) > 9e15) {
        return Bad(column, expected);
      }
      v = static_cast<int64_t>(d);
    }
    if (v < lo || v > hi) return Bad(column, expected);
    return v;
  }

 private:
  bool NextLine(std::string_view* line) {
    if (pos_ >= text_.size()) return false;
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    *line = text_.substr(pos_, end - pos_);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    pos_ = end + 1;
    ++line_;
    return true;
  }

  std::string_view text_;
  std::string source_;
  size_t pos_ = 0;
  int line_ = 0;
  std::vector<std::string> header_;
  std::map<std::string, int, std::less<>> columns_;
  std::vector<std::string> row_;
};

#define ORRERY_ASSIGN_OR_RETURN_IMPL(var, expr, tmp) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  var = *std::move(tmp)
#define ORRERY_CONCAT2(a, b) a##b
#define ORRERY_CONCAT(a, b) ORRERY_CONCAT2(a, b)
#define ASSIGN_OR_RETURN(var, expr) \
  ORRERY_ASSIGN_OR_RETURN_IMPL(var, expr, ORRERY_CONCAT(_st_or_, __LINE__))

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound(path + ": cannot open the trace file");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size > kMaxTraceFileBytes) {
    return InvalidArgument(path + ": file is larger than 1 GiB; is this a trace CSV?");
  }
  f.seekg(0);
  std::string text(size_t(std::max<std::streamoff>(size, 0)), '\0');
  f.read(text.data(), size);
  if (!f) return NotFound(path + ": cannot read the trace file");
  return text;
}

}  // namespace

StatusOr<std::vector<gpu::GpuNodeSpec>> ParseNodeList(std::string_view text,
                                                      const std::string& source) {
  CsvTable t(text, source);
  ORRERY_RETURN_IF_ERROR(t.ReadHeader({"sn", "cpu_milli", "memory_mib", "gpu", "model"}));
  std::vector<gpu::GpuNodeSpec> nodes;
  std::map<std::string, int, std::less<>> first_line;
  for (;;) {
    bool more = false;
    ASSIGN_OR_RETURN(more, t.Next());
    if (!more) break;
    gpu::GpuNodeSpec n;
    n.id = std::string(t.Cell("sn"));
    if (n.id.empty()) return t.Bad("sn", "a node id");
    if (auto [it, fresh] = first_line.emplace(n.id, t.line()); !fresh) {
      return InvalidArgument(t.Where() + ": column 'sn': duplicate node id " + Quote(n.id) +
                             " (first on line " + std::to_string(it->second) + ")");
    }
    ASSIGN_OR_RETURN(n.cpu_milli, t.Whole("cpu_milli", 0, kMaxCpuMilli));
    ASSIGN_OR_RETURN(n.memory_mib, t.Whole("memory_mib", 0, kMaxMemoryMib));
    int64_t g = 0;
    ASSIGN_OR_RETURN(g, t.Whole("gpu", 0, gpu::kMaxDevicesPerNode));
    n.num_gpus = static_cast<int32_t>(g);
    const std::string_view model = t.Cell("model");
    if (!IsNan(model)) n.model = std::string(model);
    if (n.model.find('|') != std::string::npos) {
      return t.Bad("model", "one GPU model name (no '|')");
    }
    nodes.push_back(std::move(n));
  }
  if (nodes.empty()) return InvalidArgument(source + ": no nodes (only a header)");
  return nodes;
}

StatusOr<std::vector<PodRecord>> ParsePodList(std::string_view text, const std::string& source) {
  CsvTable t(text, source);
  ORRERY_RETURN_IF_ERROR(t.ReadHeader({"cpu_milli", "memory_mib", "num_gpu", "gpu_milli"}));
  std::vector<PodRecord> pods;
  for (;;) {
    bool more = false;
    ASSIGN_OR_RETURN(more, t.Next());
    if (!more) break;
    PodRecord p;
    p.line = t.line();
    p.name = std::string(t.Cell("name"));
    if (p.name.empty()) p.name = "pod-" + std::to_string(t.line());
    ASSIGN_OR_RETURN(p.cpu_milli, t.Whole("cpu_milli", 0, kMaxCpuMilli));
    ASSIGN_OR_RETURN(p.memory_mib, t.Whole("memory_mib", 0, kMaxMemoryMib));
    int64_t v = 0;
    ASSIGN_OR_RETURN(v, t.Whole("num_gpu", 0, gpu::kMaxDevicesPerNode));
    p.num_gpu = static_cast<int32_t>(v);
    ASSIGN_OR_RETURN(v, t.Whole("gpu_milli", 0, gpu::kMilliPerGpu));
    p.gpu_milli = static_cast<int32_t>(v);
    if (p.num_gpu == 0 && p.gpu_milli != 0) {
      return t.Bad("gpu_milli", "0 when num_gpu is 0");
    }
    if (p.num_gpu == 1 && p.gpu_milli == 0) {
      return t.Bad("gpu_milli", "a share in [1, 1000] when num_gpu is 1");
    }
    if (p.num_gpu > 1 && p.gpu_milli != gpu::kMilliPerGpu) {
      return t.Bad("gpu_milli", "1000 when num_gpu > 1 (multi-GPU pods take whole devices)");
    }
    const std::string_view spec = t.Cell("gpu_spec");
    if (!IsNan(spec)) p.gpu_spec = std::string(spec);
    pods.push_back(std::move(p));
  }
  if (pods.empty()) return InvalidArgument(source + ": no pods (only a header)");
  return pods;
}

StatusOr<std::vector<gpu::GpuNodeSpec>> ReadNodeList(const std::string& path) {
  std::string text;
  ASSIGN_OR_RETURN(text, ReadFile(path));
  return ParseNodeList(text, path);
}

StatusOr<std::vector<PodRecord>> ReadPodList(const std::string& path) {
  std::string text;
  ASSIGN_OR_RETURN(text, ReadFile(path));
  return ParsePodList(text, path);
}

}  // namespace orrery::io
