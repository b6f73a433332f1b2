// Loading tokenizer files: malformed or unsupported tokenizer.json / tokenizer_config.json give one afd::Error
// sentence naming the file and the field.
#include <functional>

#include "tokenizer_test_util.h"
#include "util/error.h"

using nlohmann::json;

namespace {

json pystdlib_json() {
  return afd::test::read_json_file(afd::test::source_dir() + "/models/pystdlib-moe/tokenizer.json");
}

// Writes a (possibly edited) pystdlib tokenizer.json into a fresh directory and returns the load error message.
std::string load_error(const std::function<void(json&)>& edit, const std::string& config = "") {
  afd::test::TempDir dir;
  json j = pystdlib_json();
  edit(j);
  afd::test::write_text(dir.path("tokenizer.json"), j.dump());
  if (!config.empty()) afd::test::write_text(dir.path("tokenizer_config.json"), config);
  try {
    afd::tok::Tokenizer::load(dir.path("tokenizer.json"));
  } catch (const afd::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(dir.path()) != std::string::npos);  // names the file
    CHECK(msg.find('\n') == std::string::npos);        // one line
    return msg;
  }
  FAIL("the tokenizer loaded, but an error was expected");
  return "";
}

}  // namespace

TEST_CASE("Malformed tokenizer.json: truncated JSON names the file", "[tokenizer][files]") {
  afd::test::TempDir dir;
  const std::string text = afd::test::read_text(afd::test::source_dir() + "/models/pystdlib-moe/tokenizer.json");
  afd::test::write_text(dir.path("tokenizer.json"), text.substr(0, text.size() / 2));
  CHECK_THROWS_WITH(afd::tok::Tokenizer::load(dir.path("tokenizer.json")),
                    Catch::Contains(dir.path("tokenizer.json")) && Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(afd::tok::Tokenizer::load(dir.path("missing.json")), Catch::Contains("does not exist"));
}

TEST_CASE("Malformed tokenizer.json: each bad field is named", "[tokenizer][files]") {
  CHECK_THAT(load_error([](json& j) { j["model"].erase("merges"); }), Catch::Contains("'model.merges' is missing"));
  CHECK_THAT(load_error([](json& j) { j["model"]["type"] = "Unigram"; }),
             Catch::Contains("'model.type'") && Catch::Contains("Unigram"));
  CHECK_THAT(load_error([](json& j) { j.erase("model"); }), Catch::Contains("'model' is missing"));
  CHECK_THAT(load_error([](json& j) { j["model"]["vocab"] = json::array(); }), Catch::Contains("'model.vocab'"));
  CHECK_THAT(load_error([](json& j) { j["model"]["merges"][3] = json::array({"Ġ", "no-such-token"}); }),
             Catch::Contains("'model.merges[3]'") && Catch::Contains("no-such-token"));
  CHECK_THAT(load_error([](json& j) { j["model"]["merges"][0] = 42; }), Catch::Contains("'model.merges[0]'"));
  CHECK_THAT(load_error([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
             Catch::Contains("'pre_tokenizer.type'") && Catch::Contains("Metaspace"));
  CHECK_THAT(load_error([](json& j) { j["pre_tokenizer"] = nullptr; }), Catch::Contains("ByteLevel"));
  CHECK_THAT(load_error([](json& j) {
               j["pre_tokenizer"] = {{"type", "Sequence"},
                                     {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                                                         {"behavior", "Isolated"}}, j["pre_tokenizer"]}}};
             }),
             Catch::Contains("'pre_tokenizer.pretokenizers[0].pattern'") && Catch::Contains("does not compile"));
  CHECK_THAT(load_error([](json& j) {
               j["pre_tokenizer"] = {{"type", "Sequence"},
                                     {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}},
                                                         {"behavior", "Sideways"}}}}};
             }),
             Catch::Contains("'pre_tokenizer.pretokenizers[0].behavior'"));
  CHECK_THAT(load_error([](json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }),
             Catch::Contains("'normalizer.type'") && Catch::Contains("BertNormalizer"));
  CHECK_THAT(load_error([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }), Catch::Contains("'decoder.type'"));
  CHECK_THAT(load_error([](json& j) { j["added_tokens"][1].erase("content"); }),
             Catch::Contains("'added_tokens[1].content' is missing"));
  CHECK_THAT(load_error([](json& j) { j["post_processor"] = {{"type", "Magic"}}; }),
             Catch::Contains("'post_processor.type'"));
}

TEST_CASE("Malformed tokenizer_config.json: the config file and field are named", "[tokenizer][files]") {
  const auto keep = [](json&) {};
  CHECK_THAT(load_error(keep, "{\"bos_token\": \"<nope>\", \"add_bos_token\": true}"),
             Catch::Contains("tokenizer_config.json: field 'bos_token'") && Catch::Contains("<nope>"));
  CHECK_THAT(load_error(keep, "{\"add_bos_token\": true}"), Catch::Contains("'add_bos_token'"));
  CHECK_THAT(load_error(keep, "{\"bos_token\": 7}"), Catch::Contains("'bos_token'"));
  CHECK_THAT(load_error(keep, "{oops"), Catch::Contains("tokenizer_config.json: is not valid JSON"));
}
