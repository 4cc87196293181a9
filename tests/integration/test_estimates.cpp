// Accounting truth when the upstream is silent: the estimate is made from the text actually
// relayed, told to the client as it is billed, marked everywhere, and visible in every aggregate.
#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.hpp"

using namespace meridian::test;
using nlohmann::json;

namespace {

// silent: an OpenAI-dialect server that never reports usage; silentcut: the same, cutting its
// streams after 7 words; claudecut: an Anthropic backend that cuts after 7 words (its
// message_start says output_tokens: 1); claude: an Anthropic backend that reports everything.
const char* k_sim = R"(
providers:
  silent:    { port: 0, models: [m], ttft: 0ms, tokens_per_second: 0, reply_tokens: 12, fault: "no_usage" }
  silentcut: { port: 0, models: [m], ttft: 0ms, tokens_per_second: 200, reply_tokens: 40, fault: "no_usage;cut_after=7" }
  claudecut: { port: 0, dialect: anthropic, models: [claude-x], ttft: 0ms, tokens_per_second: 200, reply_tokens: 40, fault: "cut_after=7" }
  claude:    { port: 0, dialect: anthropic, models: [claude-x], ttft: 0ms, tokens_per_second: 0, reply_tokens: 6 }
)";

std::string gateway_yaml(sim& s, const std::string& ledger) {
  std::string out = "server:\n  listen: 127.0.0.1:0\n  threads: 1\nproviders:\n";
  for (const auto& [name, port] : s.ports) {
    const bool anthropic = name.rfind("claude", 0) == 0;
    out += "  " + name + ": { base_url: \"http://127.0.0.1:" + std::to_string(port) +
           (anthropic ? "/v1\", dialect: anthropic, region: us, models: { claude-x: { input: 3, "
                        "output: 15 } } }\n"
                      : "/v1\", region: local, models: { m: { input: 1, output: 2 } } }\n");
  }
  return out + "stats: { ledger: \"sqlite:" + ledger + "\" }\n";
}

// The documented rule on ASCII text: one token per four characters, rounded up.
std::uint64_t rule(const std::string& ascii) {
  return (ascii.size() + 3) / 4;
}

// The text of every content delta of an OpenAI stream, and whether it ended with [DONE].
std::string relayed_text(stream_client& c, bool& done) {
  std::string text;
  done = false;
  while (auto ev = c.next_event(5s)) {
    if (*ev == "[DONE]") {
      done = true;
      break;
    }
    auto j = json::parse(*ev, nullptr, false);
    if (!j.is_object() || !j.contains("choices") || j["choices"].empty()) continue;
    const auto& delta = j["choices"][0]["delta"];
    if (delta.contains("content") && delta["content"].is_string())
      text += delta["content"].get<std::string>();
  }
  return text;
}

json generation(const gateway& g, const std::string& id) {
  auto r = http_call(g.port, "GET", "/v1/generation?id=" + id);
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

const std::string k_prompt = "please answer";  // 13 characters: 4 tokens by the rule

std::string chat(const std::string& model, bool stream) {
  return R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" + k_prompt +
         "\"}]" + (stream ? R"(,"stream":true)" : "") + "}";
}

}  // namespace

TEST_CASE("estimates: a whole answer without usage is estimated from its text and says so") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/l.db"));
  auto r = http_call(g.port, "POST", "/v1/chat/completions", chat("silent/m", false));
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  const std::string content = j["choices"][0]["message"]["content"];
  // Told to the client: the same numbers the ledger bills, marked.
  CHECK(j["usage"]["estimated"] == true);
  CHECK(j["usage"]["completion_tokens"] == rule(content));
  CHECK(j["usage"]["prompt_tokens"] == rule(k_prompt));
  CHECK(j["usage"]["cost"].get<double>() > 0);
  auto gen = generation(g, r.headers["x-request-id"]);
  CHECK(gen["estimated"] == true);
  CHECK(gen["tokens"]["output"] == rule(content));  // was 0
  CHECK(gen["tokens"]["input"] == rule(k_prompt));
  // The access log says the same.
  auto line = g.proc->wait_line(r.headers["x-request-id"], 2s);
  REQUIRE(line);
  auto access = json::parse(*line);
  CHECK(access["output_tokens"] == rule(content));
  CHECK(access["estimated"] == true);

  // On /v1/messages too: the body's usage is the ledger's, with cost and provider.
  auto m = http_call(g.port, "POST", "/v1/messages",
                     R"({"model":"silent/m","max_tokens":50,"messages":[{"role":"user","content":")" +
                         k_prompt + "\"}]}",
                     {{"anthropic-version", "2023-06-01"}});
  REQUIRE(m.status == 200);
  auto mj = json::parse(m.body);
  CHECK(mj["provider"] == "silent");
  CHECK(mj["usage"]["estimated"] == true);
  auto mgen = generation(g, m.headers["x-request-id"]);
  CHECK(mj["usage"]["input_tokens"] == mgen["tokens"]["input"]);  // was 0 against 10
  CHECK(mj["usage"]["output_tokens"] == mgen["tokens"]["output"]);
  CHECK(mj["usage"]["cost"].get<double>() == doctest::Approx(mgen["cost_usd"].get<double>()));
}

