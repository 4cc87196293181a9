// The control thread's work: config reloads (whole, stable versions only, reviewed before they
// apply) and the file watcher, admin keys and budget spends read back from the ledger, and the
// watch on a ledger that cannot write.
#include "gateway/server_impl.hpp"

namespace meridian::gateway::detail {

namespace {

// The file's identity and version: a write between two looks changes at least one of them.
struct file_stamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  timespec mtime{};
  bool operator==(const file_stamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

std::optional<file_stamp> stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return file_stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

// The config file's text as one complete version: read again once if it changed while it was
// read (an editor still writing). nullopt with `error` set when no stable text could be had.
std::optional<std::string> read_whole_version(const std::string& path, std::string& error) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto before = stamp_of(path);
    std::ifstream f(path, std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    if (!before || !f) {
      error = "cannot read " + path;
      return std::nullopt;
    }
    if (stamp_of(path) == before) return text.str();
  }
  error = path + " changed while it was read; the next complete write reloads it";
  return std::nullopt;
}

}  // namespace

// Parses and validates off the event loop, on the control thread, then swaps the snapshot.
// Returns what happened, for logs and the admin answer; a bad file keeps the running config.
std::string server::reload(std::string_view trigger, bool& applied) {
  applied = false;
  if (config_path_.empty()) return "no config file to reload";
  const std::string trigger_json = "\"trigger\":\"" + std::string(trigger) + "\"";
  auto rejected = [&](const std::string& why) {
    metrics_.config_reloads.inc({"failure"});
    log(log_level::error, "config reload rejected; the running config stays",
        trigger_json + ",\"error\":" + nlohmann::json(why).dump());
    return why;
  };
  std::string read_error;
  auto text = read_whole_version(config_path_, read_error);
  if (!text) return rejected(read_error);
  // Editors write a file in several steps; a wake-up with unchanged content is not a reload.
  if (trigger == "file" && *text == loaded_text_) return "unchanged";
  std::shared_ptr<const snapshot> next;
  try {
    next = make_snapshot(*text, config_path_);
  } catch (const std::exception& e) {
    return rejected(e.what());
  }
  const auto review = review_reload(*snap_.load(), *next);
  if (review.refusal) return rejected(*review.refusal);
  for (const auto& change : review.protective)
    log(log_level::warn, "config reload changes protection: " + change, trigger_json);
  if (!review.restart_needed.empty()) {
    std::string names;
    for (const auto& n : review.restart_needed) names += (names.empty() ? "" : ", ") + n;
    log(log_level::warn, names + ": changed, but take effect only after a restart", trigger_json);
  }
  if (review.health_changed) {
    health_.set_options(policies::health_options_from(next->cfg->health));
    affinity_.set_options(next->cfg->affinity.max_sessions, next->cfg->affinity.ttl);
    log(log_level::info, "health options applied (the observations so far are kept)");
  }
  for (const auto& problem : next->key_problems) log(log_level::warn, problem);
  snap_.store(std::move(next));
  loaded_text_ = std::move(*text);
  seed_budgets();
  applied = true;
  metrics_.config_reloads.inc({"success"});
  log(log_level::info, "config reloaded", trigger_json);
  return "applied";
}

// Watches the config file's directory (editors replace files by renaming) and asks the
// control thread to reload when a write of the file is complete (closed after writing) or a
// new version is renamed into place; a modification still in progress is not a reload.
void server::watch_config(std::stop_token stop, std::promise<void>* started) {
  namespace fs = std::filesystem;
  const fs::path file = fs::absolute(config_path_);
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd >= 0 &&
      inotify_add_watch(fd, file.parent_path().c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    ::close(fd);
    fd = -1;
  }
  started->set_value();
  if (fd < 0) {
    log(log_level::warn, "cannot watch the config file; reload with SIGHUP or POST /admin/reload");
    return;
  }
  const std::string name = file.filename().string();
  alignas(inotify_event) char buf[4096];
  while (!stop.stop_requested()) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    ssize_t len = ::read(fd, buf, sizeof buf);
    bool ours = false;
    for (ssize_t i = 0; i < len;) {
      auto* ev = reinterpret_cast<inotify_event*>(buf + i);
      // Kubernetes updates a mounted ConfigMap by swapping the "..data" symlink, not the file.
      if (ev->len && (name == ev->name || std::string_view(ev->name) == "..data")) ours = true;
      i += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
    if (ours)
      net::post(control_, [this] {
        bool applied = false;
        reload("file", applied);
      });
  }
  ::close(fd);
}

std::string server::refresh_admin_keys() {
  if (!ledger_) return "no ledger database (stats.ledger is none)";
  auto stored = ledger_->keys();
  if (auto* e = std::get_if<stats::query_error>(&stored)) return e->message;
  auto table = std::make_shared<key_table>();
  const auto snap = snap_.load();
  for (const auto& k : std::get<std::vector<stats::stored_key>>(stored)) {
    if (k.revoked_ms) continue;
    auto digest = digest_from_hex(k.key_sha256);
    if (!digest || snap->keys.by_name(k.name)) continue;  // a config key of that name wins
    auto v = key_from_spec(k.name, *digest, k.spec);
    if (!v) {  // fail closed: a key whose limits cannot be read is not served
      log(log_level::error, "admin key with an unreadable spec is not served",
          "\"key\":" + nlohmann::json(k.name).dump());
      continue;
    }
    v->created_ms = k.created_ms;
    table->add(std::move(*v));
  }
  admin_keys_.store(std::move(table));
  seed_budgets();
  return {};
}

// Control thread: each budgeted key's spend so far this period, from the ledger, into the
// limit store when it holds none yet (after a restart, or a new period's first request).
void server::seed_budgets() {
  if (!ledger_) return;
  if (steady::now() >= reseed_at_) {
    seeded_.clear();  // seeding only ever raises a spend, so doing it again is safe
    reseed_at_ = steady::now() + std::chrono::seconds(30);
  }
  const auto now = wall_clock::now();
  const auto snap = snap_.load();
  const auto admin = admin_keys_.load();
  for (const auto* table : {&snap->keys, admin.get()}) {
    for (const auto& k : table->all()) {
      if (!k.budget) continue;
      const auto window = budget_window_for(k.budget->period, now);
      if (!seeded_.insert(k.name + "/" + window.id).second) continue;
      auto spent = ledger_->key_spend(k.name, window.start, window.end);
      if (auto* e = std::get_if<stats::query_error>(&spent)) {
        log(log_level::warn, "cannot read a key's spend from the ledger: " + e->message,
            "\"key\":" + nlohmann::json(k.name).dump());
        seeded_.erase(k.name + "/" + window.id);
        continue;
      }
      if (std::holds_alternative<state_unavailable>(
              state_->seed_spent(k.name, window, to_micro_usd(std::get<double>(spent)))))
        seeded_.erase(k.name + "/" + window.id);  // tried again on the next refresh
    }
  }
}

// Control thread, every 2 s: a ledger that cannot write keeps the gateway serving, but says so
// at once and then at most every 30 s, with the backlog, and once more when it writes again.
void server::watch_ledger() {
  if (!ledger_) return;
  auto& w = ledger_watch_;
  const std::uint64_t errors = ledger_->write_errors();
  if (errors > w.errors_seen) {
    w.errors_seen = errors;
    w.failing = true;
    if (steady::now() >= w.next_log) {
      log(log_level::error, "the usage ledger cannot write; events wait in memory and are retried",
          "\"error\":" + nlohmann::json(ledger_->last_error()).dump() +
              ",\"failures\":" + std::to_string(errors - w.errors_logged) +
              ",\"backlog\":" + std::to_string(ledger_->queued()) +
              ",\"dropped\":" + std::to_string(ledger_->dropped()));
      w.errors_logged = errors;
      w.next_log = steady::now() + std::chrono::seconds(30);
    }
  } else if (w.failing && ledger_->last_error().empty()) {
    w.failing = false;
    log(log_level::info, "the usage ledger writes again",
        "\"backlog\":" + std::to_string(ledger_->queued()));
  }
}

}  // namespace meridian::gateway::detail
