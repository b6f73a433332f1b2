// afd-bench-tokenizer: single-thread encode throughput (MB/s of UTF-8 input) of afd's tokenizer on English prose,
// Python code and Chinese text, for the DeepSeek-V3 tokenizer and the bundled pystdlib-moe one (bench/RESULTS.md).
//
// Texts (what they really are):
//   english: the license texts in /usr/share/common-licenses (GPL, LGPL, GFDL, Apache, MPL, ...): English prose;
//   code:    models/pystdlib-moe/eval.txt: held-out Python source;
//   chinese: synthetic, generated here (seeded): words of 1-3 characters drawn from ~400 common Chinese characters,
//            in sentences with Chinese punctuation. Real text would have more repetition (more cache hits).
// "cold": the median of 3 first encodes after a fresh load (empty word cache); "warm": the median of later passes
// over the same text (at least 5, at least 1 s). Single thread; the text is encoded whole, as one call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string english() {
  std::string text;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) text += read_file(f.string()) + "\n";
  return text;
}

std::string chinese(size_t bytes) {
  static const char* kChars =
      "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家"
      "十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从已现把实明工两长知民"
      "样正体关高回等情意本问新但部很最重力理物手本机外开水电路车间之各全部市场金融科技教育文化历史社会经济政治环境"
      "研究发展问题系统数据网络信息计算语言模型训练结果方法影响世界城市山河风雨春夏秋冬花草树木东西南北朋友老师学生"
      "孩子父母医生医院健康生活工作时间空间速度质量服务价格产品公司企业管理设计建设安全能源交通旅游音乐电影书籍历史";
  std::vector<std::string> chars;
  const std::string_view all(kChars);
  for (size_t i = 0; i < all.size();) {
    const size_t start = i;
    afd::tok::next_codepoint(all, i);
    chars.emplace_back(all.substr(start, i - start));
  }
  const char* kPunct[] = {"，", "，", "，", "。", "。", "、", "；", "？", "！", "：“", "”"};
  std::mt19937_64 rng(42);
  std::string text;
  while (text.size() < bytes) {
    for (int w = 0, words = 3 + static_cast<int>(rng() % 8); w < words; ++w)
      for (int c = 0, n = 1 + static_cast<int>(rng() % 3); c < n; ++c) text += chars[rng() % chars.size()];
    text += kPunct[rng() % std::size(kPunct)];
    if (rng() % 12 == 0) text += "\n";
  }
  return text;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void bench(const std::string& tok_name, const std::string& tok_path, const std::string& text_name,
           const std::string& text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  std::vector<double> cold;  // each on a freshly loaded tokenizer: an empty word cache
  for (int rep = 0; rep < 3; ++rep) {
    const auto fresh = afd::tok::Tokenizer::load(tok_path);
    ids.clear();
    const auto t0 = Clock::now();
    fresh.encode_into(text, false, ids);
    cold.push_back(seconds_since(t0));
  }
  std::sort(cold.begin(), cold.end());
  const size_t n_tokens = ids.size();
  const auto tok = afd::tok::Tokenizer::load(tok_path);
  std::vector<double> warm;
  const auto start = Clock::now();
  while (warm.size() < 5 || seconds_since(start) < 1.0) {
    ids.clear();
    const auto t0 = Clock::now();
    tok.encode_into(text, false, ids);
    warm.push_back(seconds_since(t0));
  }
  std::sort(warm.begin(), warm.end());
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("| %-12s | %-8s | %8.1f | %9zu | %10.1f | %10.1f |\n", tok_name.c_str(), text_name.c_str(),
              static_cast<double>(text.size()) / 1024.0, n_tokens, mb / cold[1], mb / warm[warm.size() / 2]);
}

}  // namespace

int main() {
  const std::string src = AFD_SOURCE_DIR;
  const std::string ds = src + "/tests/data/tokenizers/deepseek_v3/tokenizer.json";
  const std::string py = src + "/models/pystdlib-moe/tokenizer.json";
  if (!fs::exists(ds)) {
    std::fprintf(stderr, "afd-bench-tokenizer: %s is missing: run tools/fetch-tokenizers.sh first.\n", ds.c_str());
    return 1;
  }
  if (!fs::exists("/usr/share/common-licenses")) {
    std::fprintf(stderr, "afd-bench-tokenizer: /usr/share/common-licenses (the English text) is missing.\n");
    return 1;
  }
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"english", english()}, {"code", read_file(src + "/models/pystdlib-moe/eval.txt")}, {"chinese", chinese(300000)}};
  std::printf("| tokenizer    | text     | size KiB |    tokens | cold MB/s  | warm MB/s  |\n");
  std::printf("|--------------|----------|----------|-----------|------------|------------|\n");
  for (const auto& [name, path] : {std::pair{std::string("deepseek_v3"), ds}, std::pair{std::string("pystdlib"), py}})
    for (const auto& [text_name, text] : texts) bench(name, path, text_name, text);
  return 0;
}
