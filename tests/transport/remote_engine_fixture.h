// Engines whose FFN side is an FFN server at an address (RemoteFfn), and the greedy workload the transport tests
// run on both them and the single-process engine (engine_fixture.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../engine/engine_fixture.h"
#include "transport/remote_ffn.h"

namespace afd::test {

// The engine of make_cpu_engine with the FFN side at `address`.
inline std::unique_ptr<engine::Engine> make_remote_engine(const std::string& dir, const std::string& address, int mb) {
  auto w = load_weights<uint16_t>(dir, kWeightsEmbed | kWeightsAttn, false);
  TestEngineOptions o;
  o.micro_batches = mb;
  return make_engine_over(w, std::make_unique<transport::RemoteFfn>(address, w->cfg), o);
}

// Prompts of odd lengths (one longer than a step, so it is prefilled in chunks), the same for every engine.
inline void submit_all(engine::Engine& e) {
  const int V = e.config().vocab_size;
  std::vector<int32_t> longp;
  for (int i = 0; i < 97; ++i) longp.push_back((i * 37 + 5) % V);
  e.submit(greedy({1, 2, 3}, 12));
  e.submit(greedy({(7 % V), (11 % V)}, 9));
  e.submit(greedy(longp, 6));
  engine::GenRequest scored = greedy({4, 9, 2, 7, 3}, 3);
  scored.all_logits = true;
  e.submit(scored);
}

}  // namespace afd::test
