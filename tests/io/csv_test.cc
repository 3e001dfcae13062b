// The shared readers of core/io: the CSV cell splitter (csv.h), the list-of-maps walk and
// RequireString of the field-reader kit (yaml_fields.h), and the node-type entry reader that the
// scenario loader and the autoscaler config share (autoscaler_config.h).
#include "core/io/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/io/autoscaler_config.h"
#include "core/io/yaml_fields.h"

namespace orrery::io {
namespace {

TEST(CsvTest, SplitsTrimsAndUnquotesCells) {
  struct Case {
    std::string line;
    std::vector<std::string> cells;
  };
  const std::vector<Case> cases = {
      {"a,b,c", {"a", "b", "c"}},
      {" a , b ,c ", {"a", "b", "c"}},
      {"a,,", {"a", "", ""}},
      {"", {""}},
      {R"("x,y",z)", {"x,y", "z"}},
      {R"( "say ""hi""" ,2)", {"say \"hi\"", "2"}},
      {R"(a"b,c)", {"a\"b", "c"}},  // a quote inside a cell is text
  };
  std::vector<std::string> cells = {"stale", "stale", "stale", "stale", "stale"};
  for (const Case& c : cases) {
    ASSERT_TRUE(SplitCsvLine(c.line, &cells)) << c.line;
    EXPECT_EQ(cells, c.cells) << c.line;
  }
}

TEST(CsvTest, UnterminatedQuoteIsRefused) {
  std::vector<std::string> cells;
  EXPECT_FALSE(SplitCsvLine(R"(a,"b,c)", &cells));
}

const Schema& ItemsSchema() {
  static const Schema kValue{};
  static const Schema kItem{Schema::Kind::kMap, {{"name", &kValue}, {"size", &kValue}}};
  return kItem;
}

FieldContext Ctx() {
  FieldContext c;
  c.file = "f.yaml";
  return c;
}

TEST(ForEachMapTest, VisitsEachElementInOrderAndStopsAtTheFirstError) {
  const FieldContext c = Ctx();
  const YAML::Node root = YAML::Load("- {name: a}\n- {name: b}\n- 3\n- {name: d}\n");
  std::vector<std::string> seen;
  const Status s = ForEachMap(c, Field{root, "items"}, ItemsSchema(), [&](const MapView& m) {
    std::string name;
    Field where;
    ORRERY_RETURN_IF_ERROR(RequireString(c, m, "name", &name, &where));
    seen.push_back(name);
    return Status::Ok();
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.message(), "f.yaml:3: items[2]: expected a map with keys name, size, got '3'");
}

TEST(ForEachMapTest, NullIsAnEmptyListAndAMissingNameIsNamed) {
  const FieldContext c = Ctx();
  int calls = 0;
  EXPECT_TRUE(ForEachMap(c, Field{YAML::Node(), "items"}, ItemsSchema(), [&](const MapView&) {
                ++calls;
                return Status::Ok();
              }).ok());
  EXPECT_EQ(calls, 0);
  const YAML::Node root = YAML::Load("- {size: 1}\n");
  const Status s = ForEachMap(c, Field{root, "items"}, ItemsSchema(), [&](const MapView& m) {
    std::string name;
    Field where;
    return RequireString(c, m, "name", &name, &where);
  });
  EXPECT_EQ(s.message(), "f.yaml:1: items[0].name: required key is missing");
}

TEST(NodeTypeEntryTest, ReadsNameTotalAndLabelsAndNamesABadTotal) {
  static const Schema kValue{};
  static const Schema kDict{Schema::Kind::kDict, {}, &kValue};
  static const Schema kType{Schema::Kind::kMap,
                            {{"name", &kValue}, {"resources", &kDict}, {"labels", &kDict}}};
  const FieldContext c = Ctx();
  auto read = [&](const std::string& text, NodeTypeEntry* out) {
    const YAML::Node root = YAML::Load(text);
    MapView m;
    Status s = MapView::Open(c, Field{root, "node_types[0]"}, kType, &m);
    return s.ok() ? ReadNodeTypeEntry(c, m, out) : s;
  };
  NodeTypeEntry e;
  ASSERT_TRUE(read("{name: gpu, resources: {CPU: 4, GPU: 1}, labels: {zone: a}}", &e).ok());
  EXPECT_EQ(e.name, "gpu");
  EXPECT_EQ(e.total.Get("GPU").ToDouble(), 1.0);
  EXPECT_EQ(e.labels.at("zone"), "a");
  EXPECT_EQ(read("{name: gpu, resources: 4}", &e).message(),
            "f.yaml:1: node_types[0].resources: expected a map of resource quantities, got '4'");
  EXPECT_EQ(read("{resources: {CPU: 1}}", &e).message(),
            "f.yaml:1: node_types[0].name: required key is missing");
}

}  // namespace
}  // namespace orrery::io