TEST_CASE("estimates: a cut stream without usage is billed for the text it relayed") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/l.db"));
  stream_client c(g.port, chat("silentcut/m", true));
  REQUIRE(c.status() == 200);
  bool done = false;
  const std::string text = relayed_text(c, done);
  CHECK_FALSE(done);
  REQUIRE_FALSE(text.empty());
  auto gen = generation(g, c.headers().at("x-request-id"));
  CHECK(gen["estimated"] == true);
  CHECK(gen["tokens"]["output"] == rule(text));  // was ~40x this: chunk JSON bytes / 4
  CHECK(gen["tokens"]["input"] == rule(k_prompt));
}

TEST_CASE("estimates: an Anthropic stream cut short is not billed message_start's 1 token") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/l.db"));
  stream_client c(g.port, chat("claudecut/claude-x", true));
  REQUIRE(c.status() == 200);
  bool done = false;
  const std::string text = relayed_text(c, done);
  CHECK_FALSE(done);
  auto gen = generation(g, c.headers().at("x-request-id"));
  CHECK(gen["estimated"] == true);  // no final count arrived
  CHECK(gen["tokens"]["output"].get<std::uint64_t>() == std::max<std::uint64_t>(1, rule(text)));
  CHECK(gen["tokens"]["output"].get<std::uint64_t>() > 1);
  CHECK(gen["tokens"]["input"].get<std::uint64_t>() > 0);  // reported by message_start: kept
}

TEST_CASE("estimates: Anthropic answers carry provider and cost; measured ones are not marked") {
  sim s(k_sim);
  temp_dir d;
  gateway g(gateway_yaml(s, d.path() + "/l.db"));
  const std::string body =
      R"({"model":"claude/claude-x","max_tokens":50,"messages":[{"role":"user","content":"hi"}]})";
  auto m = http_call(g.port, "POST", "/v1/messages", body, {{"anthropic-version", "2023-06-01"}});
  REQUIRE(m.status == 200);
  auto mj = json::parse(m.body);
  CHECK(mj["provider"] == "claude");
  CHECK(mj["usage"]["cost"].get<double>() > 0);
  CHECK_FALSE(mj["usage"].contains("estimated"));
  // Streamed: the final message_delta carries them.
  std::string streamed = body;
  streamed.insert(streamed.size() - 1, R"(,"stream":true)");
  stream_client c(g.port, streamed, {{"anthropic-version", "2023-06-01"}}, "/v1/messages");
  REQUIRE(c.status() == 200);
  json delta;
  while (auto ev = c.next_event(5s)) {
    auto j = json::parse(*ev, nullptr, false);
    if (j.is_object() && j.value("type", "") == "message_delta") delta = j;
  }
  REQUIRE(delta.is_object());
  CHECK(delta["provider"] == "claude");
  CHECK(delta["usage"]["cost"].get<double>() > 0);
}

TEST_CASE("estimates: metrics, the share API and meridian stats show the estimated part") {
  sim s(k_sim);
  temp_dir d;
  const std::string ledger = d.path() + "/l.db";
  const std::string cfg = d.write("m.yaml", gateway_yaml(s, ledger));
  std::uint64_t estimated = 0, total = 0;
  {
    gateway g(gateway_yaml(s, ledger));
    for (const char* model : {"silent/m", "claude/claude-x"}) {
      const std::string body =
          std::string(R"({"model":")") + model +
          R"(","max_tokens":50,"messages":[{"role":"user","content":"hi"}]})";
      auto r = http_call(g.port, "POST", "/v1/chat/completions", body);
      REQUIRE(r.status == 200);
      auto gen = generation(g, r.headers["x-request-id"]);
      std::uint64_t sum = 0;
      for (const auto& [k, v] : gen["tokens"].items()) sum += v.get<std::uint64_t>();
      total += sum;
      if (gen["estimated"] == true) estimated += sum;
    }
    REQUIRE(estimated > 0);
    REQUIRE(estimated < total);
    auto metrics = http_call(g.port, "GET", "/metrics").body;
    CHECK(metrics.find("meridian_estimated_tokens_total{provider=\"silent\",type=\"output\"}") !=
          std::string::npos);
    CHECK(metrics.find("meridian_estimated_tokens_total{provider=\"claude\"") == std::string::npos);
    auto share =
        json::parse(http_call(g.port, "GET", "/v1/stats/share?window=1h&by=provider").body);
    CHECK(share["total"]["estimated_tokens"] == estimated);
    CHECK(share["total"]["tokens"] == total);
    for (const auto& row : share["rows"])
      CHECK(row["estimated_share"].get<double>() == (row["key"] == "silent" ? 1.0 : 0.0));
    auto daily = json::parse(http_call(g.port, "GET", "/v1/stats/daily?days=1").body);
    CHECK(daily["series"][0]["estimated_tokens"] == estimated);
    g.proc->signal(SIGTERM);
    REQUIRE(g.proc->wait_exit(10s) == 0);
  }
  process p({MERIDIAN_BIN, "stats", "-c", cfg, "--window", "24h", "--by", "provider"});
  REQUIRE(p.wait_exit(10s) == 0);
  const std::string out = p.output();
  INFO(out);
  CHECK(out.find("estimated") != std::string::npos);
  CHECK(out.find("electricity_usd") != std::string::npos);
  CHECK(out.find("100.00%") != std::string::npos);  // silent's tokens: all estimated
}
