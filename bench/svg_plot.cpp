#include "bench/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace afd::bench {

namespace {
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  return b;
}
}  // namespace

std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::vector<std::string>& x,
                          const std::string& y_label, const std::vector<Series>& series) {
  const double W = 760, H = 440, l = 70, r = 200, t = 40, b = 60;
  double ymax = 0;
  for (const auto& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) ymax = std::max(ymax, v);
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const double pw = W - l - r, ph = H - t - b;
  auto px = [&](size_t i) { return l + (x.size() > 1 ? pw * i / (x.size() - 1) : pw / 2); };
  auto py = [&](double v) { return t + ph * (1 - v / ymax); };
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' "
    << "font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << l << "' y='22' font-size='15'>" << esc(title) << "</text>\n";
  for (int g = 0; g <= 5; ++g) {
    const double v = ymax * g / 5, y = py(v);
    o << "<line x1='" << l << "' y1='" << y << "' x2='" << l + pw << "' y2='" << y << "' stroke='#ddd'/>"
      << "<text x='" << l - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << num(v) << "</text>\n";
  }
  for (size_t i = 0; i < x.size(); ++i)
    o << "<text x='" << px(i) << "' y='" << t + ph + 18 << "' text-anchor='middle'>" << esc(x[i]) << "</text>\n";
  o << "<line x1='" << l << "' y1='" << t + ph << "' x2='" << l + pw << "' y2='" << t + ph << "' stroke='black'/>"
    << "<line x1='" << l << "' y1='" << t << "' x2='" << l << "' y2='" << t + ph << "' stroke='black'/>\n"
    << "<text x='" << l + pw / 2 << "' y='" << H - 18 << "' text-anchor='middle'>" << esc(x_label) << "</text>\n"
    << "<text transform='translate(18," << t + ph / 2 << ") rotate(-90)' text-anchor='middle'>" << esc(y_label)
    << "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* col = kColors[k % 8];
    std::string pts;
    for (size_t i = 0; i < s.y.size() && i < x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      pts += num(px(i)) + "," + num(py(s.y[i])) + " ";
      if (!s.dashed) o << "<circle cx='" << px(i) << "' cy='" << py(s.y[i]) << "' r='3' fill='" << col << "'/>\n";
    }
    o << "<polyline fill='none' stroke='" << col << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,4'" : "")
      << " points='" << pts << "'/>\n";
    const double ly = t + 14 + 18 * k;
    o << "<line x1='" << l + pw + 15 << "' y1='" << ly << "' x2='" << l + pw + 40 << "' y2='" << ly << "' stroke='"
      << col << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,4'" : "") << "/>"
      << "<text x='" << l + pw + 46 << "' y='" << ly + 4 << "'>" << esc(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace afd::bench
