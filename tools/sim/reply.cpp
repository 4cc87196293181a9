// The reply logic every dialect shares: the deterministic reply tokens, message text, prompt
// token counts and the weather trigger for tool calls.
#include "tools/sim/detail.hpp"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::sim {

using json = nlohmann::json;

namespace {

constexpr int k_echo_words = 8;

}  // namespace

namespace detail {

std::size_t text_bytes(const json& content) {
  if (content.is_string()) return content.get_ref<const std::string&>().size();
  std::size_t bytes = 0;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (!part.is_object()) continue;
      auto t = part.find("text");
      if (t != part.end() && t->is_string()) bytes += t->get_ref<const std::string&>().size();
    }
  }
  return bytes;
}

int message_tokens(std::size_t bytes) {
  return static_cast<int>(4 + (bytes + 3) / 4);
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string last_user_text(const json& turns, const char* content_key, bool missing_role_is_user) {
  if (!turns.is_array()) return {};
  for (auto it = turns.rbegin(); it != turns.rend(); ++it) {
    if (!it->is_object()) continue;
    auto role = it->find("role");
    const bool user = role == it->end() ? missing_role_is_user
                                        : role->is_string() && role->get<std::string>() == "user";
    if (user && it->contains(content_key)) return content_text((*it)[content_key]);
  }
  return {};
}

}  // namespace detail

std::vector<std::string> reply_tokens(std::string_view provider, std::string_view model,
                                      std::string_view last_user_text, int count) {
  static constexpr std::string_view k_lorem[] = {
      "lorem",  "ipsum", "dolor",  "sit",     "amet,",  "consectetur", "adipiscing",
      "elit,",  "sed",   "do",     "eiusmod", "tempor", "incididunt",  "ut",
      "labore", "et",    "dolore", "magna",   "aliqua."};
  std::vector<std::string> out;
  if (count <= 0) return out;
  out.reserve(static_cast<std::size_t>(count));
  auto push = [&](std::string_view w) {
    if (static_cast<int>(out.size()) < count) out.push_back(std::string(w) + " ");
  };
  push("Hello");
  push("from");
  push(model);
  push("via");
  push(provider);
  push("(sim).");
  push("You");
  push("said:");
  int echoed = 0;
  std::size_t pos = 0;
  while (echoed < k_echo_words && pos < last_user_text.size()) {
    auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
    while (pos < last_user_text.size() && is_space(last_user_text[pos])) ++pos;
    auto end = pos;
    while (end < last_user_text.size() && !is_space(last_user_text[end])) ++end;
    if (end > pos) {
      push(last_user_text.substr(pos, end - pos));
      ++echoed;
    }
    pos = end;
  }
  for (std::size_t i = 0; static_cast<int>(out.size()) < count; ++i) {
    push(k_lorem[i % std::size(k_lorem)]);
  }
  return out;
}

std::string content_text(const nlohmann::json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (!part.is_object()) continue;
      auto it = part.find("text");
      if (it != part.end() && it->is_string()) {
        if (!out.empty()) out += ' ';
        out += it->get<std::string>();
      }
    }
  }
  return out;
}

int count_prompt_tokens(const nlohmann::json& messages) {
  if (!messages.is_array()) return 0;
  int total = 0;
  for (const auto& m : messages) {
    std::size_t bytes = 0;
    if (m.is_object()) {
      auto it = m.find("content");
      if (it != m.end()) bytes = detail::text_bytes(*it);
    }
    total += detail::message_tokens(bytes);
  }
  return total;
}

bool mentions_weather(std::string_view text) {
  constexpr std::string_view word = "weather";
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    bool match = true;
    for (std::size_t j = 0; j < word.size() && match; ++j) {
      match = std::tolower(static_cast<unsigned char>(text[i + j])) == word[j];
    }
    if (match) return true;
  }
  return false;
}

nlohmann::json tool_arguments(const nlohmann::json& schema) {
  if (schema.is_object() && schema.contains("properties") && schema["properties"].is_object() &&
      !schema["properties"].contains("location") && schema.contains("required") &&
      schema["required"].is_array()) {
    const auto command = schema["properties"].value("command", nlohmann::json());
    const std::string type = command.is_object() ? command.value("type", "") : "";
    const auto cmd = schema["properties"].value("cmd", nlohmann::json());
    const std::string cmd_type = cmd.is_object() ? cmd.value("type", "") : "";
    for (const auto& r : schema["required"]) {
      if (r == "command" && (type == "string" || type == "STRING"))
        return {{"command", "echo meridian-tool-ok"}};
      if (r == "cmd" && (cmd_type == "string" || cmd_type == "STRING"))  // Codex's exec_command
        return {{"cmd", "echo meridian-tool-ok"}};
    }
  }
  return {{"location", "Paris"}};
}

}  // namespace meridian::sim
