// Model addressing: provider/model, unique bare names, ambiguity and unknown models.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "policies/resolve.hpp"

using namespace meridian;

namespace {

providers::catalog demo_catalog() {
  auto cfg = config::parse_config(R"(
providers:
  qwen:
    base_url: http://127.0.0.1:1/v1
    models: { qwen-plus: {}, shared-7b: {} }
  local:
    base_url: http://127.0.0.1:2/v1
    models: { shared-7b: {}, "Qwen/Qwen2.5-7B": {} }
  openai: { preset: openai }
)");
  return providers::build_catalog(cfg, [](const std::string&) { return std::nullopt; });
}

}  // namespace

TEST_CASE("resolve: provider/model and unique bare names") {
  auto cat = demo_catalog();
  auto r = policies::resolve_model(cat, "qwen/qwen-plus");
  REQUIRE(std::holds_alternative<policies::target>(r));
  CHECK(std::get<policies::target>(r).provider->name == "qwen");
  r = policies::resolve_model(cat, "qwen-plus");
  REQUIRE(std::holds_alternative<policies::target>(r));
  CHECK(std::get<policies::target>(r).model->id == "qwen-plus");
  r = policies::resolve_model(cat, "Qwen/Qwen2.5-7B");  // an id with a slash in it
  REQUIRE(std::holds_alternative<policies::target>(r));
  CHECK(std::get<policies::target>(r).provider->name == "local");
}

TEST_CASE("resolve: an ambiguous bare name lists the choices") {
  auto r = policies::resolve_model(demo_catalog(), "shared-7b");
  REQUIRE(std::holds_alternative<policies::resolve_error>(r));
  auto e = std::get<policies::resolve_error>(r);
  CHECK(e.what == policies::resolve_error::kind::ambiguous);
  CHECK(e.message.find("qwen/shared-7b, local/shared-7b") != std::string::npos);
}

TEST_CASE("resolve: unknown models and unavailable providers") {
  auto cat = demo_catalog();
  auto e = std::get<policies::resolve_error>(policies::resolve_model(cat, "nosuch"));
  CHECK(e.what == policies::resolve_error::kind::not_found);
  e = std::get<policies::resolve_error>(policies::resolve_model(cat, "qwen/nosuch"));
  CHECK(e.message.find("not served by provider 'qwen'") != std::string::npos);
  e = std::get<policies::resolve_error>(policies::resolve_model(cat, "openai/gpt-4o"));
  CHECK(e.message.find("OPENAI_API_KEY is not set") != std::string::npos);
}
