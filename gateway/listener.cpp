// Listeners and the process's lifetime: one io_context and SO_REUSEPORT acceptor per thread (and
// the admin listener), the accept loop with its back-off and per-listener connection caps, the
// control thread's signals and timers, and the drain on SIGTERM.
#include "gateway/server_impl.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstring>

namespace meridian::gateway::detail {

awaitable<void> server::accept_loop(worker& w, tcp::acceptor& acceptor, bool admin) {
  const auto max_conn = snap_.load()->cfg->server.limits.max_connections;
  auto& open_here = admin ? admin_connections_ : public_connections_;
  const std::string listener = admin ? "admin" : "public";
  std::chrono::milliseconds pause{0};
  std::uint64_t unlogged = 0;
  steady::time_point next_log{};
  net::steady_timer timer(w.ioc);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(as_tuple);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      const bool exhausted = ec == net::error::no_descriptors || ec.value() == ENFILE ||
                             ec == net::error::no_buffer_space || ec == net::error::no_memory;
      const std::string reason = ec == net::error::no_descriptors ? "emfile"
                                 : ec.value() == ENFILE           ? "enfile"
                                 : exhausted                      ? "no_memory"
                                                                  : "other";
      metrics_.accept_errors.inc({listener, reason});
      ++unlogged;
      if (steady::now() >= next_log) {
        log(log_level::warn, "accept failed: " + ec.message(),
            "\"listener\":\"" + listener + "\",\"count\":" + std::to_string(unlogged) +
                ",\"backoff_ms\":" + std::to_string(pause.count()));
        unlogged = 0;
        next_log = steady::now() + std::chrono::seconds(5);
      }
      if (exhausted) {
        pause = std::min<std::chrono::milliseconds>(
            std::max<std::chrono::milliseconds>(pause * 2, std::chrono::milliseconds(50)),
            std::chrono::seconds(1));
        timer.expires_after(pause);
        co_await timer.async_wait(as_tuple);
      }
      continue;
    }
    pause = std::chrono::milliseconds(0);
    if (open_here.fetch_add(1) >= max_conn) {
      --open_here;
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++connections_;
    socket.set_option(tcp::no_delay(true));
    net::co_spawn(w.ioc, session(w, std::move(socket), admin), [](std::exception_ptr e) {
      if (e) log(log_level::error, "session ended by an exception");
    });
  }
}

void server::begin_drain() {
  draining_ = true;
  for (auto& w : workers_) {
    net::post(w->ioc, [wp = w.get()] {
      error_code ignored;
      wp->acceptor->close(ignored);
      if (wp->admin_acceptor) wp->admin_acceptor->close(ignored);
      for (auto* s : wp->idle) s->cancel();
    });
  }
}

namespace {

// server.cpus: the CPUs this process may use that the event loops are not pinned to, where
// every thread but the event loops then runs; empty when the loops take them all (an operator
// who ran Meridian under `taskset` keeps that placement). The threads that exist already (the
// ledger writer, the response store, the exporters) are moved; threads started later inherit
// the control thread's set, which is this one.
std::string place_background_threads(const std::vector<unsigned>& loop_cpus) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return std::string("sched_getaffinity: ") + std::strerror(errno);
  for (unsigned c : loop_cpus)
    if (!CPU_ISSET(c, &allowed))
      return "server.cpus: CPU " + std::to_string(c) + " is not one this process may run on";
  cpu_set_t rest = allowed;
  for (unsigned c : loop_cpus) CPU_CLR(c, &rest);
  if (CPU_COUNT(&rest) == 0) return {};
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const pid_t tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
    if (::sched_setaffinity(tid, sizeof rest, &rest) != 0)
      return "cannot move thread " + std::to_string(tid) + ": " + std::strerror(errno);
  }
  return {};
}

}  // namespace

