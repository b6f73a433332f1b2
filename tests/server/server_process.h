// Test helpers for afd-serve: start it on a free loopback port, run client commands (curl, node, afd-run) and capture
// their output, stop it with a signal.
#pragma once

#include <cstring>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../child_process.h"

namespace afd::test {

inline std::string model_dir() { return source_dir() + "/models/pystdlib-moe"; }

class ServerProcess : public ServerChild {
 public:
  explicit ServerProcess(std::vector<std::string> extra = {}) : ServerChild(args(std::move(extra))) {}
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port()) + path; }
  // curl against this server: returns the body; *code gets the HTTP status. `args` are extra curl arguments.
  std::string curl(const std::string& path, const std::string& args, long* code = nullptr) const {
    const std::string out =
        run_command("curl -sS -m 60 -w '\\n%{http_code}' " + args + " " + shq(url(path)) + " 2>&1");
    const size_t nl = out.rfind('\n');
    if (code) *code = std::stol(out.substr(nl + 1));
    return out.substr(0, nl);
  }
  std::string post(const std::string& path, const std::string& json, long* code = nullptr,
                   const std::string& args = "") const {
    return curl(path, "-H 'Content-Type: application/json' --data-binary " + shq(json) + " " + args, code);
  }
  // The value of a Prometheus metric line "name value" in GET /metrics.
  double metric(const std::string& name) const {
    const std::string text = curl("/metrics", "");
    std::string escaped;
    for (char ch : name) escaped += std::string(std::strchr("{}()[].+*?^$|\\", ch) ? "\\" : "") + ch;
    const std::regex re("(^|\\n)" + escaped + " ([-0-9.e+]+)");
    std::smatch m;
    if (!std::regex_search(text, m, re)) throw std::runtime_error("no metric " + name + " in:\n" + text);
    return std::stod(m[2]);
  }

 private:
  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> a = {AFD_SERVE_BIN, "--model", model_dir(), "--port", "0", "--ffn-device", "cpu",
                                  "--attn-threads", "2", "--chat-template", "deepseek-v3"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
};

// afd-run's greedy output text for a prompt (the reference the server's output must equal).
inline std::string afd_run_text(const std::string& prompt_flag, int max_new_tokens) {
  int st = 0;
  const std::string out = run_command(std::string(AFD_RUN_BIN) + " --model " + shq(model_dir()) +
                                      " --ffn-device cpu --attn-threads 2 --json --max-new-tokens " +
                                      std::to_string(max_new_tokens) + " " + prompt_flag, &st);
  if (st != 0) throw std::runtime_error("afd-run failed: " + out);
  return out;
}

}  // namespace afd::test
