// Test helpers for afd-serve: start it on a free loopback port (port 0; the port is read from its "listening on"
// line), run client commands (curl, node, afd-run) and capture their output, stop it with a signal.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.h"

extern char** environ;

namespace afd::test {

inline std::string model_dir() { return source_dir() + "/models/pystdlib-moe"; }

// Runs a shell command; returns its stdout, and its exit status in *status.
inline std::string run_command(const std::string& cmd, int* status = nullptr) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Single-quotes s for the shell.
inline std::string shq(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra = {}) {
    log_ = dir_.path("serve.log");
    std::vector<std::string> args = {AFD_SERVE_BIN, "--model", model_dir(), "--port", "0", "--ffn-device", "cpu",
                                     "--attn-threads", "2", "--chat-template", "deepseek-v3"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start afd-serve");
    const std::regex re("listening on [0-9.]+:([0-9]+)");
    for (int i = 0; i < 300 && port_ == 0; ++i) {  // at most 30 s for the model to load
      std::smatch m;
      const std::string log = read_text(log_);
      if (std::regex_search(log, m, re)) port_ = std::stoi(m[1]);
      else if (waitpid(pid_, &status_, WNOHANG) == pid_) throw std::runtime_error("afd-serve exited: " + log);
      else std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (port_ == 0) throw std::runtime_error("afd-serve did not start: " + read_text(log_));
  }
  ~ServerProcess() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }
  int port() const { return port_; }
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const { return read_text(log_); }
  bool alive() const { return !exited_ && kill(pid_, 0) == 0; }

  // Sends sig and waits up to timeout for the exit; returns the exit code (-1: killed by a signal or still running).
  int stop(int sig, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    kill(pid_, sig);
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

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
  TempDir dir_;
  std::string log_;
  pid_t pid_ = 0;
  int port_ = 0, status_ = 0;
  bool exited_ = false;
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
