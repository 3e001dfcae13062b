// The field-reader kit (core/io/yaml_fields.h, json_fields.h): every error names the file, the
// line (or the override), the field path and what was expected.
#include "core/io/yaml_fields.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/io/json_fields.h"

namespace orrery::io {
namespace {

const Schema& TestSchema() {
  static const Schema kValue{};
  static const Schema kDict{Schema::Kind::kDict, {}, &kValue};
  static const Schema kItem{Schema::Kind::kMap, {{"name", &kValue}, {"resources", &kDict}}};
  static const Schema kList{Schema::Kind::kList, {}, &kItem};
  static const Schema kSection{Schema::Kind::kMap, {{"rate", &kValue}, {"size", &kValue}}};
  static const Schema kRoot{Schema::Kind::kMap, {{"section", &kSection}, {"items", &kList}}};
  return kRoot;
}

FieldContext Ctx() {
  FieldContext c;
  c.file = "f.yaml";
  c.dir = ".";
  return c;
}

TEST(YamlFieldsTest, GettersNameFileLineFieldAndWhatWasExpected) {
  const FieldContext c = Ctx();
  const YAML::Node root = YAML::Load("section:\n  rate: fast\n  size: 2GiB\n");
  MapView top;
  ASSERT_TRUE(MapView::Open(c, Field{root, ""}, TestSchema(), &top).ok());
  MapView section;
  ASSERT_TRUE(MapView::Open(c, *top.Get("section"), *TestSchema().Field("section"), &section).ok());
  double rate = 0;
  EXPECT_EQ(ReadRate(c, *section.Get("rate"), &rate).message(),
            "f.yaml:2: section.rate: expected a rate > 0 (per second, or a string like '100/s', "
            "'5/ms', '60/m'), got 'fast'");
  uint64_t size = 0;
  ASSERT_TRUE(ReadSize(c, *section.Get("size"), &size).ok());
  EXPECT_EQ(size, 2ull << 30);
  int64_t n = 0;
  EXPECT_EQ(ReadInt(c, *section.Get("size"), 0, 10, &n).message(),
            "f.yaml:3: section.size: expected a whole number in [0, 10], got '2GiB'");
}

TEST(YamlFieldsTest, UnknownAndDuplicateKeysAreRefused) {
  const FieldContext c = Ctx();
  MapView m;
  const YAML::Node typo = YAML::Load("section: {}\nitem: []\n");
  EXPECT_EQ(MapView::Open(c, Field{typo, ""}, TestSchema(), &m).message(),
            "f.yaml:2: item: unknown key (expected one of: section, items)");
  const YAML::Node dup = YAML::Load("section: {}\nsection: {}\n");
  EXPECT_EQ(MapView::Open(c, Field{dup, ""}, TestSchema(), &m).message(),
            "f.yaml:2: section: duplicate key");
}

TEST(YamlFieldsTest, OverridesAreCheckedAgainstTheSchemaAndNamedInErrors) {
  FieldContext c = Ctx();
  YAML::Node root = YAML::Load("section: {rate: 1/s}\nitems:\n  - {name: a}\n");
  EXPECT_TRUE(ApplyOverride(&c, root, TestSchema(), "section.rate=oops").ok());
  EXPECT_TRUE(ApplyOverride(&c, root, TestSchema(), "items.0.resources.CPU=2").ok());
  EXPECT_EQ(ApplyOverride(&c, root, TestSchema(), "section.rat=1").message(),
            "f.yaml (--set section.rat=1): section.rat: unknown key (expected one of: rate, "
            "size)");
  EXPECT_EQ(ApplyOverride(&c, root, TestSchema(), "items.3.name=b").message(),
            "f.yaml (--set items.3.name=b): items: index 3 is out of range (the list has 1 "
            "entries)");
  EXPECT_EQ(ApplyOverride(&c, root, TestSchema(), "section=3",
                          OverrideOptions{.sections_whole = true})
                .message(),
            "f.yaml (--set section=3): section: is a section; set its keys");
  // A later error about an overridden value names the override, not a line.
  double rate = 0;
  const Field f{root["section"]["rate"], "section.rate"};
  EXPECT_EQ(ReadRate(c, f, &rate).message().rfind("f.yaml (--set section.rate=oops): ", 0), 0u);
}

TEST(YamlFieldsTest, ResourcesGoThroughResourceRequestRules) {
  const FieldContext c = Ctx();
  const YAML::Node root = YAML::Load("resources: {CPU: 2, GPU: 1.5}\n");
  ResourceRequest r;
  const Status st = ReadResources(c, Field{root["resources"], "resources"}, &r);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("f.yaml:1: "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("GPU"), std::string::npos) << st.message();
}

TEST(YamlFieldsTest, ResolvePathExpandsVariablesAndReportsMissingFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "orrery_yaml_fields_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "t.csv") << "a\n";
  FieldContext c = Ctx();
  c.dir = dir;
  setenv("ORRERY_FIELDS_TEST_DIR", dir.c_str(), 1);
  const YAML::Node root = YAML::Load("a: ${ORRERY_FIELDS_TEST_DIR}/t.csv\nb: t.csv\nc: nope.csv\n"
                                     "d: ${ORRERY_UNSET_FOR_TEST}/x\n");
  std::string out;
  ASSERT_TRUE(ResolvePath(c, Field{root["a"], "a"}, &out).ok());
  EXPECT_EQ(out, (dir / "t.csv").string());
  ASSERT_TRUE(ResolvePath(c, Field{root["b"], "b"}, &out).ok());  // relative to the file's folder
  EXPECT_EQ(out, (dir / "t.csv").string());
  EXPECT_EQ(ResolvePath(c, Field{root["c"], "c"}, &out).code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolvePath(c, Field{root["d"], "d"}, &out).message(),
            "f.yaml:4: d: environment variable ORRERY_UNSET_FOR_TEST is not set");
  std::filesystem::remove_all(dir);
}

TEST(JsonFieldsTest, GettersNamePathLineAndWhatWasExpected) {
  auto doc = JsonDocument::Parse("{\n  \"a\": {\"CPU\": -1},\n  \"b\": \"x\"\n}");
  ASSERT_TRUE(doc.ok());
  const JsonFields r(*doc);
  const JsonPath root;
  EXPECT_EQ(r.Object(doc->root(), root, {"a"}).message(),
            "b: unknown key (expected one of: a) (line 3, column 8)");
  auto q = r.Resources(doc->root()["a"], root.Key("a"));
  EXPECT_EQ(q.status().message(), "a.CPU: expected a quantity >= 0, got -1 (line 2, column 16)");
  auto n = r.Number(doc->root()["b"], root.Key("b"), 0, 1);
  EXPECT_EQ(n.status().message(), "b: expected a number, got \"x\" (line 3, column 8)");
}

}  // namespace
}  // namespace orrery::io
