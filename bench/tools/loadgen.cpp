// meridian-loadgen: the HTTP/1.1 load generator for what wrk cannot do. Single-threaded epoll,
// keep-alive connections, latencies in nanoseconds.
//
//   paced   open loop at --rate requests/s over -c connections; each request's latency counts
//           from its *scheduled* send time, so a stall is not hidden (no coordinated omission)
//   closed  every connection sends its next request as soon as the previous answer is complete
//   stream  every connection sends a streamed request and reads its SSE events; reports time to
//           first event, the gaps between events, and how many events arrived in one read
//           (1 = the proxy forwarded each event in its own write); --once: one stream each
//   idle    every connection sends one request, then stays open and idle for -d seconds;
//           prints "idle_ready N" when all are established so a script can measure memory
//
// Output: one line of key=value pairs (times in microseconds) on stdout.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using ns_t = std::int64_t;

ns_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ns_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "meridian-loadgen: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct options {
  std::string mode;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/v1/chat/completions";
  std::string body;
  int conns = 1;
  double duration_s = 5;
  double rate = 1000;          // paced: requests/s in total
  double ramp = 2000;          // connections opened per second (stream, idle)
  bool once = false;           // stream: one stream per connection
  double drain_s = 5;          // after the duration, how long outstanding answers may take
  std::string latencies_file;  // optional: every latency in µs, one per line
};

// Incremental HTTP/1.1 response reader: headers, then a Content-Length, chunked or
// until-close body. Body bytes are handed to a callback as they are decoded.
struct response_reader {
  enum class state {
    headers,
    length,
    chunk_size,
    chunk_data,
    chunk_crlf,
    trailers,
    until_close,
    done
  };
  state st = state::headers;
  std::string buf;  // undecoded bytes
  int status = 0;
  std::uint64_t remaining = 0;

  void reset() {
    st = state::headers;
    status = 0;
    remaining = 0;
  }

  // Consumes `buf`; calls on_body(data) for body bytes. Returns false on a malformed response.
  template <class F>
  bool pump(F&& on_body) {
    for (;;) {
      switch (st) {
        case state::headers: {
          auto end = buf.find("\r\n\r\n");
          if (end == std::string::npos) return true;
          std::string_view head(buf.data(), end);
          if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return false;
          status = std::atoi(std::string(head.substr(9, 3)).c_str());
          bool chunked = false;
          bool has_length = false;
          std::size_t pos = head.find("\r\n");
          while (pos != std::string_view::npos && pos < head.size()) {
            std::size_t next = head.find("\r\n", pos + 2);
            std::string_view line = head.substr(
                pos + 2, (next == std::string_view::npos ? head.size() : next) - pos - 2);
            auto colon = line.find(':');
            if (colon != std::string_view::npos) {
              std::string name(line.substr(0, colon));
              for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
              std::string_view value = line.substr(colon + 1);
              while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
              if (name == "content-length") {
                has_length = true;
                remaining = std::strtoull(std::string(value).c_str(), nullptr, 10);
              } else if (name == "transfer-encoding" &&
                         value.find("chunked") != std::string_view::npos) {
                chunked = true;
              }
            }
            pos = next;
          }
          buf.erase(0, end + 4);
          st = chunked ? state::chunk_size : has_length ? state::length : state::until_close;
          if (st == state::length && remaining == 0) st = state::done;
          break;
        }
        case state::length: {
          std::size_t n = std::min<std::uint64_t>(remaining, buf.size());
          if (n) on_body(std::string_view(buf.data(), n));
          buf.erase(0, n);
          remaining -= n;
          if (remaining == 0) {
            st = state::done;
            break;
          }
          return true;
        }
        case state::chunk_size: {
          auto end = buf.find("\r\n");
          if (end == std::string::npos) return true;
          remaining = std::strtoull(buf.substr(0, end).c_str(), nullptr, 16);
          buf.erase(0, end + 2);
          st = remaining == 0 ? state::trailers : state::chunk_data;
          break;
        }
        case state::chunk_data: {
          std::size_t n = std::min<std::uint64_t>(remaining, buf.size());
          if (n) on_body(std::string_view(buf.data(), n));
          buf.erase(0, n);
          remaining -= n;
          if (remaining == 0) {
            st = state::chunk_crlf;
            break;
          }
          return true;
        }
        case state::chunk_crlf:
          if (buf.size() < 2) return true;
          buf.erase(0, 2);
          st = state::chunk_size;
          break;
        case state::trailers: {
          auto end = buf.find("\r\n");
          if (end == std::string::npos) return true;
          buf.erase(0, end + 2);
          if (end == 0) st = state::done;
          break;
        }
        case state::until_close:
          if (!buf.empty()) on_body(buf);
          buf.clear();
          return true;
        case state::done:
          return true;
      }
    }
  }
};

