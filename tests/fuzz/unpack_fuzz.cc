// libFuzzer target for the package unpacker (live/common/package_unpack.cc; DESIGN section 12: every
// parser of outside input is fuzzed). Each input is unpacked into a fresh `<run>/dest` next to
// a sentinel file and directory; whatever the input, the unpacker must return (an error is
// fine) and afterwards
//   - the sentinel file still holds "sentinel" with mode 0600, the sentinel dir is empty, 0700;
//   - `<run>` holds nothing but dest and the sentinels (nothing was written beside dest);
//   - nothing under dest has a setuid, setgid or sticky bit.
// A violation aborts, which libFuzzer (clang) and the corpus replayer (replay_main.cc, GCC, in
// ctest) both report as a failure. Seeds: tests/fuzz/corpus/unpack/ (crafted packages; their
// link targets are relative, so a broken unpacker writes into the run dir, not the system).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "live/common/runtime_env.h"

namespace {

namespace fs = std::filesystem;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "unpack fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

const fs::path& Base() {
  static const fs::path base = [] {
    std::string t = (fs::temp_directory_path() / "orrery_unpack_fuzz_XXXXXX").string();
    Check(::mkdtemp(t.data()) != nullptr, "cannot create a temp dir");
    return fs::path(t);
  }();
  return base;
}

mode_t ModeOf(const fs::path& p) {
  struct stat st {};
  Check(::lstat(p.c_str(), &st) == 0, "a sentinel is gone");
  return st.st_mode;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path run = Base() / "run";
  std::error_code ec;
  fs::remove_all(run, ec);
  fs::create_directories(run / "sentinel_dir");
  ::chmod((run / "sentinel_dir").c_str(), 0700);
  std::ofstream(run / "sentinel") << "sentinel";
  ::chmod((run / "sentinel").c_str(), 0600);

  (void)orrery::live::UnpackPackage(
      std::string_view(reinterpret_cast<const char*>(data), size), run / "dest");

  std::ifstream in(run / "sentinel", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  Check(text.str() == "sentinel", "the sentinel file was written through");
  Check((ModeOf(run / "sentinel") & 07777) == 0600, "the sentinel file's mode changed");
  Check(S_ISDIR(ModeOf(run / "sentinel_dir")), "the sentinel dir was replaced");
  Check((ModeOf(run / "sentinel_dir") & 07777) == 0700, "the sentinel dir's mode changed");
  Check(fs::is_empty(run / "sentinel_dir"), "something was written into the sentinel dir");
  for (const auto& e : fs::directory_iterator(run)) {
    const std::string name = e.path().filename().string();
    Check(name == "dest" || name == "sentinel" || name == "sentinel_dir",
          "something was written beside dest");
  }
  if (fs::is_directory(fs::symlink_status(run / "dest"))) {
    for (auto it = fs::recursive_directory_iterator(run / "dest"); it != fs::end(it); ++it) {
      Check((ModeOf(it->path()) & 07000) == 0, "a setuid, setgid or sticky bit was kept");
    }
  }
  return 0;
}
