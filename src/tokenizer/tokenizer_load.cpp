// Reading tokenizer.json and tokenizer_config.json into a Tokenizer::Impl.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/bytelevel.h"
#include "tokenizer/tokenizer_impl.h"

namespace afd::tok {
namespace {

namespace fs = std::filesystem;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  AFD_REQUIRE(in, "Cannot open the tokenizer file ", path, ".");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    afd::fail(path, ": is not valid JSON (", e.what(), ").");
  }
}

const json& member_or_null(const json& j, const char* key) {
  static const json kNull;
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// HF's ByteLevel decoder is the only one afd implements (alone or as the single step of a Sequence).
void check_decoder(const json& d, const JsonWhere& w) {
  if (d.is_null()) w.fail("is missing; afd needs the ByteLevel decoder");
  const std::string type = json_type(d, w);
  if (type == "Sequence") {
    const json& list = json_require(d, w, "decoders");
    for (size_t i = 0; i < list.size(); ++i) check_decoder(list[i], w.field("decoders").index(i));
  } else if (type != "ByteLevel") {
    w.field("type").fail("names the decoder '", type, "'; afd supports only ByteLevel");
  }
}

void read_added_tokens(const json& j, const JsonWhere& root, Tokenizer::Impl& m) {
  const json& list = member_or_null(j, "added_tokens");
  if (list.is_null()) return;
  if (!list.is_array()) root.field("added_tokens").fail("is not an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonWhere w = root.field("added_tokens").index(i);
    const json& t = list[i];
    const json& id = json_require(t, w, "id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1ll << 30))
      w.field("id").fail("is not a token id");
    AddedToken a;
    a.id = id.get<int32_t>();
    a.content = json_string(t, w, "content");
    if (a.content.empty()) w.field("content").fail("is empty");
    a.special = json_bool(t, w, "special", false);
    a.lstrip = json_bool(t, w, "lstrip", false);
    a.rstrip = json_bool(t, w, "rstrip", false);
    a.normalized = json_bool(t, w, "normalized", !a.special);
    a.single_word = json_bool(t, w, "single_word", false);
    m.added_ids.emplace(a.content, a.id);
    m.added.push_back(std::move(a));
  }
  // Tokens with normalized=true are matched on normalized text, so their patterns are normalized too.
  std::vector<AddedToken> raw, norm;
  std::vector<std::string> raw_patterns, norm_patterns;
  RegexScratch scratch;
  for (const AddedToken& a : m.added) {
    if (a.normalized) {
      norm_patterns.push_back(a.content);
      if (!m.normalizer.is_identity()) m.normalizer.apply(a.content, norm_patterns.back(), scratch);
      norm.push_back(a);
    } else {
      raw_patterns.push_back(a.content);
      raw.push_back(a);
    }
  }
  m.raw_matcher.build(raw, raw_patterns);
  m.normalized_matcher.build(norm, norm_patterns);
}

// The decode table: each id's bytes (HF ByteLevel decoder rule), with added tokens taking precedence.
void build_decode_table(Tokenizer::Impl& m) {
  m.vocab_size = m.bpe.vocab_bound();
  for (const AddedToken& a : m.added) m.vocab_size = std::max(m.vocab_size, a.id + 1);
  std::vector<std::string_view> spelling(m.vocab_size);
  m.known.assign(m.vocab_size, 0);
  m.special.assign(m.vocab_size, 0);
  m.bpe.for_each_token([&](int32_t id, const std::string& token) { spelling[id] = token, m.known[id] = 1; });
  for (const AddedToken& a : m.added) spelling[a.id] = a.content, m.known[a.id] = 1, m.special[a.id] = a.special;
  m.offsets.assign(1, 0);
  for (int32_t id = 0; id < m.vocab_size; ++id) {
    m.bytes += bytelevel_token_bytes(spelling[id]);
    m.offsets.push_back(static_cast<uint32_t>(m.bytes.size()));
  }
}

// bos_token / eos_token: a string, an AddedToken object {"content": ...}, or null.
std::string config_token(const json& cfg, const JsonWhere& w, const char* key) {
  const json& v = member_or_null(cfg, key);
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) return json_string(v, w.field(key), "content");
  w.field(key).fail("is neither a string nor an object with \"content\"");
}

int32_t config_token_id(const Tokenizer::Impl& m, const JsonWhere& w, const char* key, const std::string& token) {
  if (const auto it = m.added_ids.find(token); it != m.added_ids.end()) return it->second;
  if (const int32_t id = m.bpe.find(token); id >= 0) return id;
  w.field(key).fail("names '", token, "', which is not a token of ", m.path);
}

// What add_special puts around the text when tokenizer_config.json does not say: tokenizer.json's post_processor.
void read_post_processor(const json& p, const JsonWhere& w, Tokenizer::Impl& m) {
  if (p.is_null()) return;
  const std::string type = json_type(p, w);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const json& list = json_require(p, w, "processors");
    for (size_t i = 0; i < list.size(); ++i) read_post_processor(list[i], w.field("processors").index(i), m);
  } else if (type == "TemplateProcessing") {
    const json& single = json_require(p, w, "single");
    const json& specials = member_or_null(p, "special_tokens");
    bool after = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const JsonWhere iw = w.field("single").index(i);
      if (single[i].contains("Sequence")) {
        after = true;
        continue;
      }
      const std::string name = json_string(json_require(single[i], iw, "SpecialToken"), iw.field("SpecialToken"), "id");
      if (!specials.is_object() || !specials.contains(name))
        iw.fail("names the special token '", name, "', which special_tokens does not define");
      for (const json& id : json_require(specials[name], w.field("special_tokens").field(name), "ids"))
        (after ? m.suffix_ids : m.prefix_ids).push_back(id.get<int32_t>());
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    m.prefix_ids.push_back(json_require(p, w, "cls").at(1).get<int32_t>());
    m.suffix_ids.push_back(json_require(p, w, "sep").at(1).get<int32_t>());
  } else {
    w.field("type").fail("names the post-processor '", type, "', which afd does not support");
  }
}

