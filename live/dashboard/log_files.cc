#include "live/dashboard/log_files.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace orrery::live::dashboard {

namespace fs = std::filesystem;

namespace {

int64_t ModifiedMs(const fs::path& p) {
  std::error_code ec;
  const auto t = fs::last_write_time(p, ec);
  if (ec) return 0;
  // g++ 12 has no clock_cast: shift by the two clocks' "now".
  const auto sys = std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(
                       t - fs::file_time_type::clock::now());
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<v1::NodeLogFile> ListLogFiles(const std::string& dir,
                                          const std::function<bool(const std::string&)>& mine) {
  std::vector<v1::NodeLogFile> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (!mine(name)) continue;
    v1::NodeLogFile f;
    f.set_name(name);
    f.set_size(static_cast<int64_t>(it->file_size(ec)));
    f.set_modified_unix_ms(ModifiedMs(it->path()));
    if (name.rfind("worker-", 0) == 0) {
      f.set_kind("worker");
      // worker-<worker id>-<job id>-<pid>.out|.err[.N]
      const size_t a = name.find('-', 7);
      const size_t z = name.rfind('-');
      if (a != std::string::npos && z != std::string::npos && z > a) {
        const std::string job = name.substr(a + 1, z - a - 1);
        if (job != "none") f.set_job_id(job);
      }
    } else {
      f.set_kind("daemon");
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  return out;
}

StatusOr<v1::ReadNodeLogReply> ReadLogFile(const std::string& dir,
                                           const std::function<bool(const std::string&)>& mine,
                                           const v1::ReadNodeLogRequest& req) {
  const std::string& name = req.name();
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return InvalidArgument("name: expected a log file name from the list, not a path");
  }
  if (req.limit() < 1 || req.limit() > kMaxLogReadBytes) {
    return InvalidArgument("limit: expected 1.." + std::to_string(kMaxLogReadBytes) + " bytes");
  }
  if (req.offset() < 0) return InvalidArgument("offset: expected >= 0");
  if (req.tail() < 0 || req.tail() > 1000000) return InvalidArgument("tail: expected 0..1000000");
  const fs::path path = fs::path(dir) / name;
  std::error_code ec;
  if (!mine(name) || !fs::is_regular_file(path, ec)) {
    return NotFound("no log file '" + name + "' here");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open log file '" + name + "'");
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  int64_t start = std::min(req.offset(), size);
  int64_t len = std::min<int64_t>(req.limit(), size - start);
  if (req.tail() > 0) {  // the last `tail` lines within the last `limit` bytes
    start = std::max<int64_t>(0, size - req.limit());
    len = size - start;
  }
  std::string data(static_cast<size_t>(len), '\0');
  in.seekg(start);
  in.read(data.data(), len);
  data.resize(static_cast<size_t>(in.gcount()));
  if (req.tail() > 0) {
    size_t pos = data.size(), cut = 0;
    if (pos > 0 && data[pos - 1] == '\n') --pos;  // a final newline ends the last line
    for (int n = 0; pos > 0;) {
      const size_t nl = data.rfind('\n', pos - 1);
      if (nl == std::string::npos) break;  // the whole chunk is within the last lines
      if (++n == req.tail()) {
        cut = nl + 1;
        break;
      }
      pos = nl;
    }
    start += static_cast<int64_t>(cut);
    data.erase(0, cut);
  }
  v1::ReadNodeLogReply r;
  r.set_offset(start);
  r.set_next_offset(start + static_cast<int64_t>(data.size()));
  r.set_size(size);
  r.set_truncated(r.next_offset() < size);
  if (!req.search().empty()) {
    const std::string needle = Lower(req.search());
    std::string kept;
    size_t pos = 0;
    while (pos < data.size()) {
      size_t nl = data.find('\n', pos);
      const size_t end = nl == std::string::npos ? data.size() : nl + 1;
      const std::string line = data.substr(pos, end - pos);
      if (Lower(line).find(needle) != std::string::npos) kept += line;
      pos = end;
    }
    data = std::move(kept);
  }
  r.set_text(std::move(data));
  return r;
}

}  // namespace orrery::live::dashboard
