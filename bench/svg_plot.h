// A small line plot written as SVG (opens in any browser): categorical x, one polyline per series, optional
// dashed reference lines (the roofline bound), axis labels and a legend.
#pragma once

#include <string>
#include <vector>

namespace afd::bench {

struct Series {
  std::string name;
  std::vector<double> y;  // one value per x category (NaN = missing)
  bool dashed = false;
};

std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::vector<std::string>& x,
                          const std::string& y_label, const std::vector<Series>& series);

}  // namespace afd::bench