void read_config(const std::string& dir, const json& tokenizer_json, Tokenizer::Impl& m) {
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  const JsonWhere pw{m.path, "post_processor"};
  if (!fs::exists(path)) return read_post_processor(member_or_null(tokenizer_json, "post_processor"), pw, m);
  const json cfg = read_json(path);
  const JsonWhere w{path, ""};
  if (!cfg.is_object()) w.fail("is not a JSON object");
  m.bos_token = config_token(cfg, w, "bos_token");
  m.eos_token = config_token(cfg, w, "eos_token");
  if (!m.bos_token.empty()) m.bos_id = config_token_id(m, w, "bos_token", m.bos_token);
  if (!m.eos_token.empty()) m.eos_ids = {config_token_id(m, w, "eos_token", m.eos_token)};

  const json& tmpl = member_or_null(cfg, "chat_template");
  if (tmpl.is_string()) {
    m.chat_template = tmpl.get<std::string>();
  } else if (tmpl.is_array()) {  // [{"name": ..., "template": ...}]: the "default" one
    for (size_t i = 0; i < tmpl.size(); ++i)
      if (i == 0 || member_or_null(tmpl[i], "name") == "default")
        m.chat_template = json_string(tmpl[i], w.field("chat_template").index(i), "template");
  }

  // transformers rebuilds the post-processor from add_bos_token / add_eos_token when the config sets either.
  if (cfg.contains("add_bos_token") || cfg.contains("add_eos_token")) {
    if (json_bool(cfg, w, "add_bos_token", false)) {
      if (m.bos_id < 0) w.field("add_bos_token").fail("is true but bos_token is not set");
      m.prefix_ids = {m.bos_id};
    }
    if (json_bool(cfg, w, "add_eos_token", false)) {
      if (m.eos_ids.empty()) w.field("add_eos_token").fail("is true but eos_token is not set");
      m.suffix_ids = {m.eos_ids[0]};
    }
  } else {
    read_post_processor(member_or_null(tokenizer_json, "post_processor"), pw, m);
  }
}

}  // namespace

std::shared_ptr<Tokenizer::Impl> load_tokenizer(const std::string& path) {
  std::string file = path;
  if (fs::is_directory(path)) file = (fs::path(path) / "tokenizer.json").string();
  AFD_REQUIRE(fs::exists(file), "The tokenizer file ", file, " does not exist.");
  auto m = std::make_shared<Tokenizer::Impl>();
  m->path = file;
  const json j = read_json(file);
  const JsonWhere root{file, ""};
  if (!j.is_object()) root.fail("is not a JSON object");
  try {
    m->normalizer = Normalizer::from_json(member_or_null(j, "normalizer"), root.field("normalizer"));
    m->pre_tokenizer = PreTokenizer::from_json(member_or_null(j, "pre_tokenizer"), root.field("pre_tokenizer"));
    m->bpe = Bpe::from_json(json_require(j, root, "model"), root.field("model"), m->pre_tokenizer.byte_level());
    check_decoder(member_or_null(j, "decoder"), root.field("decoder"));
    read_added_tokens(j, root, *m);
    build_decode_table(*m);
    read_config(fs::path(file).parent_path().string(), j, *m);
  } catch (const json::exception& e) {
    // A value of the wrong JSON type somewhere the checks above do not name a field for.
    afd::fail(file, " (or its tokenizer_config.json): unexpected JSON structure (", e.what(), ").");
  }
  return m;
}

}  // namespace afd::tok
