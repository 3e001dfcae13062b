// Runtime-env specs and packages (live/common/runtime_env.h) without daemons: parsing JSON and YAML
// (every bad-input case names the origin, the field and what was expected), merging, the install
// hash, canonical JSON, and deterministic, content-addressed working_dir packages.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "live/head/package_store.h"
#include "live/rpc/rpc_util.h"
#include "live/common/runtime_env.h"

namespace orrery::live {
namespace {

namespace fs = std::filesystem;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::path(::testing::TempDir()) / "renv_unit_XXXXXX").string();
    if (::mkdtemp(t.data()) != nullptr) dir_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& path() const { return dir_; }
  fs::path Write(const std::string& rel, const std::string& text, int mode = 0644) const {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

 private:
  fs::path dir_;
};

std::string Error(std::string_view json) {
  auto e = ParseRuntimeEnvJson(json, "--runtime-env-json");
  return e.ok() ? "(parsed)" : e.status().message();
}
std::string YamlError(std::string_view yaml) {
  auto e = ParseRuntimeEnvYaml(yaml, "env.yaml");
  return e.ok() ? "(parsed)" : e.status().message();
}

// Every field parses; an empty text is the empty env.
TEST(RuntimeEnvParse, AllFieldsFromJson) {
  auto e = ParseRuntimeEnvJson(
      R"({"env_vars": {"A": "1", "B": "two"}, "working_dir": "./wd",
          "setup": ["python3 -m venv .", "bin/pip --version"], "setup_timeout_s": 30})",
      "x");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->env_vars, (std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}}));
  EXPECT_EQ(e->working_dir, "./wd");
  EXPECT_EQ(e->setup, (std::vector<std::string>{"python3 -m venv .", "bin/pip --version"}));
  EXPECT_EQ(e->setup_timeout_s, 30);
  auto empty = ParseRuntimeEnvJson("  \n", "x");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// Table: each bad input names the origin, the field and what was expected.
TEST(RuntimeEnvParse, BadJsonNamesOriginFieldAndExpectation) {
  struct Case {
    const char* json;
    std::vector<const char*> want;
  };
  const Case cases[] = {
      {"{\"env_vars\": {\"A\": \"1\"},\n \"setup\": [",
       {"--runtime-env-json:2:", "malformed JSON"}},
      {"[1, 2]", {"--runtime-env-json", "expected an object", "got a list"}},
      {R"({"env_var": {}})",
       {"env_var: unknown field", "allowed: env_vars, working_dir, setup, setup_timeout_s"}},
      {R"({"env_vars": ["A=1"]})", {"env_vars: expected an object", "got a list"}},
      {R"({"env_vars": {"A": 1}})", {"env_vars.A: expected a string, got a number"}},
      {R"({"env_vars": {"A=B": "x"}})", {"env_vars.A=B: expected a variable name"}},
      {R"({"working_dir": 3})", {"working_dir: expected a directory path", "got a number"}},
      {R"({"working_dir": ""})", {"working_dir: expected a directory path", "empty string"}},
      {R"({"setup": "make"})", {"setup: expected a list of shell commands", "got a string"}},
      {R"({"setup": ["ok", 5]})", {"setup[1]: expected a shell command", "got a number"}},
      {R"({"setup_timeout_s": -1})", {"setup_timeout_s: expected a number of seconds in (0, 86400]"}},
      {R"({"setup_timeout_s": 1e300})", {"setup_timeout_s: expected a number of seconds in (0, 86400]"}},
      {R"({"setup_timeout_s": "10"})", {"setup_timeout_s: expected a number", "got a string"}},
  };
  for (const auto& c : cases) {
    const std::string err = Error(c.json);
    for (const char* w : c.want) EXPECT_CONTAINS(err, w) << " for " << c.json;
    EXPECT_CONTAINS(err, "--runtime-env-json");
  }
}

