// meridian-estimate-accuracy: the token estimator (stats/estimate.hpp) against answers whose true
// usage is known, the fixtures taken from each provider's documentation. Each answer is decoded by
// its dialect as the gateway decodes it (whole, or event by event for .sse streams), its generated
// text estimated by the rule accounting uses, and compared with the output tokens the provider
// reported. Prints one line per fixture and the totals; the figures are in docs/accounting.md.
// Usage: meridian-estimate-accuracy FIXTURES_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "providers/dialect.hpp"
#include "providers/openai.hpp"
#include "providers/sse.hpp"
#include "stats/estimate.hpp"

namespace fs = std::filesystem;
namespace pv = meridian::providers;
using meridian::config::dialect_kind;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct measured {
  std::uint64_t estimate = 0, reported = 0;
  bool ok = false;
};

void tally(std::string_view canonical, meridian::stats::text_tally& t) {
  pv::for_each_generated_text(canonical,
                              [&](std::string_view raw) { meridian::stats::tally_json_string(raw, t); });
}

measured whole(const pv::dialect& d, const std::string& body) {
  measured out;
  auto decoded = d.decode_chat(body, "m");
  auto* ok = std::get_if<pv::decoded_chat>(&decoded);
  if (!ok || !ok->tokens) return out;
  meridian::stats::text_tally t;
  tally(ok->body, t);
  out = {meridian::stats::estimate_tokens(t), ok->tokens->completion_total(), true};
  return out;
}

measured streamed(const pv::dialect& d, const std::string& text) {
  measured out;
  auto decoder = d.stream("m");
  pv::sse_parser sse;
  pv::sse_event ev;
  std::vector<std::string> chunks;
  meridian::stats::text_tally t;
  if (!sse.feed(text)) return out;
  while (sse.next(ev)) {
    chunks.clear();
    if (!decoder->on_event(ev, chunks)) return out;  // an error event: no usage to compare
    for (const auto& c : chunks) tally(c, t);
  }
  auto tokens = decoder->tokens();
  if (!tokens || !decoder->complete()) return out;
  out = {meridian::stats::estimate_tokens(t), tokens->completion_total(), true};
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: meridian-estimate-accuracy FIXTURES_DIR\n");
    return 2;
  }
  std::uint64_t est_sum = 0, rep_sum = 0;
  double abs_err_sum = 0;
  int n = 0;
  std::printf("%-58s %9s %9s %8s\n", "fixture", "reported", "estimate", "error");
  for (const auto& [folder, kind] : {std::pair{"anthropic", dialect_kind::anthropic},
                                     std::pair{"gemini", dialect_kind::gemini},
                                     std::pair{"openai", dialect_kind::openai}}) {
    const fs::path dir = fs::path(argv[1]) / folder;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      const std::string name = p.filename().string();
      if (name.find(".expected.") != std::string::npos) continue;
      const auto& d = pv::dialect_for(kind);
      measured m = p.extension() == ".sse" ? streamed(d, read_file(p))
                   : p.extension() == ".json" ? whole(d, read_file(p))
                                               : measured{};
      if (!m.ok || m.reported == 0) continue;
      const double err = (static_cast<double>(m.estimate) - static_cast<double>(m.reported)) /
                         static_cast<double>(m.reported);
      std::printf("%-58s %9llu %9llu %+7.1f%%\n", (std::string(folder) + "/" + name).c_str(),
                  static_cast<unsigned long long>(m.reported),
                  static_cast<unsigned long long>(m.estimate), err * 100);
      est_sum += m.estimate;
      rep_sum += m.reported;
      abs_err_sum += err < 0 ? -err : err;
      ++n;
    }
  }
  if (n == 0) {
    std::printf("no fixture with reported output tokens\n");
    return 1;
  }
  std::printf("%d answers: reported %llu, estimated %llu (%+.1f%% in total), mean |error| %.1f%%\n",
              n, static_cast<unsigned long long>(rep_sum), static_cast<unsigned long long>(est_sum),
              (static_cast<double>(est_sum) / static_cast<double>(rep_sum) - 1) * 100,
              abs_err_sum / n * 100);
  return 0;
}
