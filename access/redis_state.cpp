// The limit store shared by a fleet: counters in Redis, every check-and-update one Lua script.
// hiredis, blocking, one connection per calling thread; each step bounded by the timeout.
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "access/limits.hpp"

namespace meridian::access {

namespace {

using std::chrono::milliseconds;

// Lua numbers are doubles: exact for everything here (see k_max_rate).
struct script {
  std::string text, sha;
  explicit script(std::string body) : text(std::move(body)) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    char hex[3];
    for (unsigned char b : digest) {
      std::snprintf(hex, sizeof hex, "%02x", b);
      sha += hex;
    }
  }
};

// KEYS: requests previous, requests current, tokens previous, tokens current.
// ARGV: rpm, tpm (0 = none; at most k_max_rate), elapsed ms, window ms, key ttl ms.
// The rule of assess(): a limit fits when previous × (W − elapsed) + current × W + W ≤ limit × W.
const script k_admit(R"lua(
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local m = 100000000000
local function n(i) return math.min(tonumber(v[i]) or 0, m) end
local e, w = tonumber(ARGV[3]), tonumber(ARGV[4])
local function fits(limit, prev, cur)
  return limit == 0 or prev * (w - e) + cur * w + w <= limit * w
end
local ok = fits(tonumber(ARGV[1]), n(1), n(2)) and fits(tonumber(ARGV[2]), n(3), n(4))
if ok then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {ok and 1 or 0, n(1), n(2), n(3), n(4)}
)lua");

// KEYS: tokens current. ARGV: tokens, key ttl ms.
const script k_add_tokens(R"lua(
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua");

// Budget scripts. KEYS: spent (a string), held (a ZSET of "id:amount" scored by expiry ms).
const std::string k_held = R"lua(
local function held(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local sum = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    sum = sum + tonumber(string.match(member, ':(%d+)$'))
  end
  return sum
end
local function spent() return tonumber(redis.call('GET', KEYS[1]) or '0') end
)lua";

// ARGV: limit, amount, member, expires ms, now ms, held key expires at ms.
const script k_reserve(k_held + R"lua(
local s, r, amount = spent(), held(ARGV[5]), tonumber(ARGV[2])
local ok = s + r + amount <= tonumber(ARGV[1])
if ok then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  redis.call('PEXPIREAT', KEYS[2], ARGV[6])
  r = r + amount
end
return {ok and 1 or 0, s, r}
)lua");

// ARGV: member ("" when none), actual cost, spent key expires at ms.
const script k_settle(R"lua(
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
)lua");

// ARGV: spent, spent key expires at ms.
const script k_seed(R"lua(
local s = tonumber(redis.call('GET', KEYS[1]) or '-1')
if s < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
)lua");

// ARGV: now ms.
const script k_budget(k_held + "return {spent(), held(ARGV[1])}\n");

struct target {
  std::string host;
  int port = 6379;
  int db = 0;
};

target parse_url(std::string_view url) {
  const auto bad = [&] {
    return std::invalid_argument("bad Redis URL '" + std::string(url) +
                                 "': expected redis://host:port[/db]");
  };
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme)) throw bad();
  url.remove_prefix(scheme.size());
  target t;
  std::string_view db;
  if (auto slash = url.find('/'); slash != std::string_view::npos) {
    db = url.substr(slash + 1);
    url = url.substr(0, slash);
  }
  const auto number = [&](std::string_view s, int& out, int max) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || out < 0 || out > max)
      throw bad();
  };
  if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    number(url.substr(colon + 1), t.port, 65535);
    url = url.substr(0, colon);
  }
  if (url.empty() || url.find('@') != std::string_view::npos) throw bad();
  t.host = url;
  if (!db.empty()) number(db, t.db, 1 << 20);
  return t;
}

struct context_free {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct reply_free {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using context_ptr = std::unique_ptr<redisContext, context_free>;
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

// A thread's connection to one state's Redis. `owner` expires with the state, and the next call
// on the thread closes the connection.
struct connection {
  std::weak_ptr<void> owner;
  context_ptr context;
};
thread_local std::unordered_map<std::uint64_t, connection> t_connections;

std::atomic<std::uint64_t> g_next_state_id{1};

std::int64_t to_ms(wall_clock::time_point t) {
  return std::chrono::floor<milliseconds>(t.time_since_epoch()).count();
}

// 64 random bits, from a generator seeded per thread with 128 bits of std::random_device.
std::string random_id() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seed{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seed);
  }();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  return hex;
}