// YAML errors carry file:line of the offending field.
TEST(RuntimeEnvParse, YamlFieldsAndLineNumbers) {
  auto e = ParseRuntimeEnvYaml(
      "env_vars:\n  A: \"1\"\n  B: two\nworking_dir: wd\nsetup:\n  - echo hi\nsetup_timeout_s: "
      "2.5\n",
      "env.yaml");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->env_vars.at("A"), "1");
  EXPECT_EQ(e->env_vars.at("B"), "two");
  EXPECT_EQ(e->working_dir, "wd");
  EXPECT_EQ(e->setup, std::vector<std::string>{"echo hi"});
  EXPECT_EQ(e->setup_timeout_s, 2.5);

  EXPECT_CONTAINS(YamlError("env_vars:\n  A: x\nsetpu:\n  - a\n"),
                  "env.yaml:3: setpu: unknown field (allowed:");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: 5\n"), "env.yaml:2: env_vars.A: expected a string");
  EXPECT_CONTAINS(YamlError("setup:\n  - ok\n  - [nested]\n"), "env.yaml:3: setup[1]:");
  EXPECT_CONTAINS(YamlError("setup: [unclosed\n"), "env.yaml:");
  EXPECT_CONTAINS(YamlError("setup: [unclosed\n"), "malformed YAML");
  // YAML takes raw bytes; the env travels as JSON, so text that is not UTF-8 is refused here
  // (it used to parse, then crash the canonical form: found by runtime_env_json_fuzz).
  // A number JSON cannot hold is an error, not an exception (it terminated the CLI: fuzzing).
  EXPECT_CONTAINS(Error("77e777"), "--runtime-env-json: malformed JSON (");
  EXPECT_CONTAINS(Error(R"({"setup_timeout_s": 1e999})"), "number overflow");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: caf\xe9\n"),
                  "env.yaml:2: not UTF-8 text (byte 0xE9 at offset 18)");
  // Ill-formed UTF-8 that a lead-and-continuation check let through: an overlong "\xC1\x9E"
  // in working_dir parsed, then terminated the canonical JSON (runtime_env_json_fuzz, issue 18
  // count run). Overlong, surrogate and past-U+10FFFF forms are refused; well-formed text passes.
  EXPECT_CONTAINS(YamlError("working_dir: \"pkg:/a\xC1\x9E" "b\"\n"),
                  "env.yaml:1: not UTF-8 text (byte 0xC1 at offset 20)");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: \xE0\x80\xAF\n"), "not UTF-8 text (byte 0xE0");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: \xED\xA0\x80\n"), "not UTF-8 text (byte 0xED");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: \xF4\x90\x80\x80\n"), "not UTF-8 text (byte 0xF4");
  EXPECT_CONTAINS(YamlError("env_vars:\n  A: \xF5\x80\x80\x80\n"), "not UTF-8 text (byte 0xF5");
  EXPECT_TRUE(ParseRuntimeEnvYaml("env_vars:\n  A: \"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"\n",
                                  "env.yaml")
                  .ok());
}

// Files: .json as JSON, others as YAML; a missing file is named.
TEST(RuntimeEnvParse, LoadFileByExtension) {
  TempDir t;
  auto j = LoadRuntimeEnvFile(t.Write("e.json", R"({"env_vars": {"K": "v"}})"));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->env_vars.at("K"), "v");
  auto y = LoadRuntimeEnvFile(t.Write("e.yaml", "working_dir: /x\n"));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->working_dir, "/x");
  auto bad = LoadRuntimeEnvFile(t.Write("bad.json", "{\"x\": 1}"));
  ASSERT_FALSE(bad.ok());
  EXPECT_CONTAINS(bad.status().message(), "bad.json: x: unknown field");
  auto missing = LoadRuntimeEnvFile(t.path() / "nope.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_CONTAINS(missing.status().message(), "nope.yaml");
}