struct conn {
  int fd = -1;
  bool connected = false;
  bool busy = false;      // a request is outstanding
  bool finished = false;  // stream --once: done, no more requests
  ns_t scheduled = 0;     // latency origin of the outstanding request
  ns_t sent = 0;
  std::string out;  // unsent request bytes
  response_reader rd;
  // stream state
  std::string events_buf;  // decoded body bytes not yet split into events
  ns_t last_event = 0;
  int events = 0;
  bool saw_done = false;
};

struct stats {
  std::vector<double> lat_us;  // request latency or time to first event
  std::vector<double> gap_us;  // stream: gaps between consecutive events
  std::uint64_t ok = 0, errors = 0, non2xx = 0, reconnects = 0;
  std::uint64_t reads_with_events = 0, events_total = 0, max_events_per_read = 0,
                reads_multi_event = 0;
  int active_streams = 0, peak_active_streams = 0;
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  k = std::clamp<std::size_t>(k, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

class runner {
 public:
  explicit runner(options o) : o_(std::move(o)) {
    ep_ = epoll_create1(0);
    if (ep_ < 0) die("epoll_create1");
    tfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd_ < 0) die("timerfd_create");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~0ull;
    epoll_ctl(ep_, EPOLL_CTL_ADD, tfd_, &ev);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    if (inet_pton(AF_INET, o_.host.c_str(), &addr_.sin_addr) != 1) die("bad --host");
    request_ =
        "POST " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
        "\r\nContent-Type: application/json\r\nAuthorization: Bearer bench\r\nContent-Length: " +
        std::to_string(o_.body.size()) + "\r\n\r\n" + o_.body;
    conns_.resize(static_cast<std::size_t>(o_.conns));
  }

  int run() {
    const bool paced = o_.mode == "paced";
    const bool streaming = o_.mode == "stream";
    const bool idle = o_.mode == "idle";
    start_ = now_ns();
    const ns_t ramp_step = o_.ramp > 0 ? static_cast<ns_t>(1e9 / o_.ramp) : 0;
    // Connections are opened at the ramp rate (all at once for paced/closed).
    std::size_t opened = 0;
    ns_t next_open = start_;
    const ns_t interval = paced ? static_cast<ns_t>(1e9 / o_.rate) : 0;
    ns_t next_sched = start_;
    ns_t end = start_ + static_cast<ns_t>(o_.duration_s * 1e9);
    bool announced = false;
    std::vector<epoll_event> evs(1024);
    for (;;) {
      ns_t now = now_ns();
      // open connections
      bool ramped = paced || o_.mode == "closed";
      while (opened < conns_.size() && (ramped || now >= next_open)) {
        open_conn(opened);
        if (!paced) start_request(opened, now_ns());
        ++opened;
        next_open += ramp_step;
      }
      if (idle && !announced && opened == conns_.size() && idle_done_ == conns_.size()) {
        std::printf("idle_ready %zu\n", conns_.size());
        std::fflush(stdout);
        announced = true;
        end = now_ns() + static_cast<ns_t>(o_.duration_s * 1e9);
      }
      if (idle && !announced) end = now + static_cast<ns_t>(o_.duration_s * 1e9) + 1;
      if (streaming && o_.once && opened == conns_.size() && finished_ == conns_.size()) break;
      // paced: enqueue due requests, dispatch to idle connections
      if (paced && now < end) {
        while (next_sched <= now && next_sched < end) {
          pending_.push_back(next_sched);
          next_sched += interval;
        }
      }
      if (paced) dispatch();
      if (now >= end) {
        if (!stopping_) {
          stopping_ = true;
          drain_deadline_ = now + static_cast<ns_t>(o_.drain_s * 1e9);
        }
        if (outstanding() == 0 || now >= drain_deadline_ || idle) break;
      }
      // sleep until the next event, schedule or open
      ns_t wake = end;
      if (stopping_) wake = drain_deadline_;
      if (paced && !stopping_) wake = std::min(wake, next_sched);
      if (opened < conns_.size()) wake = std::min(wake, next_open);
      arm_timer(wake);
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 1000);
      if (n < 0 && errno != EINTR) die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        if (evs[static_cast<std::size_t>(i)].data.u64 == ~0ull) {
          std::uint64_t x;
          (void)!read(tfd_, &x, sizeof x);
          continue;
        }
        handle(static_cast<std::size_t>(evs[static_cast<std::size_t>(i)].data.u64),
               evs[static_cast<std::size_t>(i)].events);
      }
    }
    report(now_ns());
    return 0;
  }

 private:
  std::size_t outstanding() const {
    std::size_t n = pending_.size();
    for (const auto& c : conns_) n += c.busy ? 1 : 0;
    return n;
  }

  void arm_timer(ns_t at) {
    itimerspec its{};
    if (at <= now_ns()) at = now_ns() + 1000;
    its.it_value.tv_sec = at / 1'000'000'000;
    its.it_value.tv_nsec = at % 1'000'000'000;
    timerfd_settime(tfd_, TFD_TIMER_ABSTIME, &its, nullptr);
  }

  void open_conn(std::size_t i) {
    conn& c = conns_[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket (raise ulimit -n?)");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
    if (r < 0 && errno != EINPROGRESS) die("connect");
    c.connected = false;
    c.rd = {};
    c.rd.buf.clear();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
  }

  void close_conn(std::size_t i) {
    conn& c = conns_[i];
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
    }
    c.fd = -1;
  }

  void start_request(std::size_t i, ns_t scheduled) {
    conn& c = conns_[i];
    c.busy = true;
    c.scheduled = scheduled;
    c.sent = now_ns();
    c.out = request_;
    c.rd.reset();
    c.events_buf.clear();
    c.events = 0;
    c.saw_done = false;
    c.last_event = 0;
    if (o_.mode == "stream") {
      ++st_.active_streams;
      st_.peak_active_streams = std::max(st_.peak_active_streams, st_.active_streams);
    }
    flush(i);
  }

  void flush(std::size_t i) {
    conn& c = conns_[i];
    while (!c.out.empty()) {
      ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == ENOTCONN) return;
        fail(i);
        return;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
  }

  void dispatch() {
    for (std::size_t i = 0; i < conns_.size() && !pending_.empty(); ++i) {
      conn& c = conns_[i];
      if (!c.busy && c.fd >= 0) {
        ns_t s = pending_.front();
        pending_.pop_front();
        start_request(i, s);
      }
    }
  }

  void fail(std::size_t i) {
    conn& c = conns_[i];
    // A server that is gone would otherwise be reconnected to in a tight loop.
    if (++failures_in_a_row_ > 100) {
      std::fprintf(stderr, "meridian-loadgen: 100 failures in a row; is the server up?\n");
      report(now_ns());
      std::exit(1);
    }
    if (c.busy) {
      ++st_.errors;
      c.busy = false;
      if (o_.mode == "stream") --st_.active_streams;
    }
    close_conn(i);
    if (o_.mode == "stream" && o_.once) {
      if (!c.finished) ++finished_;
      c.finished = true;
      return;
    }
    if (o_.mode == "idle") {
      ++idle_done_;
      return;
    }
    if (stopping_) return;
    ++st_.reconnects;
    open_conn(i);
    if (o_.mode != "paced") start_request(i, now_ns());
  }

  void handle(std::size_t i, std::uint32_t events) {
    conn& c = conns_[i];
    if (c.fd < 0) return;
    if (events & EPOLLOUT) {
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          errno = err;
          fail(i);
          return;
        }
        c.connected = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      }
      flush(i);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      char buf[65536];
      for (;;) {
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
          on_bytes(i, std::string_view(buf, static_cast<std::size_t>(n)));
          if (c.fd < 0) return;
          continue;
        }
        if (n == 0) {
          // until-close body ends here
          if (c.busy && c.rd.st == response_reader::state::until_close) complete(i, now_ns());
          if (c.fd >= 0) {
            if (c.busy) {
              fail(i);
            } else {
              close_conn(i);
              if (o_.mode == "idle")
                ++idle_done_;
              else if (!stopping_ && !(o_.mode == "stream" && o_.once)) {
                ++st_.reconnects;
                open_conn(i);
                if (o_.mode != "paced") start_request(i, now_ns());
              }
            }
          }
          return;
        }
        if (errno == EAGAIN) return;
        fail(i);
        return;
      }
    }
  }

  void on_bytes(std::size_t i, std::string_view data) {
    conn& c = conns_[i];
    if (!c.busy) return;  // unsolicited bytes on an idle connection: ignore
    const ns_t t = now_ns();
    c.rd.buf.append(data);
    std::uint64_t events_this_read = 0;
    const bool streaming = o_.mode == "stream";
    bool ok = c.rd.pump([&](std::string_view body) {
      if (!streaming) return;
      c.events_buf.append(body);
      for (;;) {
        auto end = c.events_buf.find("\n\n");
        if (end == std::string::npos) break;
        std::string_view ev(c.events_buf.data(), end);
        if (ev.find("data:") != std::string_view::npos) {
          ++events_this_read;
          if (c.events == 0) {
            st_.lat_us.push_back(static_cast<double>(t - c.sent) / 1e3);
          } else {
            st_.gap_us.push_back(static_cast<double>(t - c.last_event) / 1e3);
          }
          ++c.events;
          c.last_event = t;
          if (ev.find("[DONE]") != std::string_view::npos) c.saw_done = true;
        }
        c.events_buf.erase(0, end + 2);
      }
    });
    if (events_this_read) {
      ++st_.reads_with_events;
      st_.events_total += events_this_read;
      st_.max_events_per_read = std::max(st_.max_events_per_read, events_this_read);
      if (events_this_read > 1) ++st_.reads_multi_event;
    }
    if (!ok) {
      fail(i);
      return;
    }
    if (c.rd.st == response_reader::state::done) complete(i, t);
  }

  void complete(std::size_t i, ns_t t) {
    conn& c = conns_[i];
    c.busy = false;
    failures_in_a_row_ = 0;
    if (c.rd.status >= 200 && c.rd.status < 300) {
      ++st_.ok;
    } else {
      ++st_.non2xx;
    }
    const bool measuring = !(stopping_ && t > drain_deadline_);
    if (o_.mode == "paced" || o_.mode == "closed") {
      if (measuring)
        st_.lat_us.push_back(static_cast<double>(t - (o_.mode == "paced" ? c.scheduled : c.sent)) /
                             1e3);
      if (o_.mode == "closed" && !stopping_)
        start_request(i, now_ns());
      else if (o_.mode == "paced")
        dispatch();
    } else if (o_.mode == "stream") {
      --st_.active_streams;
      if (o_.once) {
        c.finished = true;
        ++finished_;
      } else if (!stopping_) {
        start_request(i, now_ns());
      }
    } else if (o_.mode == "idle") {
      ++idle_done_;
    }
  }

  void report(ns_t end) {
    double secs = static_cast<double>(end - start_) / 1e9;
    if (!o_.latencies_file.empty()) {
      std::ofstream f(o_.latencies_file);
      for (double v : st_.lat_us) f << v << '\n';
    }
    std::vector<double> lat = st_.lat_us, gap = st_.gap_us;
    std::printf("mode=%s conns=%d ok=%" PRIu64 " non2xx=%" PRIu64 " errors=%" PRIu64
                " reconnects=%" PRIu64 " unfinished=%zu secs=%.3f rps=%.1f",
                o_.mode.c_str(), o_.conns, st_.ok, st_.non2xx, st_.errors, st_.reconnects,
                outstanding(), secs, static_cast<double>(st_.ok) / secs);
    const char* name = o_.mode == "stream" ? "ttft" : "lat";
    std::printf(" %s_p50=%.1f %s_p90=%.1f %s_p99=%.1f %s_p999=%.1f %s_max=%.1f", name, pct(lat, 50),
                name, pct(lat, 90), name, pct(lat, 99), name, pct(lat, 99.9), name, pct(lat, 100));
    if (o_.mode == "stream") {
      std::printf(" gap_p50=%.1f gap_p99=%.1f gap_max=%.1f events=%" PRIu64
                  " max_events_per_read=%" PRIu64 " reads_multi_event=%" PRIu64 " peak_streams=%d",
                  pct(gap, 50), pct(gap, 99), pct(gap, 100), st_.events_total,
                  st_.max_events_per_read, st_.reads_multi_event, st_.peak_active_streams);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  options o_;
  int ep_ = -1, tfd_ = -1;
  sockaddr_in addr_{};
  std::string request_;
  std::vector<conn> conns_;
  std::deque<ns_t> pending_;
  stats st_;
  ns_t start_ = 0, drain_deadline_ = 0;
  bool stopping_ = false;
  std::size_t finished_ = 0, idle_done_ = 0;
  int failures_in_a_row_ = 0;
};

void usage() {
  std::fprintf(stderr,
               "usage: meridian-loadgen paced|closed|stream|idle --port P [--host H] [--path P]\n"
               "  (--body JSON | --body-file F) [-c CONNS] [-d SECONDS] [--rate R] [--ramp R]\n"
               "  [--once] [--drain S] [--latencies FILE]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  options o;
  o.mode = argv[1];
  if (o.mode != "paced" && o.mode != "closed" && o.mode != "stream" && o.mode != "idle") usage();
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host")
      o.host = val();
    else if (a == "--port")
      o.port = std::atoi(val().c_str());
    else if (a == "--path")
      o.path = val();
    else if (a == "--body")
      o.body = val();
    else if (a == "--body-file") {
      std::ifstream f(val(), std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      o.body = ss.str();
    } else if (a == "-c")
      o.conns = std::atoi(val().c_str());
    else if (a == "-d")
      o.duration_s = std::atof(val().c_str());
    else if (a == "--rate")
      o.rate = std::atof(val().c_str());
    else if (a == "--ramp")
      o.ramp = std::atof(val().c_str());
    else if (a == "--once")
      o.once = true;
    else if (a == "--drain")
      o.drain_s = std::atof(val().c_str());
    else if (a == "--latencies")
      o.latencies_file = val();
    else
      usage();
  }
  if (o.port <= 0 || o.conns <= 0) usage();
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return runner(std::move(o)).run();
}