class redis_state final : public limit_state {
 public:
  // A zero timeout would make hiredis wait forever.
  redis_state(target t, milliseconds timeout)
      : target_(std::move(t)), timeout_(std::max(timeout, milliseconds(1))) {}

  std::string_view kind() const override { return "redis"; }

  state_result<admission> admit(std::string_view key, const key_limits& limits,
                                wall_clock::time_point now) override {
    const auto [id, elapsed] = rate_window_of(now);
    const auto w = k_rate_window.count();
    auto reply = run(k_admit,
                     {rate_key(key, "rpm", id - 1), rate_key(key, "rpm", id),
                      rate_key(key, "tpm", id - 1), rate_key(key, "tpm", id)},
                     {std::to_string(std::min(limits.rpm, k_max_rate)),
                      std::to_string(std::min(limits.tpm, k_max_rate)),
                      std::to_string(elapsed.count()), std::to_string(w), std::to_string(2 * w)});
    std::int64_t v[5];
    if (auto* failed = integers(reply, v)) return *failed;
    const rate_counts before{static_cast<std::uint64_t>(v[1]), static_cast<std::uint64_t>(v[2]),
                             static_cast<std::uint64_t>(v[3]), static_cast<std::uint64_t>(v[4])};
    auto a = assess(limits, before, elapsed);
    if (a.allowed != (v[0] == 1))  // the script and assess() share one rule; never expected
      return state_unavailable{"redis: admission script disagrees with assess()"};
    return a;
  }

  state_result<done> add_tokens(std::string_view key, std::uint64_t tokens,
                                wall_clock::time_point now) override {
    if (tokens == 0) return done{};
    auto reply = run(k_add_tokens, {rate_key(key, "tpm", rate_window_of(now).id)},
                     {std::to_string(tokens), std::to_string(2 * k_rate_window.count())});
    if (auto* failed = std::get_if<state_unavailable>(&reply)) return *failed;
    return done{};
  }

  state_result<reservation> reserve(std::string_view key, const budget_window& window,
                                    micro_usd limit, micro_usd amount, milliseconds ttl,
                                    wall_clock::time_point now) override {
    reservation r{.id = random_id(), .amount = std::max<micro_usd>(amount, 0), .limit = limit};
    const auto expires = to_ms(now + ttl);
    auto reply =
        run(k_reserve, budget_keys(key, window),
            {std::to_string(limit), std::to_string(r.amount), member(r), std::to_string(expires),
             std::to_string(to_ms(now)), std::to_string(std::max(expires, keep_until(window)))});
    std::int64_t v[3];
    if (auto* failed = integers(reply, v)) return *failed;
    r.granted = v[0] == 1;
    r.after = {v[1], v[2]};
    if (!r.granted) r.id.clear();
    return r;
  }

  state_result<done> settle(std::string_view key, const budget_window& window, const reservation& r,
                            micro_usd actual) override {
    auto reply = run(k_settle, budget_keys(key, window),
                     {r.id.empty() ? "" : member(r), std::to_string(std::max<micro_usd>(actual, 0)),
                      std::to_string(keep_until(window))});
    if (auto* failed = std::get_if<state_unavailable>(&reply)) return *failed;
    return done{};
  }

  state_result<done> seed_spent(std::string_view key, const budget_window& window,
                                micro_usd spent) override {
    auto reply = run(k_seed, budget_keys(key, window),
                     {std::to_string(spent), std::to_string(keep_until(window))});
    if (auto* failed = std::get_if<state_unavailable>(&reply)) return *failed;
    return done{};
  }

  state_result<budget_state> budget(std::string_view key, const budget_window& window,
                                    wall_clock::time_point now) override {
    auto reply = run(k_budget, budget_keys(key, window), {std::to_string(to_ms(now))});
    std::int64_t v[2];
    if (auto* failed = integers(reply, v)) return *failed;
    return budget_state{v[0], v[1]};
  }

 private:
  // "{key}" is a hash tag: one key's counters share a cluster slot, as scripts need.
  static std::string rate_key(std::string_view key, std::string_view what, std::int64_t window) {
    return "meridian:{" + std::string(key) + "}:" + std::string(what) + ":" +
           std::to_string(window);
  }
  static std::vector<std::string> budget_keys(std::string_view key, const budget_window& w) {
    const std::string base = "meridian:{" + std::string(key) + "}:";
    return {base + "spent:" + w.id, base + "held:" + w.id};
  }
  static std::string member(const reservation& r) { return r.id + ":" + std::to_string(r.amount); }
  static std::int64_t keep_until(const budget_window& w) { return to_ms(w.end + k_budget_grace); }

