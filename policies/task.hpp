// What a request is for: a fast, explainable, in-process classifier of the prompt's task and
// language. Rules over the text's features (code fences, keywords in English and Chinese,
// symbols, formulas, translation verbs) and over the request (tools, size): microseconds, no
// network, no model weights. It is a heuristic and is published with its measured precision and
// recall on tests/fixtures/tasks/prompts.jsonl (docs/routing.md); it never sees more than the
// last user message's first k_task_sample bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meridian::policies {

enum class task { code, math, translation, long_context, tool_use, chat };

std::string_view to_string(task t);
std::optional<task> parse_task(std::string_view text);

struct task_guess {
  task what = task::chat;
  std::string_view language;  // "zh", "ja", "ko", "en" (any Latin script), "" when no letters
  std::string_view why;       // the rule that decided, for `meridian route`
};

// How much of the last user message the classifier reads: enough to say what is asked, and a
// bound on its cost per request.
inline constexpr std::size_t k_task_sample = 1024;

// Prompts of at least this many estimated tokens are long_context unless the text says code,
// math or translation.
inline constexpr std::uint64_t k_long_context_tokens = 32000;

// `text`: the last user message's text; `has_tools`: the request defines tools;
// `prompt_tokens`: the whole prompt's estimate.
task_guess classify_task(std::string_view text, bool has_tools, std::uint64_t prompt_tokens);

}  // namespace meridian::policies
