// The SVG line-chart renderer: structure, ticks, escaping, gaps.
#include "core/results/svg_plot.h"

#include <gtest/gtest.h>

#include <cmath>

namespace orrery::results {
namespace {

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(NiceTicks, RoundStepsCoveringTheRange) {
  EXPECT_EQ(NiceTicks(0, 130, 9), (std::vector<double>{0, 20, 40, 60, 80, 100, 120, 140}));
  EXPECT_EQ(NiceTicks(0, 130, 3), (std::vector<double>{0, 50, 100, 150}));
  EXPECT_EQ(NiceTicks(75, 100, 5), (std::vector<double>{75, 80, 85, 90, 95, 100}));
  const std::vector<double> small = NiceTicks(0, 1, 5);
  ASSERT_EQ(small.size(), 6u);
  EXPECT_NEAR(small[3], 0.6, 1e-12);
  const std::vector<double> flat = NiceTicks(5, 5, 4);  // a flat range is widened
  ASSERT_GE(flat.size(), 2u);
  EXPECT_LT(flat.front(), 5);
  EXPECT_GT(flat.back(), 5);
}

TEST(SvgLineChart, OnePolylinePerSeriesAxesLabelsAndLegend) {
  SvgChart c;
  c.title = "Allocated <GPU> & more";
  c.x_label = "arrived %";
  c.y_label = "allocated %";
  c.series = {{.name = "fgd", .x = {0, 50, 100}, .y = {0, 50, 95}},
              {.name = "random", .x = {0, 50, 100}, .y = {0, 49, 86}},
              {.name = "ideal", .x = {0, 100}, .y = {0, 100}, .dashed = true, .color = "#888"}};
  const std::string svg = RenderSvgLineChart(c);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(Count(svg, "<polyline"), 3u);
  EXPECT_NE(svg.find("Allocated &lt;GPU&gt; &amp; more"), std::string::npos);
  EXPECT_NE(svg.find(">arrived %</text>"), std::string::npos);
  EXPECT_NE(svg.find(">allocated %</text>"), std::string::npos);
  EXPECT_NE(svg.find(">fgd</text>"), std::string::npos);
  EXPECT_NE(svg.find(">random</text>"), std::string::npos);
  EXPECT_EQ(Count(svg, "stroke-dasharray"), 2u);  // the dashed series and its legend swatch
  EXPECT_NE(svg.find("stroke=\"#888\""), std::string::npos);
  EXPECT_NE(svg.find(">100</text>"), std::string::npos);  // a tick label
  EXPECT_EQ(svg, RenderSvgLineChart(c));                  // deterministic
}

TEST(SvgLineChart, NanBreaksTheLineAndFixedRangesHold) {
  SvgChart c;
  c.series = {{.name = "s", .x = {0, 1, 2, 3, 4}, .y = {1, 2, std::nan(""), 3, 4}}};
  c.x_min = 0;
  c.x_max = 4;
  c.y_min = 0;
  c.y_max = 10;
  c.legend = SvgChart::Legend::kOutsideRight;
  const std::string svg = RenderSvgLineChart(c);
  EXPECT_EQ(Count(svg, "<polyline"), 2u);
  EXPECT_NE(svg.find(">10</text>"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(SvgLineChart, EmptyChartStillRenders) {
  const std::string svg = RenderSvgLineChart({});
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(Count(svg, "<polyline"), 0u);
}

}  // namespace
}  // namespace orrery::results