  // The array of integers a script returned, into `out`; or why not.
  template <std::size_t N>
  static const state_unavailable* integers(const state_result<reply_ptr>& result,
                                           std::int64_t (&out)[N]) {
    if (auto* failed = std::get_if<state_unavailable>(&result)) return failed;
    static const state_unavailable malformed{"redis: unexpected reply to a limit script"};
    const redisReply* r = std::get<reply_ptr>(result).get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != N) return &malformed;
    for (std::size_t i = 0; i < N; ++i) {
      if (r->element[i]->type != REDIS_REPLY_INTEGER) return &malformed;
      out[i] = r->element[i]->integer;
    }
    return nullptr;
  }

  state_unavailable failure(std::string_view what) const {
    return {"redis " + target_.host + ":" + std::to_string(target_.port) + ": " +
            std::string(what)};
  }

  // After a failure every thread answers at once for k_backoff instead of each waiting up to the
  // timeout again: an unreachable Redis must not stall the event loops that call it.
  static constexpr milliseconds k_backoff{1000};
  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  state_unavailable failed_now(state_unavailable f) {
    retry_at_ms_.store(steady_ms() + k_backoff.count(), std::memory_order_relaxed);
    return f;
  }

  // This thread's connection, connecting when there is none (or the last one failed).
  state_result<redisContext*> context() {
    std::erase_if(t_connections, [](const auto& c) { return c.second.owner.expired(); });
    auto& conn = t_connections[id_];
    if (conn.context) return conn.context.get();
    if (steady_ms() < retry_at_ms_.load(std::memory_order_relaxed))
      return failure("unreachable a moment ago; not retried for " +
                     std::to_string(k_backoff.count()) + " ms");
    const auto ms = timeout_.count();
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    context_ptr c(redisConnectWithTimeout(target_.host.c_str(), target_.port, tv));
    if (!c) return failed_now(failure("cannot allocate a connection"));
    if (c->err) return failed_now(failure(c->errstr));
    if (redisSetTimeout(c.get(), tv) != REDIS_OK) return failed_now(failure(c->errstr));
    if (target_.db != 0) {
      reply_ptr r(static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", target_.db)));
      if (!r) return failure(c->errstr);
      if (r->type == REDIS_REPLY_ERROR) return failure(r->str);
    }
    conn = {alive_, std::move(c)};
    return conn.context.get();
  }

  // EVALSHA, then EVAL when Redis lacks the script. Drops the connection on an I/O error (a late
  // reply would otherwise answer the next command), so the next call reconnects.
  state_result<reply_ptr> run(const script& s, const std::vector<std::string>& keys,
                              const std::vector<std::string>& args) {
    auto ctx = context();
    if (auto* failed = std::get_if<state_unavailable>(&ctx)) return *failed;
    redisContext* c = std::get<redisContext*>(ctx);
    std::vector<std::string> words{"EVALSHA", s.sha, std::to_string(keys.size())};
    words.insert(words.end(), keys.begin(), keys.end());
    words.insert(words.end(), args.begin(), args.end());
    for (bool retry = true;; retry = false) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (const auto& w : words) {
        argv.push_back(w.data());
        lengths.push_back(w.size());
      }
      reply_ptr r(static_cast<redisReply*>(
          redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
      if (!r) {
        auto f = failure(std::string(c->errstr[0] ? c->errstr : "no reply") + " (timeout " +
                         std::to_string(timeout_.count()) + " ms)");
        t_connections.erase(id_);
        return failed_now(std::move(f));
      }
      if (r->type != REDIS_REPLY_ERROR) return r;
      const std::string_view error(r->str, r->len);
      if (!retry || !error.starts_with("NOSCRIPT")) return failure(error);
      words[0] = "EVAL";
      words[1] = s.text;
    }
  }

  target target_;
  milliseconds timeout_;
  std::atomic<std::int64_t> retry_at_ms_{0};  // steady clock; no connecting before this
  std::uint64_t id_ = g_next_state_id++;
  std::shared_ptr<void> alive_ = std::make_shared<char>();
};

}  // namespace

std::unique_ptr<limit_state> make_redis_state(const config::state_config& options) {
  return std::make_unique<redis_state>(parse_url(options.url), options.timeout);
}

}  // namespace meridian::access
