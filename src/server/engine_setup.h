// Turning a runtime YAML config (model/run_config.h) into what make_engine takes: the model source and the engine's
// runtime options. Shared by afd-serve and the C API; fields the YAML leaves out keep RuntimeOptions' defaults.
#pragma once

#include "app/engine_factory.h"
#include "model/run_config.h"

namespace afd::server {

struct EngineSetup {
  app::ModelSource model;
  app::RuntimeOptions runtime;
  SamplingParams sampling;   // the YAML's generation defaults
  int max_new_tokens = 0;    // 0 when the YAML gives none
};

EngineSetup engine_setup(const RunConfig& rc);

}  // namespace afd::server
