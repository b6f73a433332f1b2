// Test helpers for the project's own programs run as child processes: a shell command's output, shell quoting, and
// a server process started on a loopback port (port 0 asks for a free one, read back from its "listening on" line),
// stopped with a signal. Used by the afd-serve and afd-ffn-server tests.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace afd::test {

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

// A server program (args[0] and its arguments) whose stderr goes to a log file; the constructor returns once the
// log shows "listening on HOST:PORT" (at most 30 s), throwing with the log if the program exits or never listens.
// Killed with SIGKILL at scope exit unless stop() saw it exit.
class ServerChild {
 public:
  explicit ServerChild(std::vector<std::string> args) {
    log_ = dir_.path("server.log");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
    const std::regex re("listening on [0-9.]+:([0-9]+)");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string text = read_text(log_);
      if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
      else if (waitpid(pid_, &status_, WNOHANG) == pid_) throw std::runtime_error(args[0] + " exited: " + text);
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port_ == 0) throw std::runtime_error(args[0] + " did not start: " + read_text(log_));
  }
  ~ServerChild() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
  }
  ServerChild(const ServerChild&) = delete;
  ServerChild& operator=(const ServerChild&) = delete;

  int port() const { return port_; }
  std::string log() const { return read_text(log_); }
  bool alive() const { return !exited_ && kill(pid_, 0) == 0; }
  void signal(int sig) const { kill(pid_, sig); }

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

 private:
  TempDir dir_;
  std::string log_;
  pid_t pid_ = 0;
  int port_ = 0, status_ = 0;
  bool exited_ = false;
};

}  // namespace afd::test
