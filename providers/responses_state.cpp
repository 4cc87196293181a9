// What the gateway's stored Responses need of the Responses shape (see responses_inbound.hpp):
// the history a previous response leaves for the next turn, and the pages of its input items.
#include <charconv>

#include "providers/inbound_json.hpp"
#include "providers/responses_inbound.hpp"

namespace meridian::providers {

using inbound::ojson;

std::optional<ojson> responses_history(std::string_view input, std::string_view response) {
  ojson items = inbound::parse_bounded(input);
  ojson r = inbound::parse_bounded(response);
  if (!items.is_array() || !r.is_object()) return std::nullopt;
  const ojson* output = inbound::member(r, "output");
  if (!output || !output->is_array()) return std::nullopt;
  for (const auto& it : *output) items.push_back(it);
  return items;
}

std::variant<std::string, request_error> responses_input_items_page(
    std::string_view items_text, std::optional<std::string_view> limit_text,
    std::optional<std::string_view> order, std::optional<std::string_view> after) {
  std::size_t limit = 20;
  if (limit_text) {
    auto [end, ec] =
        std::from_chars(limit_text->data(), limit_text->data() + limit_text->size(), limit);
    if (ec != std::errc() || end != limit_text->data() + limit_text->size() || limit < 1 ||
        limit > 100)
      return request_error{"limit: must be an integer from 1 to 100", "limit"};
  }
  if (order && *order != "asc" && *order != "desc")
    return request_error{"order: must be asc or desc", "order"};
  ojson items = inbound::parse_bounded(items_text);
  if (!items.is_array()) items = ojson::array();
  if (!order || *order == "desc") std::reverse(items.begin(), items.end());
  std::size_t start = 0;
  if (after) {
    while (start < items.size() && inbound::string_member(items[start], "id") != *after) ++start;
    if (start == items.size())
      return request_error{"after: no input item of this response has the id '" +
                               std::string(*after) + "'",
                           "after"};
    ++start;
  }
  ojson data = ojson::array();
  for (std::size_t i = start; i < items.size() && data.size() < limit; ++i)
    data.push_back(items[i]);
  const bool more = start + data.size() < items.size();
  ojson page{{"object", "list"},
             {"data", data},
             {"first_id", data.empty() ? ojson(nullptr) : data.front()["id"]},
             {"last_id", data.empty() ? ojson(nullptr) : data.back()["id"]},
             {"has_more", more}};
  return page.dump();
}

}  // namespace meridian::providers