// Task fields override the job's; env_vars merge key by key.
TEST(RuntimeEnvMerge, TaskOverridesJobAndEnvVarsMerge) {
  RuntimeEnv job{{{"A", "job"}, {"B", "job"}}, "pkg://job", {"job setup"}, 10};
  RuntimeEnv task{{{"B", "task"}, {"C", "task"}}, "", {}, 0};
  RuntimeEnv m = MergeRuntimeEnv(job, task);
  EXPECT_EQ(m.env_vars,
            (std::map<std::string, std::string>{{"A", "job"}, {"B", "task"}, {"C", "task"}}));
  EXPECT_EQ(m.working_dir, "pkg://job");  // not set by the task: the job's
  EXPECT_EQ(m.setup, std::vector<std::string>{"job setup"});
  task.working_dir = "pkg://task";
  task.setup = {"task setup"};
  task.setup_timeout_s = 3;
  m = MergeRuntimeEnv(job, task);
  EXPECT_EQ(m.working_dir, "pkg://task");
  EXPECT_EQ(m.setup, std::vector<std::string>{"task setup"});
  EXPECT_EQ(m.setup_timeout_s, 3);
}

// ToJson is canonical and round-trips; the install hash ignores env_vars and the timeout.
TEST(RuntimeEnvHash, CanonicalJsonAndInstallHash) {
  RuntimeEnv e{{{"Z", "1"}, {"A", "2"}}, "pkg://w", {"a", "b"}, 5};
  const std::string j = ToJson(e);
  EXPECT_EQ(j, R"({"env_vars":{"A":"2","Z":"1"},"setup":["a","b"],"setup_timeout_s":5.0,)"
               R"("working_dir":"pkg://w"})");
  auto back = ParseRuntimeEnvJson(j, "x");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, e);
  EXPECT_EQ(ToJson(RuntimeEnv{}), "");

  RuntimeEnv vars_only{{{"A", "1"}}, "", {}, 0};
  EXPECT_EQ(InstallHash(vars_only), "");  // nothing to install
  RuntimeEnv other_vars = e;
  other_vars.env_vars = {{"Q", "9"}};
  other_vars.setup_timeout_s = 99;
  EXPECT_EQ(InstallHash(e), InstallHash(other_vars));
  EXPECT_EQ(InstallHash(e).size(), 32u);
  RuntimeEnv other_setup = e;
  other_setup.setup = {"a", "c"};
  EXPECT_NE(InstallHash(e), InstallHash(other_setup));
  RuntimeEnv other_dir = e;
  other_dir.working_dir = "pkg://v";
  EXPECT_NE(InstallHash(e), InstallHash(other_dir));
  // Setup ["ab"] and ["a", "b"] are different installs.
  RuntimeEnv joined = e;
  joined.setup = {"ab"};
  EXPECT_NE(InstallHash(e), InstallHash(joined));
}

TEST(RuntimeEnvHash, Sha256KnownAnswerAndUris) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string h = Sha256Hex("x");
  EXPECT_EQ(PackageUri(h), "pkg://" + h + ".pkg");
  auto back = PackageHashOf(PackageUri(h));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
  EXPECT_FALSE(IsPackageUri("pkg://nothex.pkg"));
  EXPECT_FALSE(IsPackageUri("/some/dir"));
}

// The same tree gives the same bytes and hash whatever the timestamps; contents, names and modes
// change it.
TEST(RuntimeEnvPackage, DeterministicContentHash) {
  TempDir a, b;
  for (const TempDir* t : {&a, &b}) {
    t->Write("z.txt", "zzz");
    t->Write("sub/a.py", "print(1)\n");
    t->Write("run.sh", "#!/bin/sh\necho hi\n", 0755);
    fs::create_directories(t->path() / "empty");
  }
  // Different mtimes and creation order must not matter.
  fs::last_write_time(b.path() / "z.txt", fs::file_time_type::clock::now() - std::chrono::hours(5));
  auto pa = PackageDirectory(a.path());
  auto pb = PackageDirectory(b.path());
  ASSERT_TRUE(pa.ok()) << pa.status().ToString();
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(pa->sha256, pb->sha256);
  EXPECT_EQ(pa->bytes, pb->bytes);
  EXPECT_EQ(pa->sha256, Sha256Hex(pa->bytes));
  EXPECT_EQ(pa->content_bytes, 3u + 9u + 18u);

  b.Write("z.txt", "zzZ");
  EXPECT_NE(PackageDirectory(b.path())->sha256, pa->sha256);
  b.Write("z.txt", "zzz");
  ::chmod((b.path() / "z.txt").c_str(), 0600);
  EXPECT_NE(PackageDirectory(b.path())->sha256, pa->sha256);  // mode is content
}

