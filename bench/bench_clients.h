// afd-bench's `clients` key, the attention:FFN process ratio: N engines run a point concurrently (one thread each,
// each with its own attention backend and KV pool, the point's attention threads split evenly, and its own
// RemoteFfn connection) against ONE FFN server, which batches their requests across connections (ffn_batcher.h).
#pragma once

#include <memory>
#include <string>

#include "bench/bench_point.h"
#include "transport/ffn_batcher.h"

namespace afd::bench {

// Runs `p` with p.clients engines; each runs the point's full batch (total batch = clients x batch). The server is
// `ffn_remote` (host:port of an afd-ffn-server) or, when empty, one started here on a free loopback port around
// `local_ffn` (at most `max_rows` rows per backend call). decode_tok_s and prefill_tok_s are the clients' sums;
// TPOT and the step breakdown their means; the bound columns are one client's (of `batch` sequences). The server's
// counters (server_requests, server_calls, server_rows_per_call) cover the whole point, prefill included, and with
// --ffn-remote whatever else that server served meanwhile.
PointResult run_clients_point(const std::shared_ptr<const Bf16Weights>& w, FfnBackend& local_ffn, int max_rows,
                              const std::string& ffn_remote, const PointSpec& p, const Ceilings& c);

}  // namespace afd::bench
