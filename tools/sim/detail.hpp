// Internal to tools/sim/: what its files share beyond sim.hpp, each piece under the file that
// defines it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sim/sim.hpp"

namespace meridian::sim::detail {

// faults.cpp: `s` without its leading and trailing spaces and tabs.
std::string_view trim(std::string_view s);

// reply.cpp: the token counting and reply text every dialect uses.

// UTF-8 bytes of a content value: a string, or the "text" fields of an array of parts/blocks.
std::size_t text_bytes(const nlohmann::json& content);
// Every message-like item costs 4 tokens of framing plus a token per 4 bytes of text.
int message_tokens(std::size_t bytes);
// The reply tokens as one text.
std::string join(const std::vector<std::string>& tokens);
// The text of the last user turn; Gemini lets a lone turn omit its role.
std::string last_user_text(const nlohmann::json& turns, const char* content_key,
                           bool missing_role_is_user);

// openai.cpp: OpenAI's errors.

// {"error":{"message":...,"type":...,"param":...,"code":...}}
std::string openai_error_body(std::string_view message, std::string_view type,
                              const nlohmann::json& param, const nlohmann::json& code);
// The OpenAI error type of a simulated fault's status.
std::string fault_error_type(int status);

}  // namespace meridian::sim::detail