// Unpacking recreates files, modes, empty dirs and symlinks.
TEST(RuntimeEnvPackage, UnpackRecreatesTheTree) {
  TempDir src, dst;
  src.Write("sub/a.txt", "hello");
  src.Write("run.sh", "#!/bin/sh\n", 0755);
  fs::create_directories(src.path() / "empty");
  fs::create_symlink("sub/a.txt", src.path() / "link");
  auto p = PackageDirectory(src.path());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(UnpackPackage(p->bytes, dst.path() / "out").ok());
  const fs::path out = dst.path() / "out";
  std::ifstream in(out / "sub/a.txt");
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "hello");
  EXPECT_TRUE(fs::is_directory(out / "empty"));
  EXPECT_TRUE(fs::is_symlink(out / "link"));
  struct stat st {};
  ASSERT_EQ(::stat((out / "run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  // Packaging the unpacked tree gives the same package.
  EXPECT_EQ(PackageDirectory(out)->sha256, p->sha256);
}

// Paths that would leave the destination, and garbage, are refused.
TEST(RuntimeEnvPackage, UnpackRefusesEscapesAndGarbage) {
  TempDir t;
  auto esc = UnpackPackage("ORRPKG1\nf 644 1 ../evil\nx", t.path() / "o");
  ASSERT_FALSE(esc.ok());
  EXPECT_CONTAINS(esc.message(), "leaves the directory");
  auto abs = UnpackPackage("ORRPKG1\nf 644 1 /tmp/evil\nx", t.path() / "o");
  EXPECT_FALSE(abs.ok());
  auto via_link = UnpackPackage(
      "ORRPKG1\nl 777 4 d\n/etc"
      "f 644 1 d/passwd\nx",
      t.path() / "o");
  ASSERT_FALSE(via_link.ok());
  EXPECT_CONTAINS(via_link.message(), "through a symlink");
  EXPECT_EQ(UnpackPackage("not a package", t.path() / "o").code(), StatusCode::kDataLoss);
  EXPECT_EQ(UnpackPackage("ORRPKG1\nf 644 99 short\nx", t.path() / "o").code(),
            StatusCode::kDataLoss);
}

// Regression (issue 12.6): an entry named like an earlier link is refused instead of writing
// through it, and the link's target keeps its bytes.
TEST(RuntimeEnvPackage, UnpackNeverWritesThroughALinkOfTheSameName) {
  TempDir t;
  const fs::path target = t.Write("target", "precious", 0600);
  auto s = UnpackPackage("ORRPKG1\nl 777 9 evil\n../targetf 644 5 evil\nowned", t.path() / "o");
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "evil would replace an existing entry");
  std::ifstream in(target);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "precious");
}

