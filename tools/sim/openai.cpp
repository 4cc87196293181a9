// The OpenAI dialect: the chat completion's whole and streamed bodies, OpenAI's error body, and
// embeddings (POST /v1/embeddings).
#include "tools/sim/detail.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::sim {

using json = nlohmann::json;

namespace {

json usage_json(int prompt, int completion, int cached) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string base64(const std::string& bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k_alphabet[(n >> s) & 63];
  }
  if (i < bytes.size()) {
    auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? k_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

openai_reply plan_openai_reply(const json& request, std::string_view provider, int reply_tokens,
                               std::uint64_t serial) {
  const std::string model = request.value("model", "");
  const json& messages = request["messages"];
  int count = std::max(0, reply_tokens);
  bool capped = false;
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    auto it = request.find(key);
    if (it != request.end() && it->is_number_integer()) {
      auto cap = it->get<std::int64_t>();
      if (cap >= 0 && cap < count) {
        count = static_cast<int>(cap);
        capped = true;
      }
    }
  }
  std::string last_user;
  bool asked = false;  // the conversation ends with a user turn
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (!it->is_object() || !it->contains("content")) continue;
    const std::string role = it->value("role", "");
    if (role == "system" || role == "developer") continue;
    if (role == "tool") {
      last_user = content_text((*it)["content"]) + (last_user.empty() ? "" : " ") + last_user;
      continue;
    }
    if (role == "user" && last_user.empty()) {
      last_user = content_text((*it)["content"]);
      asked = true;
    }
    break;
  }
  openai_reply r;
  r.model = model;
  r.finish_reason = capped ? "length" : "stop";
  r.prompt_tokens = count_prompt_tokens(messages);
  r.id = "chatcmpl-sim-" + std::to_string(serial);
  r.created = static_cast<std::int64_t>(std::time(nullptr));
  const json* tool = nullptr;
  if (auto tools = request.find("tools"); asked && tools != request.end() && tools->is_array())
    for (const auto& t : *tools)
      if (t.is_object() && t.value("type", "") == "function" && t.contains("function") &&
          t["function"].is_object() && t["function"].contains("name") &&
          t["function"]["name"].is_string()) {
        tool = &t["function"];
        break;
      }
  auto choice = request.find("tool_choice");
  const bool may_call = choice == request.end() || *choice != "none";
  if (tool && may_call && mentions_weather(last_user)) {
    r.tokens = sim::reply_tokens(provider, model, last_user, std::min(count, 8));
    r.tool = tool_call{"call_sim_" + std::to_string(serial), (*tool)["name"].get<std::string>(),
                       tool_arguments(tool->value("parameters", json()))};
    r.finish_reason = "tool_calls";
  } else {
    r.tokens = sim::reply_tokens(provider, model, last_user, count);
  }
  return r;
}

stream_script openai_stream(const openai_reply& r, bool include_usage) {
  const json model_json = r.model;
  const std::string head =
      R"(data: {"id":")" + r.id + R"(","object":"chat.completion.chunk","created":)" +
      std::to_string(r.created) + R"(,"model":)" + model_json.dump() + R"(,"choices":[)";
  stream_script s;
  for (std::size_t i = 0; i < r.tokens.size(); ++i) {
    s.content.push_back(head + R"({"index":0,"delta":{)" +
                        (i == 0 ? R"("role":"assistant",)" : "") + R"("content":)" +
                        json(r.tokens[i]).dump() + R"(},"logprobs":null,"finish_reason":null}]})" +
                        "\n\n");
  }
  if (r.tool) {
    // As OpenAI streams a call: the id and name first with empty arguments, then the arguments
    // in pieces, so a client has to accumulate them.
    const std::string args = r.tool->input.dump();
    const std::size_t half = args.size() / 2;
    const json first = {{"index", 0},
                        {"id", r.tool->id},
                        {"type", "function"},
                        {"function", {{"name", r.tool->name}, {"arguments", ""}}}};
    const std::string role = r.tokens.empty() ? R"("role":"assistant","content":null,)" : "";
    s.epilogue.push_back(head + R"({"index":0,"delta":{)" + role + R"("tool_calls":[)" +
                         first.dump() + R"(]},"logprobs":null,"finish_reason":null}]})" + "\n\n");
    for (const std::string& piece : {args.substr(0, half), args.substr(half)}) {
      const json more = {{"index", 0}, {"function", {{"arguments", piece}}}};
      s.epilogue.push_back(head + R"({"index":0,"delta":{"tool_calls":[)" + more.dump() +
                           R"(]},"logprobs":null,"finish_reason":null}]})" + "\n\n");
    }
  }
  s.epilogue.push_back(head + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":")" +
                       r.finish_reason + R"("}]})" + "\n\n");
  if (include_usage) {
    s.epilogue.push_back(
        head + "]," + R"("usage":)" +
        usage_json(r.prompt_tokens, r.completion_tokens(), r.cached_tokens).dump() + "}\n\n");
  }
  s.epilogue.push_back("data: [DONE]\n\n");
  return s;
}

