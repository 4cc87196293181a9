// The command line: `meridian check` on good, bad and example files; usage errors.
#include <doctest/doctest.h>

#include <sched.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/harness.hpp"

using namespace meridian::test;

namespace {

struct run_result {
  int code;
  std::string out;
};

run_result run(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> argv{MERIDIAN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  // stderr joins stdout so one pipe carries both
  process p({"/bin/sh", "-c",
             [&] {
               std::string cmd;
               for (const auto& a : argv) cmd += "'" + a + "' ";
               return cmd + "2>&1";
             }()},
            env);
  auto code = p.wait_exit(10s);
  std::string out;
  p.wait_line("\x01", 200ms);  // let the reader drain
  for (const auto& l : p.lines()) out += l + "\n";
  return {code.value_or(-1), out};
}

}  // namespace

TEST_CASE("cli: check prints the resolved providers and models and reports skipped ones") {
  temp_dir d;
  auto file = d.write("m.yaml", R"(
providers:
  deepseek: { preset: deepseek, api_key_env: MERIDIAN_TEST_UNSET_KEY }
  openai: { preset: openai, api_key_env: MERIDIAN_TEST_OPENAI_KEY }
  local:
    base_url: http://127.0.0.1:11434/v1
    region: local
    models: { "qwen2.5:7b": { quality: 55 } }
  zai: { preset: zhipu-intl, base_url: "http://127.0.0.1:9/v1", models: { glm-4.6: { quality: 90 } } }
)");
  auto r = run({"check", "-c", file}, {{"MERIDIAN_TEST_OPENAI_KEY", "sk-secret-value-123"}});
  CHECK(r.code == 0);
  CHECK(r.out.find("deepseek     skipped: MERIDIAN_TEST_UNSET_KEY is not set") !=
        std::string::npos);
  CHECK(r.out.find("openai/gpt-4o-mini") != std::string::npos);
  CHECK(r.out.find("local/qwen2.5:7b") != std::string::npos);
  CHECK(r.out.find("sk-secret-value-123") == std::string::npos);  // keys are never printed
  // Where each value came from: the file, the catalog, or the catalog overridden by the file.
  auto line_of = [&](const std::string& start) {
    auto at = r.out.find("\n  " + start + " ");
    return at == std::string::npos ? std::string()
                                   : r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
  };
  CHECK(line_of("openai/gpt-4o-mini").ends_with(" catalog"));
  CHECK(line_of("local/qwen2.5:7b").ends_with(" file"));
  CHECK(line_of("zai/glm-4.6").ends_with(" catalog+file"));
  // A preset pointed at loopback runs without its key; its URL is the file's, its region the
  // catalog's.
  CHECK(line_of("zai").find("no key (loopback)") != std::string::npos);
  CHECK(line_of("zai").find("file/catalog") != std::string::npos);
}

TEST_CASE("cli: check exits 1 with the YAML path and line of a mistake") {
  temp_dir d;
  auto file = d.write("bad.yaml", "server:\n  timeouts:\n    header: 10\n");
  auto r = run({"check", "-c", file});
  CHECK(r.code == 1);
  CHECK(r.out.find("server.timeouts.header (line 3)") != std::string::npos);
  auto missing = run({"check", "-c", d.path() + "/nope.yaml"});
  CHECK(missing.code == 1);
}

TEST_CASE("cli: check and serve refuse an empty file") {
  temp_dir d;
  for (const char* text : {"", "# nothing but a comment\n"}) {
    auto file = d.write("empty.yaml", text);
    auto r = run({"check", "-c", file});
    CHECK(r.code == 1);
    CHECK(r.out.find("the config is empty") != std::string::npos);
    CHECK(run({"serve", "-c", file}).code == 1);
  }
}

TEST_CASE("cli: every example config passes check") {
  int seen = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(MERIDIAN_SOURCE_DIR) + "/config/examples")) {
    if (e.path().extension() != ".yaml") continue;
    ++seen;
    auto r = run({"check", "-c", e.path().string()});
    INFO(e.path().string() << "\n" << r.out);
    CHECK(r.code == 0);
  }
  CHECK(seen >= 2);
}

TEST_CASE("cli: usage errors exit 2") {
  CHECK(run({}).code == 2);
  CHECK(run({"serve"}).code == 2);
  CHECK(run({"frobnicate", "-c", "x"}).code == 2);
  CHECK(run({"serve", "-c", "x", "--log-level", "loud"}).code == 2);
  CHECK(run({"--version"}).out.find("meridian ") == 0);
}

