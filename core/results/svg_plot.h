// A tiny SVG line-chart renderer for result plots (e.g. `orrery sim compare`): axes with "nice"
// ticks, grid, axis labels, a title, a legend and one polyline per series.
//
// Pure string rendering, no I/O: the caller writes the file. Output is deterministic (fixed,
// locale-free number formatting), so a chart can be a golden file.
//
// Thread safety: value types and free functions; safe from any thread.
#pragma once

#include <limits>
#include <string>
#include <vector>

namespace orrery::results {

struct SvgSeries {
  std::string name;       // legend entry ("" = not in the legend)
  std::vector<double> x;  // REQUIRES: x.size() == y.size()
  std::vector<double> y;  // a NaN in x or y breaks the line there
  bool dashed = false;
  std::string color;  // any SVG colour; "" = the next colour of the palette
};

struct SvgChart {
  static constexpr double kAuto = std::numeric_limits<double>::quiet_NaN();
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<SvgSeries> series;
  // Axis ranges; kAuto = from the data, widened to the enclosing ticks.
  double x_min = kAuto, x_max = kAuto, y_min = kAuto, y_max = kAuto;
  int width = 800;   // pixels
  int height = 500;  // pixels
  // Inside the plot area at a corner, outside to the right of it (the plot narrows), or none.
  enum class Legend { kTopLeft, kTopRight, kBottomLeft, kBottomRight, kOutsideRight, kNone };
  Legend legend = Legend::kTopLeft;
};

// The whole <svg> document. Series with no finite point are listed in the legend but draw
// nothing. O(points).
std::string RenderSvgLineChart(const SvgChart& chart);

// A horizontal grouped bar chart: one group of bars per category (top to bottom), one bar per
// series in each group, an optional whisker [lo, hi] per bar (e.g. the range of several runs).
struct SvgBarSeries {
  std::string name;           // legend entry
  std::vector<double> value;  // one per category; NaN = no bar
  std::vector<double> lo, hi;  // empty, or one per category: a whisker from lo to hi (NaN: none)
  std::string color;          // "" = the next colour of the palette
};
struct SvgBarChart {
  std::string title;
  std::string value_label;  // the value axis (bottom)
  std::vector<std::string> categories;
  std::vector<SvgBarSeries> series;
  int width = 800;  // pixels; the height follows from the number of bars
};
// The whole <svg> document; values from 0 to the largest value or whisker. O(bars).
std::string RenderSvgBarChart(const SvgBarChart& chart);

// About `target` evenly spaced round values (1, 2 or 5 times a power of ten apart) covering
// [lo, hi]: the first <= lo, the last >= hi. REQUIRES: lo <= hi, both finite.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);

}  // namespace orrery::results