// Regression (issue 12.6): a directory entry named like an earlier link does not chmod the
// link's target (it went 0700 -> 0777).
TEST(RuntimeEnvPackage, UnpackNeverChmodsThroughALink) {
  TempDir t;
  fs::create_directories(t.path() / "private");
  ::chmod((t.path() / "private").c_str(), 0700);
  auto s = UnpackPackage("ORRPKG1\nl 777 10 d\n../privated 777 0 d\n", t.path() / "o");
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "would replace an existing entry");
  struct stat st {};
  ASSERT_EQ(::stat((t.path() / "private").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

// Regression (issue 12.6): setuid, setgid and sticky bits are dropped; permission bits stay.
TEST(RuntimeEnvPackage, UnpackDropsSetuidSetgidAndSticky) {
  TempDir t;
  ASSERT_TRUE(UnpackPackage("ORRPKG1\nf 4755 1 suid\nxd 3775 0 dir\nf 2640 1 dir/sgid\ny",
                            t.path() / "o")
                  .ok());
  const auto mode = [&](const char* rel) {
    struct stat st {};
    EXPECT_EQ(::lstat((t.path() / "o" / rel).c_str(), &st), 0) << rel;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode("suid"), 0755u);
  EXPECT_EQ(mode("dir"), 0775u);
  EXPECT_EQ(mode("dir/sgid"), 0640u);
}

// Crafted packages: a NUL in a path, a second entry of one name, a file before its directory.
TEST(RuntimeEnvPackage, UnpackRefusesCraftedEntries) {
  TempDir t;
  using namespace std::string_literals;
  EXPECT_CONTAINS(UnpackPackage("ORRPKG1\nf 644 1 ..\0/x\nx"s, t.path() / "a").message(),
                  "bad package entry");
  EXPECT_CONTAINS(UnpackPackage("ORRPKG1\nf 644 1 f\nxf 644 1 f\ny", t.path() / "b").message(),
                  "f would replace an existing entry");
  EXPECT_EQ(UnpackPackage("ORRPKG1\nf 644 1 nodir/x\nx", t.path() / "c").code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(UnpackPackage("ORRPKG1\nl 777 0 empty\n", t.path() / "d").code(),
            StatusCode::kDataLoss);
  EXPECT_CONTAINS(UnpackPackage("ORRPKG1\nf 644 1 f\nxf 644 1 f/g\ny", t.path() / "e").message(),
                  "through a symlink or a file");
}

// A missing dir, a file, or a tree over the limit: errors name working_dir.
TEST(RuntimeEnvPackage, BadWorkingDirs) {
  TempDir t;
  auto missing = PackageDirectory(t.path() / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_CONTAINS(missing.status().message(), "working_dir: ");
  EXPECT_CONTAINS(missing.status().message(), "does not exist");
  auto file = PackageDirectory(t.Write("f.txt", "x"));
  ASSERT_FALSE(file.ok());
  EXPECT_CONTAINS(file.status().message(), "is not a directory");
  t.Write("big/a", std::string(600, 'a'));
  t.Write("big/b", std::string(600, 'b'));
  auto big = PackageDirectory(t.path() / "big", 1000);
  ASSERT_FALSE(big.ok());
  EXPECT_CONTAINS(big.status().message(), "working_dir: ");
  EXPECT_CONTAINS(big.status().message(), "larger than the limit of 1000 bytes");
  EXPECT_TRUE(PackageDirectory(t.path() / "big", 1200).ok());
}

// Regression (issue 12.1): JSON and YAML envs nested past the limit are refused naming it (a
// 100,000-level document used to reach recursive code); 64 levels are within it.
TEST(RuntimeEnvParse, NestingDeeperThanTheLimitIsRefused) {
  const auto json_nested = [](int depth) {
    std::string s;
    for (int i = 0; i < depth - 1; ++i) s += R"({"a": )";
    s += R"({"env_vars": 1})";
    return s + std::string(static_cast<size_t>(depth - 1), '}');
  };
  EXPECT_CONTAINS(Error(json_nested(100000)), "--runtime-env-json: nesting deeper than 64 levels");
  EXPECT_CONTAINS(Error(json_nested(65)), "nesting deeper than 64 levels");
  EXPECT_CONTAINS(Error(json_nested(64)), "unknown field");
  const std::string flow = "setup: " + std::string(100000, '[') + std::string(100000, ']');
  EXPECT_CONTAINS(YamlError(flow), "nesting deeper than 64 levels");
  std::string block = "setup:\n";
  for (int i = 0; i < 70; ++i) block += std::string(static_cast<size_t>(2 + 2 * i), ' ') + "- \n";
  EXPECT_CONTAINS(YamlError(block), "env.yaml: nesting deeper than 64 levels (line ");
  EXPECT_CONTAINS(YamlError("setup: " + std::string(63, '[') + std::string(63, ']')),
                  "setup[0]: expected a shell command");
}

// The head's store keeps only bytes that hash to their name.
TEST(PackageStoreTest, PutVerifiesTheHash) {
  TempDir t;
  auto store = PackageStore::Open(t.path() / "packages");
  ASSERT_TRUE(store.ok());
  const std::string data = "ORRPKG1\n";
  const std::string h = Sha256Hex(data);
  EXPECT_FALSE((*store)->Has(h));
  auto wrong = (*store)->Put(Sha256Hex("other"), data);
  ASSERT_FALSE(wrong.ok());
  EXPECT_CONTAINS(wrong.message(), "hash to");
  ASSERT_TRUE((*store)->Put(h, data).ok());
  uint64_t n = 0;
  EXPECT_TRUE((*store)->Has(h, &n));
  EXPECT_EQ(n, data.size());
  EXPECT_EQ(*(*store)->Read(h), data);
  EXPECT_EQ((*store)->Read(Sha256Hex("absent")).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE((*store)->Put("../../etc", data).ok());
}

// The head's package RPCs alone, on an in-process server.
class PackageOnlyHead : public v1::HeadService::CallbackService {
 public:
  explicit PackageOnlyHead(PackageService* p) : p_(p) {}
  grpc::ServerWriteReactor<v1::PackageChunk>* DownloadPackage(
      grpc::CallbackServerContext* ctx, const v1::DownloadPackageRequest* req) override {
    return p_->Download(ctx, req);
  }

 private:
  PackageService* p_;
};

long ResidentKiB() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// How many of this process's file descriptors are open on a path containing `name`.
size_t OpenFdsOn(const std::string& name) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(e.path(), ec).string().find(name) != std::string::npos) ++n;
  }
  return n;
}

// Regression (issue 12.3): eight DownloadPackage streams of a 50 MB package that are never read
// took the head from 84 to 368 MB. With flow control each stream holds about one chunk: the
// process (server and client here) grows by far less than one package, and the streams' files
// are closed once they are canceled.
TEST(PackageServiceTest, UnreadDownloadsStayBoundedAndReleaseTheirFiles) {
  TempDir t;
  auto svc = PackageService::Create(
      PackageServiceOptions{.token = "t", .session_dir = t.path().string()});
  ASSERT_TRUE(svc.ok());
  auto store = PackageStore::Open(t.path() / "packages");
  ASSERT_TRUE(store.ok());
  std::string pkg(kPackageHeader);
  pkg += "f 644 52428800 big\n";
  pkg.resize(pkg.size() + (size_t{50} << 20), 'x');
  const std::string sha = Sha256Hex(pkg);
  ASSERT_TRUE((*store)->Put(sha, pkg).ok());
  std::string().swap(pkg);

  PackageOnlyHead head(svc->get());
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&head);
  auto server = b.BuildAndStart();
  ASSERT_NE(port, 0);
  auto stub = v1::HeadService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  // One stream is read to the end: flow control must not stall a reading client.
  {
    grpc::ClientContext ctx;
    AttachToken(&ctx, "t");
    v1::DownloadPackageRequest req;
    req.set_sha256(sha);
    auto reader = stub->DownloadPackage(&ctx, req);
    v1::PackageChunk c;
    uint64_t got = 0;
    while (reader->Read(&c)) got += c.data().size();
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, (uint64_t{50} << 20) + 27);
  }
  const long before_kib = ResidentKiB();
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::PackageChunk>>> readers;
  for (int i = 0; i < 8; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    AttachToken(ctxs.back().get(), "t");
    v1::DownloadPackageRequest req;
    req.set_sha256(sha);
    readers.push_back(stub->DownloadPackage(ctxs.back().get(), req));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const long grown_mib = (ResidentKiB() - before_kib) / 1024;
  std::printf("8 unread streams of a 50 MiB package: the process grew by %ld MiB\n", grown_mib);
  EXPECT_LT(grown_mib, 150) << "unread streams should hold about a chunk each, not the package";
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
  readers.clear();
  for (int i = 0; i < 250 && OpenFdsOn(sha) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(OpenFdsOn(sha), 0u) << "a canceled stream kept its package file open";
  server->Shutdown();
  (*svc)->Stop();
}

}  // namespace
}  // namespace orrery::live
