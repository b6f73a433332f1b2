#include <utility>  // first: Boost 1.74's asio headers use std::exchange without including it

#include "bench/bench_clients.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include "transport/ffn_server.h"
#include "transport/remote_ffn.h"
#include "util/error.h"

namespace afd::bench {

PointResult run_clients_point(const std::shared_ptr<const Bf16Weights>& w, FfnBackend& local_ffn, int max_rows,
                              const std::string& ffn_remote, const PointSpec& p, const Ceilings& c) {
  AFD_REQUIRE(p.clients >= 1, "clients ", p.clients, " is not a count of attention engines");
  std::unique_ptr<transport::FfnServer> server;
  std::thread server_th;
  std::string address = ffn_remote;
  if (address.empty()) {
    transport::BatchOptions b;
    b.max_rows = max_rows;
    server = std::make_unique<transport::FfnServer>(local_ffn, "127.0.0.1", 0, b);
    server_th = std::thread([&] { server->run(false); });
    address = "127.0.0.1:" + std::to_string(server->port());
  }
  struct StopServer {  // on every exit path
    std::unique_ptr<transport::FfnServer>& s;
    std::thread& th;
    ~StopServer() {
      if (s) s->stop();
      if (th.joinable()) th.join();
    }
  } stop_server{server, server_th};

  transport::RemoteFfn control(address, w->cfg);  // reads the server's counters before and after
  const transport::BatchStats before = control.server_stats();
  const int all_threads = p.ro.attn_threads > 0 ? p.ro.attn_threads
                                                : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<app::Backends> backends;
  for (int k = 0; k < p.clients; ++k) {
    app::RuntimeOptions r = point_runtime(w->cfg, p);
    r.attn_threads = std::max(1, all_threads / p.clients);
    r.ffn_remote = address;
    backends.push_back(app::make_backends(w, r));
  }
  std::vector<PointResult> rs(p.clients);
  std::vector<std::exception_ptr> errors(p.clients);
  std::vector<std::thread> th;
  for (int k = 0; k < p.clients; ++k)
    th.emplace_back([&, k] {
      try {
        rs[k] = run_point(backends[k], p, c);
      } catch (...) {
        errors[k] = std::current_exception();
      }
    });
  for (auto& t : th) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  const transport::BatchStats after = control.server_stats();

  PointResult r = rs[0];  // bound, KV size and trace: client 0's
  r.clients = p.clients;
  r.decode_tok_s = r.prefill_tok_s = 0;
  for (auto* f : {&r.tpot_ms, &r.attn_ms, &r.ffn_ms, &r.xfer_ms, &r.attn_idle_ms, &r.ffn_idle_ms, &r.overlap}) *f = 0;
  for (const PointResult& x : rs) {
    r.decode_tok_s += x.decode_tok_s;
    r.prefill_tok_s += x.prefill_tok_s;
    r.tpot_ms += x.tpot_ms / p.clients;
    r.attn_ms += x.attn_ms / p.clients;
    r.ffn_ms += x.ffn_ms / p.clients;
    r.xfer_ms += x.xfer_ms / p.clients;
    r.attn_idle_ms += x.attn_idle_ms / p.clients;
    r.ffn_idle_ms += x.ffn_idle_ms / p.clients;
    r.overlap += x.overlap / p.clients;
    r.step_min_ms = std::min(r.step_min_ms, x.step_min_ms);
    r.step_max_ms = std::max(r.step_max_ms, x.step_max_ms);
  }
  // The engines share the CPU and the FFN side: the bound of a round in which each decodes its batch is that of
  // one step over all their sequences (the server may join same-layer requests, so the expert bytes are those of
  // clients x batch tokens together).
  const std::string served = local_ffn.name();
  set_bound(r, w->cfg, p.clients * p.batch, p.context, c,
            ffn_remote.empty() && (served.rfind("gpu", 0) == 0 || served.find("GPU") != std::string::npos));
  r.server_requests = after.requests - before.requests;
  r.server_calls = after.calls - before.calls;
  r.server_rows_per_call = r.server_calls ? static_cast<double>(after.rows - before.rows) / r.server_calls : 0;
  std::fprintf(stderr,
               "afd-bench: clients=%d x batch %d: %.1f tok/s together; FFN server %s: %lld requests in %lld calls, "
               "%.2f rows per call\n",
               p.clients, p.batch, r.decode_tok_s, address.c_str(), static_cast<long long>(r.server_requests),
               static_cast<long long>(r.server_calls), r.server_rows_per_call);
  return r;
}

}  // namespace afd::bench
