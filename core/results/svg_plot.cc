#include "core/results/svg_plot.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace orrery::results {
namespace {

// Fixed-point text with up to `decimals` digits, trailing zeros dropped, never "-0".
std::string Fmt(double v, int decimals = 2) {
  std::array<char, 64> buf{};
  auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, decimals);
  if (ec != std::errc()) return "0";
  std::string s(buf.data(), end);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Tableau 10 with its grey replaced by black (grey is left for reference lines).
constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                  "#9467bd", "#8c564b", "#e377c2", "#000000",
                                                  "#bcbd22", "#17becf"};

double TickStep(double lo, double hi, int target) {
  const double span = hi - lo;
  if (!(span > 0)) return 1.0;
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) return m * mag;
  }
  return 10.0 * mag;
}

// Decimals needed to print multiples of `step` exactly.
int DecimalsFor(double step) {
  int d = 0;
  while (d < 6 &&
         std::abs(step * std::pow(10.0, d) - std::round(step * std::pow(10.0, d))) > 1e-9) {
    ++d;
  }
  return d;
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (hi == lo) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double step = TickStep(lo, hi, target);
  const double first = std::floor(lo / step + 1e-9) * step;
  std::vector<double> ticks;
  for (int i = 0; i < 1000; ++i) {
    const double t = first + i * step;
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::string RenderSvgLineChart(const SvgChart& chart) {
  // Data ranges.
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : chart.series) {
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (std::isfinite(chart.x_min)) xlo = chart.x_min;
  if (std::isfinite(chart.x_max)) xhi = chart.x_max;
  if (std::isfinite(chart.y_min)) ylo = chart.y_min;
  if (std::isfinite(chart.y_max)) yhi = chart.y_max;
  if (xhi < xlo) std::swap(xlo, xhi);
  if (yhi < ylo) std::swap(ylo, yhi);
  std::vector<double> xt = NiceTicks(xlo, xhi, std::max(2, chart.width / 100));
  std::vector<double> yt = NiceTicks(ylo, yhi, std::max(2, chart.height / 70));
  // Auto ends snap to the enclosing ticks; fixed ends stay and drop ticks outside them.
  if (!std::isfinite(chart.x_min)) xlo = xt.front();
  if (!std::isfinite(chart.x_max)) xhi = xt.back();
  if (!std::isfinite(chart.y_min)) ylo = yt.front();
  if (!std::isfinite(chart.y_max)) yhi = yt.back();
  if (xhi == xlo) xhi = xlo + 1;
  if (yhi == ylo) yhi = ylo + 1;
  const int xdec = xt.size() > 1 ? DecimalsFor(xt[1] - xt[0]) : 0;
  const int ydec = yt.size() > 1 ? DecimalsFor(yt[1] - yt[0]) : 0;

  // Legend size (needed first: an outside legend takes room from the plot).
  size_t entries = 0;
  size_t longest = 0;
  for (const auto& s : chart.series) {
    if (s.name.empty()) continue;
    ++entries;
    longest = std::max(longest, s.name.size());
  }
  const double lw = 40 + 7.5 * static_cast<double>(longest), lh = 8 + 18 * double(entries);
  const bool outside = chart.legend == SvgChart::Legend::kOutsideRight && entries > 0;

  const double W = chart.width, H = chart.height;
  const double left = 70, right = outside ? lw + 30 : 20;
  const double top = chart.title.empty() ? 20 : 40, bottom = 55;
  const double pw = std::max(10.0, W - left - right), ph = std::max(10.0, H - top - bottom);
  auto px = [&](double x) { return left + (x - xlo) / (xhi - xlo) * pw; };
  auto py = [&](double y) { return top + ph - (y - ylo) / (yhi - ylo) * ph; };

  std::string o;
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Fmt(W) + "\" height=\"" + Fmt(H) +
       "\" viewBox=\"0 0 " + Fmt(W) + " " + Fmt(H) +
       "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!chart.title.empty()) {
    o += "<text x=\"" + Fmt(left + pw / 2) +
         "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" + Escape(chart.title) + "</text>\n";
  }
  // Grid and ticks.
  o += "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : xt) {
    if (t < xlo - 1e-9 || t > xhi + 1e-9) continue;
    o += "<line x1=\"" + Fmt(px(t)) + "\" y1=\"" + Fmt(top) + "\" x2=\"" + Fmt(px(t)) + "\" y2=\"" +
         Fmt(top + ph) + "\"/>\n";
  }
  for (double t : yt) {
    if (t < ylo - 1e-9 || t > yhi + 1e-9) continue;
    o += "<line x1=\"" + Fmt(left) + "\" y1=\"" + Fmt(py(t)) + "\" x2=\"" + Fmt(left + pw) +
         "\" y2=\"" + Fmt(py(t)) + "\"/>\n";
  }
  o += "</g>\n";
  o += "<g fill=\"#333\">\n";
  for (double t : xt) {
    if (t < xlo - 1e-9 || t > xhi + 1e-9) continue;
    o += "<text x=\"" + Fmt(px(t)) + "\" y=\"" + Fmt(top + ph + 18) + "\" text-anchor=\"middle\">" +
         Fmt(t, xdec) + "</text>\n";
  }
  for (double t : yt) {
    if (t < ylo - 1e-9 || t > yhi + 1e-9) continue;
    o += "<text x=\"" + Fmt(left - 8) + "\" y=\"" + Fmt(py(t) + 4) + "\" text-anchor=\"end\">" +
         Fmt(t, ydec) + "</text>\n";
  }
  o += "</g>\n";
  // Axes.
  o += "<path d=\"M" + Fmt(left) + " " + Fmt(top) + " V" + Fmt(top + ph) + " H" + Fmt(left + pw) +
       "\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>\n";
  if (!chart.x_label.empty()) {
    o += "<text x=\"" + Fmt(left + pw / 2) + "\" y=\"" + Fmt(H - 12) +
         "\" text-anchor=\"middle\">" + Escape(chart.x_label) + "</text>\n";
  }
  if (!chart.y_label.empty()) {
    o += "<text transform=\"translate(18 " + Fmt(top + ph / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + Escape(chart.y_label) + "</text>\n";
  }
  // Series, clipped to the plot area.
  o += "<defs><clipPath id=\"plot\"><rect x=\"" + Fmt(left) + "\" y=\"" + Fmt(top) + "\" width=\"" +
       Fmt(pw) + "\" height=\"" + Fmt(ph) + "\"/></clipPath></defs>\n";
  o += "<g clip-path=\"url(#plot)\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n";
  std::vector<std::string> colors;
  size_t next_color = 0;
  for (const auto& s : chart.series) {
    colors.push_back(!s.color.empty() ? s.color : kPalette[next_color++ % kPalette.size()]);
    const std::string style =
        "stroke=\"" + Escape(colors.back()) + "\"" + (s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    std::string pts;
    auto flush = [&] {
      if (!pts.empty()) o += "<polyline " + style + " points=\"" + pts + "\"/>\n";
      pts.clear();
    };
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      if (!pts.empty()) pts += ' ';
      pts += Fmt(px(s.x[i])) + "," + Fmt(py(s.y[i]));
    }
    flush();
  }
  o += "</g>\n";
  // Legend.
  if (entries > 0 && chart.legend != SvgChart::Legend::kNone) {
    const bool right_side = chart.legend == SvgChart::Legend::kTopRight ||
                            chart.legend == SvgChart::Legend::kBottomRight;
    const bool bottom_side = chart.legend == SvgChart::Legend::kBottomLeft ||
                             chart.legend == SvgChart::Legend::kBottomRight;
    const double lx = outside ? left + pw + 20 : right_side ? left + pw - lw - 10 : left + 10;
    const double ly = bottom_side ? top + ph - lh - 10 : top + 10;
    o += "<g>\n<rect x=\"" + Fmt(lx) + "\" y=\"" + Fmt(ly) + "\" width=\"" + Fmt(lw) +
         "\" height=\"" + Fmt(lh) +
         "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\" stroke-width=\"0.8\"/>\n";
    double y = ly + 16;
    for (size_t i = 0; i < chart.series.size(); ++i) {
      const auto& s = chart.series[i];
      if (s.name.empty()) continue;
      o += "<line x1=\"" + Fmt(lx + 8) + "\" y1=\"" + Fmt(y - 4) + "\" x2=\"" + Fmt(lx + 30) +
           "\" y2=\"" + Fmt(y - 4) + "\" stroke=\"" + Escape(colors[i]) + "\" stroke-width=\"2\"" +
           (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
      o += "<text x=\"" + Fmt(lx + 36) + "\" y=\"" + Fmt(y) + "\">" + Escape(s.name) + "</text>\n";
      y += 18;
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

std::string RenderSvgBarChart(const SvgBarChart& chart) {
  const size_t groups = chart.categories.size();
  const size_t per = std::max<size_t>(1, chart.series.size());
  double vmax = 0;
  for (const auto& s : chart.series) {
    for (const auto* v : {&s.value, &s.hi}) {
      for (double x : *v) {
        if (std::isfinite(x)) vmax = std::max(vmax, x);
      }
    }
  }
  const std::vector<double> ticks = NiceTicks(0, vmax > 0 ? vmax : 1, std::max(2, chart.width / 110));
  const double top_value = ticks.back() > 0 ? ticks.back() : 1;
  const int dec = ticks.size() > 1 ? DecimalsFor(ticks[1] - ticks[0]) : 0;
  size_t label_chars = 4;
  for (const auto& c : chart.categories) label_chars = std::max(label_chars, c.size());
  const double bar_h = 14, gap = 10, left = 16 + 7.0 * static_cast<double>(std::min<size_t>(label_chars, 30));
  const double top = 40, legend_h = 22.0 * (chart.series.empty() ? 0 : 1);
  const double plot_h = static_cast<double>(groups) * (bar_h * static_cast<double>(per) + gap) + gap;
  const double right = 30, bottom = 50;
  const double w = chart.width, plot_w = std::max(100.0, w - left - right);
  const double h = top + plot_h + bottom + legend_h;
  auto X = [&](double v) { return left + plot_w * std::clamp(v / top_value, 0.0, 1.0); };
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Fmt(w, 0) +
                  "\" height=\"" + Fmt(h, 0) + "\" viewBox=\"0 0 " + Fmt(w, 0) + " " + Fmt(h, 0) +
                  "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + Fmt(w / 2, 1) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" +
       Escape(chart.title) + "</text>\n";
  for (double t : ticks) {
    const double x = X(t);
    o += "<line x1=\"" + Fmt(x, 1) + "\" y1=\"" + Fmt(top, 1) + "\" x2=\"" + Fmt(x, 1) + "\" y2=\"" +
         Fmt(top + plot_h, 1) + "\" stroke=\"#ddd\"/>\n";
    o += "<text x=\"" + Fmt(x, 1) + "\" y=\"" + Fmt(top + plot_h + 16, 1) +
         "\" text-anchor=\"middle\">" + Fmt(t, dec) + "</text>\n";
  }
  o += "<text x=\"" + Fmt(left + plot_w / 2, 1) + "\" y=\"" + Fmt(top + plot_h + 36, 1) +
       "\" text-anchor=\"middle\">" + Escape(chart.value_label) + "</text>\n";
  for (size_t g = 0; g < groups; ++g) {
    const double y0 = top + gap + static_cast<double>(g) * (bar_h * static_cast<double>(per) + gap);
    o += "<text x=\"" + Fmt(left - 6, 1) + "\" y=\"" + Fmt(y0 + bar_h * static_cast<double>(per) / 2 + 4, 1) +
         "\" text-anchor=\"end\">" + Escape(chart.categories[g]) + "</text>\n";
    for (size_t k = 0; k < chart.series.size(); ++k) {
      const auto& s = chart.series[k];
      const std::string color = s.color.empty() ? kPalette[k % kPalette.size()] : s.color;
      const double y = y0 + bar_h * static_cast<double>(k);
      if (g < s.value.size() && std::isfinite(s.value[g])) {
        o += "<rect x=\"" + Fmt(left, 1) + "\" y=\"" + Fmt(y, 1) + "\" width=\"" +
             Fmt(X(s.value[g]) - left, 1) + "\" height=\"" + Fmt(bar_h - 2, 1) + "\" fill=\"" +
             color + "\"><title>" + Escape(s.name + " " + chart.categories[g] + ": " +
                                          Fmt(s.value[g], 3)) +
             "</title></rect>\n";
      }
      if (g < s.lo.size() && g < s.hi.size() && std::isfinite(s.lo[g]) && std::isfinite(s.hi[g])) {
        const double ym = y + (bar_h - 2) / 2;
        o += "<path d=\"M" + Fmt(X(s.lo[g]), 1) + " " + Fmt(ym, 1) + "H" + Fmt(X(s.hi[g]), 1) + "M" +
             Fmt(X(s.lo[g]), 1) + " " + Fmt(ym - 4, 1) + "v8M" + Fmt(X(s.hi[g]), 1) + " " +
             Fmt(ym - 4, 1) + "v8\" stroke=\"black\" fill=\"none\"/>\n";
      }
    }
  }
  o += "<line x1=\"" + Fmt(left, 1) + "\" y1=\"" + Fmt(top, 1) + "\" x2=\"" + Fmt(left, 1) + "\" y2=\"" +
       Fmt(top + plot_h, 1) + "\" stroke=\"black\"/>\n";
  double lx = left;
  const double ly = top + plot_h + bottom + 6;
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    const std::string color = s.color.empty() ? kPalette[k % kPalette.size()] : s.color;
    o += "<rect x=\"" + Fmt(lx, 1) + "\" y=\"" + Fmt(ly, 1) + "\" width=\"12\" height=\"12\" fill=\"" +
         color + "\"/>\n";
    o += "<text x=\"" + Fmt(lx + 16, 1) + "\" y=\"" + Fmt(ly + 10, 1) + "\">" + Escape(s.name) +
         "</text>\n";
    lx += 40 + 7.0 * static_cast<double>(s.name.size());
  }
  o += "</svg>\n";
  return o;
}

}  // namespace orrery::results