TEST_CASE("cli: check --strict fails on what would leave production quietly degraded") {
  temp_dir d;
  auto degraded = d.write("m.yaml", R"(
providers:
  deepseek: { preset: deepseek, api_key_env: MERIDIAN_TEST_UNSET_KEY }
  local:
    base_url: http://127.0.0.1:11434/v1
    region: local
    models: { "qwen2.5:7b": { quality: 55 } }
  empty: { base_url: "http://127.0.0.1:9/v1", region: local }
  far: { base_url: "http://127.0.0.1:8/v1", region: mars, models: { m: {} } }
routes:
  - { match: cn, candidates: [deepseek/*] }
  - { match: fine, candidates: [local/*] }
)");
  // Valid as it is: plain check passes, as a CI without secrets would see it.
  CHECK(run({"check", "-c", degraded}).code == 0);
  auto r = run({"check", "-c", degraded, "--strict"});
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("strict: 4 problems") != std::string::npos);
  CHECK(r.out.find("error: provider 'deepseek' is skipped: MERIDIAN_TEST_UNSET_KEY is not set") !=
        std::string::npos);
  CHECK(r.out.find("error: provider 'empty' declares no models") != std::string::npos);
  CHECK(r.out.find("error: provider 'far': region 'mars' is not declared under regions") !=
        std::string::npos);
  CHECK(r.out.find("error: route 'cn' has no usable candidate") != std::string::npos);
  CHECK(r.out.find("route 'fine'") == std::string::npos);

  auto healthy = d.write("ok.yaml", R"(
providers:
  local:
    base_url: http://127.0.0.1:11434/v1
    region: local
    models: { "qwen2.5:7b": { quality: 55 } }
routes:
  - { match: auto, candidates: [local/*] }
)");
  auto ok = run({"check", "-c", healthy, "--strict"});
  CHECK(ok.code == 0);
  CHECK(ok.out.find("strict: no problems") != std::string::npos);
  // --strict belongs to check only.
  CHECK(run({"serve", "-c", healthy, "--strict"}).code == 2);
}

TEST_CASE("cli: check reports every mistake of a file in one run, each on its own line") {
  temp_dir d;
  auto file = d.write("m.yaml", R"(server:
  listen: nope
providers:
  a: { base_url: "http://127.0.0.1:99999/v1", region: local, models: { m: {} } }
  b: { base_url: "http://127.0.0.1:8000/v1", region: local, models: { m: { quality: 900 } } }
  c: { base_url: "http://127.0.0.1:8001/v1", region: local, models: { m: {} } }
stats: { retain: 7d }
keys:
  - { name: k, key_sha256: "abc" }
)");
  auto r = run({"check", "-c", file});
  INFO(r.out);
  CHECK(r.code == 1);
  for (const char* where :
       {"server.listen (line 2)", "providers.a.base_url (line 4)", "providers.b.models.m.quality",
        "stats.retain (line 7)", "keys[0]"}) {
    CHECK_MESSAGE(r.out.find(std::string("error: ") + file + ": " + where) != std::string::npos,
                  where);
  }
  CHECK(r.out.find("providers.c") == std::string::npos);  // the good provider is not blamed
}

namespace {

// Each thread of `pid` with the CPUs it may run on (/proc/PID/task/TID/status).
std::map<std::string, std::string> thread_cpus(pid_t pid) {
  std::map<std::string, std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(dir)) {
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0)
        out[t.path().filename().string()] = line.substr(line.find_first_not_of(" \t", 18));
  }
  return out;
}

}  // namespace

TEST_CASE("cli: server.cpus pins the event loop and moves every other thread to the rest") {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  REQUIRE(sched_getaffinity(0, sizeof mine, &mine) == 0);
  unsigned first = 0;
  while (!CPU_ISSET(first, &mine)) ++first;
  const std::string cpu = std::to_string(first);
  gateway g("server:\n  listen: 127.0.0.1:0\n  threads: 1\n  cpus: [" + cpu +
            "]\nproviders:\n  p: { base_url: \"http://127.0.0.1:" + std::to_string(closed_port()) +
            "/v1\", region: us, models: { m: {} } }\n");
  // An answered request: the event loop runs, and it pins itself before it runs.
  REQUIRE(http_call(g.port, "GET", "/healthz").status == 200);
  const auto threads = thread_cpus(g.proc->pid());
  REQUIRE(threads.size() >= 2);  // the control thread and the event loop at least
  int loops = 0;
  for (const auto& [tid, cpus] : threads) {
    CAPTURE(tid);
    CAPTURE(cpus);
    if (cpus == cpu) ++loops;
  }
  if (CPU_COUNT(&mine) >= 2) {
    CHECK(loops == 1);  // the event loop alone; the ledger writer and the rest moved off it
    CHECK(threads.at(std::to_string(g.proc->pid())) != cpu);  // the control thread
  } else {
    CHECK(loops == static_cast<int>(threads.size()));  // one CPU: nowhere else to go
  }
}

TEST_CASE("cli: serve refuses server.cpus naming a CPU the process may not use") {
  temp_dir d;
  auto file = d.write("cpus.yaml",
                      "server:\n  listen: 127.0.0.1:0\n  cpus: [1023]\nproviders:\n"
                      "  p: { base_url: \"http://127.0.0.1:9/v1\", models: { m: {} } }\n");
  auto r = run({"serve", "-c", file});
  CHECK(r.code == 1);
  CHECK(r.out.find("server.cpus: CPU 1023 is not one this process may run on") !=
        std::string::npos);
  auto twice = d.write("twice.yaml",
                       "server:\n  cpus: [0, 0]\nproviders:\n"
                       "  p: { base_url: \"http://127.0.0.1:9/v1\", models: { m: {} } }\n");
  auto c = run({"check", "-c", twice});
  CHECK(c.code == 1);
  CHECK(c.out.find("CPU 0 is listed twice") != std::string::npos);
}