int server::run() {
  const auto first = snap_.load();
  const auto& cfg = *first->cfg;
  unsigned n =
      cfg.server.threads ? cfg.server.threads : std::max(1u, std::thread::hardware_concurrency());
  error_code ec;
  auto address = net::ip::make_address(cfg.server.listen.host, ec);
  if (ec) {
    log(log_level::error, "server.listen: invalid address " + cfg.server.listen.host);
    return 1;
  }
  tcp::endpoint ep(address, cfg.server.listen.port);
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>();
    w->acceptor = std::make_unique<tcp::acceptor>(w->ioc);
    w->acceptor->open(ep.protocol(), ec);
    if (!ec) w->acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(w->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
          0)
        ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) w->acceptor->bind(ep, ec);
    if (!ec) w->acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      log(log_level::error, "cannot listen on " + cfg.server.listen.host + ":" +
                                std::to_string(ep.port()) + ": " + ec.message());
      return 1;
    }
    ep.port(w->acceptor->local_endpoint().port());  // port 0: the others join the one picked
    workers_.push_back(std::move(w));
  }
  if (cfg.server.admin_listen) {
    const auto& al = *cfg.server.admin_listen;
    auto admin_address = net::ip::make_address(al.host, ec);
    auto& w = *workers_.front();
    if (!ec) {
      w.admin_acceptor = std::make_unique<tcp::acceptor>(w.ioc);
      tcp::endpoint aep(admin_address, al.port);
      w.admin_acceptor->open(aep.protocol(), ec);
      if (!ec) w.admin_acceptor->set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) w.admin_acceptor->bind(aep, ec);
      if (!ec) w.admin_acceptor->listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      log(log_level::error, "cannot listen on server.admin_listen " + al.host + ":" +
                                std::to_string(al.port) + ": " + ec.message());
      return 1;
    }
    std::printf("{\"event\":\"admin_listening\",\"address\":\"%s\",\"port\":%u}\n", al.host.c_str(),
                static_cast<unsigned>(w.admin_acceptor->local_endpoint().port()));
  }
  // Nothing is served before the admin keys are known and each budget's spend so far this
  // period is back from the ledger (a restart must not refill a budget).
  if (auto problem = refresh_admin_keys(); !problem.empty() && ledger_)
    log(log_level::warn, "admin keys not loaded: " + problem);
  // Signals are caught from before "listening" is announced: a SIGTERM right after that line
  // still drains (asio queues it until the control loop waits for it).
  net::signal_set signals(control_, SIGINT, SIGTERM, SIGHUP);
  // Watching starts before "listening" is announced, so no change after that line is missed.
  std::jthread watcher;
  if (!config_path_.empty()) {
    std::promise<void> watching;
    auto started = watching.get_future();
    watcher = std::jthread([this, &watching](std::stop_token st) { watch_config(st, &watching); });
    started.wait();
  }
  // Before "listening": whoever reads the threads' placement after that line sees it done.
  const auto& cpus = cfg.server.cpus;
  if (!cpus.empty()) {
    if (auto problem = place_background_threads(cpus); !problem.empty()) {
      log(log_level::error, problem);
      return 1;
    }
  }
  std::printf("{\"event\":\"listening\",\"address\":\"%s\",\"port\":%u,\"threads\":%u}\n",
              cfg.server.listen.host.c_str(), static_cast<unsigned>(ep.port()), n);
  std::fflush(stdout);
  for (const auto& p : first->catalog.providers) metrics_.provider_up.set({p.name}, 1);
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto& w = workers_[i];
    net::co_spawn(w->ioc, accept_loop(*w, *w->acceptor, false), net::detached);
    if (w->admin_acceptor)
      net::co_spawn(w->ioc, accept_loop(*w, *w->admin_acceptor, true), net::detached);
    const int cpu = cpus.empty() ? -1 : static_cast<int>(cpus[i % cpus.size()]);
    w->thread = std::thread([wp = w.get(), cpu] {
      if (cpu >= 0) {  // checked above: the process may run on it
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        ::pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      }
      wp->ioc.run();
    });
  }

  // The control thread (this one): signals, reloads, and the config file watcher's wake-ups.
  auto guard = net::make_work_guard(control_);
  // Admin keys and budget spends come from the ledger's database (read before "listening",
  // below); re-read every few seconds so a key created or revoked on one gateway of a fleet
  // reaches the others.
  net::steady_timer key_refresh(control_);
  std::function<void(const error_code&)> on_refresh = [&](const error_code& tec) {
    if (tec) return;
    refresh_admin_keys();
    watch_ledger();
    key_refresh.expires_after(std::chrono::seconds(2));
    key_refresh.async_wait(on_refresh);
  };
  key_refresh.expires_after(std::chrono::seconds(2));
  key_refresh.async_wait(on_refresh);
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& sec, int sig) {
    if (sec) return;
    if (sig == SIGHUP) {
      bool applied = false;
      reload("sighup", applied);
      signals.async_wait(on_signal);
      return;
    }
    log(log_level::info, "shutting down: draining in-flight requests",
        "\"signal\":" + std::to_string(sig) + ",\"inflight\":" + std::to_string(inflight_.load()));
    begin_drain();
    guard.reset();
    key_refresh.cancel();
    control_.stop();
  };
  signals.async_wait(on_signal);
  control_.run();
  watcher = {};
  const auto drain_deadline = steady::now() + cfg.server.timeouts.drain;
  while ((inflight_ > 0 || connections_ > 0) && steady::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool clean = inflight_ == 0;
  if (!clean)
    log(log_level::warn, "drain deadline passed; closing remaining requests",
        "\"inflight\":" + std::to_string(inflight_.load()));
  for (auto& w : workers_) w->ioc.stop();
  for (auto& w : workers_) w->thread.join();
  if (ledger_) {
    ledger_->stop();  // writes everything still queued: a clean shutdown loses no accounting
    if (!ledger_->last_error().empty())
      log(log_level::error,
          "the usage ledger could not write everything: " + ledger_->last_error());
  }
  log(log_level::info, "stopped");
  return 0;
}

}  // namespace meridian::gateway::detail

namespace meridian::gateway {

int serve(std::shared_ptr<const snapshot> snap, const std::string& config_path,
          const std::string& config_text) {
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<detail::server> s;
  try {
    s = std::make_unique<detail::server>(std::move(snap), config_path, config_text);
  } catch (const std::exception& e) {  // e.g. a state URL the Redis client cannot use
    log(log_level::error, std::string("cannot start: ") + e.what());
    return 1;
  }
  return s->run();
}

}  // namespace meridian::gateway