int openai_reply::completion_tokens() const {
  return static_cast<int>(tokens.size()) + (tool ? k_tool_call_tokens : 0);
}

json openai_completion(const openai_reply& r) {
  json message = {{"role", "assistant"}, {"content", detail::join(r.tokens)}};
  if (r.tool) {
    if (r.tokens.empty()) message["content"] = nullptr;
    message["tool_calls"] =
        json::array({{{"id", r.tool->id},
                      {"type", "function"},
                      {"function", {{"name", r.tool->name}, {"arguments", r.tool->input.dump()}}}}});
  }
  return {{"id", r.id},
          {"object", "chat.completion"},
          {"created", r.created},
          {"model", r.model},
          {"choices", json::array({{{"index", 0},
                                    {"message", std::move(message)},
                                    {"logprobs", nullptr},
                                    {"finish_reason", r.finish_reason}}})},
          {"usage", usage_json(r.prompt_tokens, r.completion_tokens(), r.cached_tokens)}};
}

namespace detail {

std::string openai_error_body(std::string_view message, std::string_view type, const json& param,
                              const json& code) {
  json j = {{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}};
  return j.dump();
}

std::string fault_error_type(int status) {
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

}  // namespace detail

std::vector<double> embedding_vector(std::string_view text) {
  const std::uint64_t seed = fnv1a(text);
  std::vector<double> v(k_embedding_dimensions);
  double norm = 0;
  for (int d = 0; d < k_embedding_dimensions; ++d) {
    const std::uint64_t x = splitmix64(seed + static_cast<std::uint64_t>(d));
    const double unit = static_cast<double>(x >> 11) * 0x1.0p-53;  // [0, 1)
    v[static_cast<std::size_t>(d)] = unit * 2 - 1;
    norm += v[static_cast<std::size_t>(d)] * v[static_cast<std::size_t>(d)];
  }
  norm = std::sqrt(norm);
  for (auto& x : v) x = std::round((norm > 0 ? x / norm : 0) * 1e6) / 1e6;
  return v;
}

nlohmann::json embeddings_response(const nlohmann::json& request, std::string_view model) {
  std::vector<std::string> inputs;
  auto input = request.is_object() ? request.find("input") : request.end();
  if (request.is_object() && input != request.end() && input->is_string()) {
    inputs.push_back(input->get<std::string>());
  } else if (request.is_object() && input != request.end() && input->is_array() &&
             !input->empty()) {
    for (const auto& item : *input) {
      if (!item.is_string()) {
        throw request_error("'input' must be a string or an array of strings");
      }
      inputs.push_back(item.get<std::string>());
    }
  } else {
    throw request_error("'input' must be a string or an array of strings");
  }
  bool as_base64 = false;
  if (auto fmt = request.find("encoding_format"); fmt != request.end() && !fmt->is_null()) {
    if (*fmt == "base64") {
      as_base64 = true;
    } else if (*fmt != "float") {
      throw request_error("'encoding_format' must be 'float' or 'base64'");
    }
  }
  json data = json::array();
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    tokens += (inputs[i].size() + 3) / 4;
    const auto v = embedding_vector(inputs[i]);
    json embedding;
    if (as_base64) {
      // OpenAI's SDKs ask for base64 by default: packed little-endian float32.
      std::string bytes;
      for (double x : v) {
        const auto f = static_cast<float>(x);
        std::uint32_t bits = 0;
        std::memcpy(&bits, &f, sizeof bits);
        for (int b = 0; b < 4; ++b) bytes += static_cast<char>((bits >> (8 * b)) & 0xff);
      }
      embedding = base64(bytes);
    } else {
      embedding = v;
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
}

}  // namespace meridian::sim
