// Child processes, temporary files and a small blocking HTTP client with socket timeouts.
#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

extern char** environ;

namespace meridian::test {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

void set_timeout(tcp::socket& s, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = t.count() / 1000;
  tv.tv_usec = (t.count() % 1000) * 1000;
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

template <class Fields>
std::map<std::string, std::string> header_map(const Fields& f) {
  std::map<std::string, std::string> out;
  for (const auto& h : f) out[lower(std::string(h.name_string()))] = std::string(h.value());
  return out;
}

http::request<http::string_body> make_request(const std::string& method, const std::string& target,
                                              const std::string& body,
                                              const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  return req;
}

}  // namespace

temp_dir::temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "meridian-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, const std::string& content) const {
  std::string p = path_ + "/" + name;
  std::ofstream(p) << content;
  return p;
}

process::process(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env, const std::string& cwd,
                 const std::string& stderr_path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  int rc = posix_spawn(&pid_, args[0].c_str(), &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot start " + args[0]);
  }
  out_fd_ = fds[0];
  reader_ = std::thread([this] {
    std::string partial;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(out_fd_, buf, sizeof buf);
      if (n <= 0) break;
      partial.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::lock_guard lock(mu_);
        lines_.push_back(partial.substr(0, nl));
        partial.erase(0, nl + 1);
        cv_.notify_all();
      }
    }
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  });
}

process::~process() {
  if (!wait_exit(0ms)) {
    ::kill(pid_, SIGKILL);
    wait_exit(5s);
  }
  if (reader_.joinable()) reader_.join();
  ::close(out_fd_);
}

std::optional<std::string> process::wait_line(const std::string& needle,
                                              std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<std::string> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& l : lines_)
      if (l.find(needle) != std::string::npos) {
        found = l;
        return true;
      }
    return eof_;
  });
  return found;
}

std::vector<std::string> process::lines() {
  std::lock_guard lock(mu_);
  return lines_;
}

void process::signal(int sig) {
  ::kill(pid_, sig);
}

std::optional<int> process::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  auto until = std::chrono::steady_clock::now() + timeout;
  do {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return status_;
    }
    if (timeout.count() == 0) break;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < until);
  return std::nullopt;
}

http_result http_call(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body, const std::map<std::string, std::string>& headers,
                      std::chrono::milliseconds timeout) {
  http_result out;
  try {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    set_timeout(s, timeout);
    auto req = make_request(method, target, body, headers);
    http::write(s, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(64u << 20);
    http::read(s, buf, p);
    out.status = p.get().result_int();
    out.headers = header_map(p.get());
    out.body = p.get().body();
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

struct stream_client::impl {
  net::io_context ioc;
  tcp::socket s{ioc};
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  std::string pending;
  bool done = false;

  // Reads more body bytes into `pending`; false at the end or on a timeout.
  bool more(std::chrono::milliseconds timeout) {
    if (done || p.is_done()) return false;
    set_timeout(s, timeout);
    char tmp[8192];
    p.get().body().data = tmp;
    p.get().body().size = sizeof tmp;
    beast::error_code ec;
    http::read_some(s, buf, p, ec);
    if (ec == http::error::need_buffer) ec = {};
    pending.append(tmp, sizeof tmp - p.get().body().size);
    if (ec) done = true;
    return !ec || sizeof tmp != p.get().body().size;
  }
};

stream_client::stream_client(std::uint16_t port, const std::string& body,
                             const std::map<std::string, std::string>& headers,
                             const std::string& target)
    : impl_(std::make_unique<impl>()) {
  impl_->s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  set_timeout(impl_->s, 10s);
  auto req = make_request("POST", target, body, headers);
  http::write(impl_->s, req);
  impl_->p.body_limit(boost::none);
  http::read_header(impl_->s, impl_->buf, impl_->p);
  status_ = impl_->p.get().result_int();
  headers_ = header_map(impl_->p.get());
}

stream_client::~stream_client() = default;

std::optional<std::string> stream_client::next_event(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto& pending = impl_->pending;
    if (auto end = pending.find("\n\n"); end != std::string::npos) {
      std::string ev = pending.substr(0, end);
      pending.erase(0, end + 2);
      std::string data;
      std::size_t at = 0;
      while (at < ev.size()) {
        std::size_t nl = ev.find('\n', at);
        std::string line = ev.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        if (line.rfind("data: ", 0) == 0) data += (data.empty() ? "" : "\n") + line.substr(6);
        if (nl == std::string::npos) break;
        at = nl + 1;
      }
      return data;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= 0ms || !impl_->more(left)) return std::nullopt;
  }
}

std::string stream_client::rest(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until &&
         impl_->more(std::chrono::duration_cast<std::chrono::milliseconds>(
             until - std::chrono::steady_clock::now()))) {
  }
  return std::exchange(impl_->pending, {});
}

void stream_client::close() {
  beast::error_code ec;
  impl_->s.shutdown(tcp::socket::shutdown_both, ec);
  impl_->s.close(ec);
}

std::string process::output() {
  wait_line("\x01", 200ms);  // lets the reader take what is left in the pipe
  std::string out;
  for (const auto& l : lines()) out += l + "\n";
  return out;
}

raw_upstream::raw_upstream(script s) : script_(std::move(s)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("raw_upstream: cannot listen");
  port = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] {
    while (!stop_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard lock(mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  });
}

raw_upstream::~raw_upstream() {
  stop_ = true;
  acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
}

void raw_upstream::serve(int fd) {
  const writer write = [fd](const std::string& bytes) {
    for (std::size_t at = 0; at < bytes.size();) {
      ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  };
  std::string in;
  char buf[16384];
  for (;;) {
    std::size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0 || stop_) return;
      in.append(buf, static_cast<std::size_t>(n));
    }
    std::string head = in.substr(0, head_end);
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t length = 0;
    if (auto at = head.find("\r\ncontent-length:"); at != std::string::npos)
      length = std::stoul(head.substr(at + 17));
    while (in.size() < head_end + 4 + length) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0 || stop_) return;
      in.append(buf, static_cast<std::size_t>(n));
    }
    std::string body = in.substr(head_end + 4, length);
    in.erase(0, head_end + 4 + length);
    {
      std::lock_guard lock(mu_);
      last_head_ = head;
    }
    ++requests_;
    if (!script_(body, write)) {
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
  }
}

std::string raw_upstream::last_head() {
  std::lock_guard lock(mu_);
  return last_head_;
}

std::string chat_completion_json(const std::string& content) {
  return R"({"id":"chatcmpl-raw","object":"chat.completion","created":1,"model":"m",)"
         R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
         content +
         R"("},"finish_reason":"stop"}],)"
         R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})";
}

std::string http_200(const std::string& body, const std::string& content_type,
                     const std::string& extra_headers) {
  return "HTTP/1.1 200 OK\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
         "\r\n" + body;
}

raw_client::raw_client(std::uint16_t port, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    throw std::runtime_error("connect failed");
  }
}

raw_client::~raw_client() {
  ::close(fd_);
}

bool raw_client::send(const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

int raw_client::read_some(std::chrono::steady_clock::time_point until) {
  pollfd pfd{fd_, POLLIN, 0};
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return -1;
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return 0;  // FIN or reset
    received_.append(buf, static_cast<std::size_t>(n));
    pending_.append(buf, static_cast<std::size_t>(n));
    return 1;
  }
}

http_result raw_client::read_response(std::chrono::milliseconds timeout) {
  http_result out;
  auto until = std::chrono::steady_clock::now() + timeout;
  http::response_parser<http::string_body> p;
  p.body_limit(64u << 20);
  bool eof = false;
  for (;;) {
    // Beast consumes the header and the body in separate calls, so feed it until it stalls.
    while (!pending_.empty() && !p.is_done()) {
      beast::error_code ec;
      std::size_t used = p.put(net::buffer(pending_), ec);
      if (ec == http::error::need_more) ec = {};
      if (ec) {
        out.error = ec.message();
        return out;
      }
      pending_.erase(0, used);
      if (used == 0) break;
    }
    if (!p.is_done() && eof) {
      beast::error_code ec;
      p.put_eof(ec);
      if (!p.is_done()) {
        out.error = "connection closed before a whole response";
        return out;
      }
    }
    if (p.is_done()) {
      out.status = p.get().result_int();
      out.headers = header_map(p.get());
      out.body = p.get().body();
      return out;
    }
    int r = read_some(until);
    if (r < 0) {
      out.error = "timed out";
      return out;
    }
    if (r == 0) eof = true;
  }
}

bool raw_client::closed_within(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int r = read_some(until);
    if (r == 0) return true;
    if (r < 0) return false;
  }
}

sim::sim(const std::string& yaml) {
  std::string cfg = dir.write("sim.yaml", yaml);
  proc = std::make_unique<process>(std::vector<std::string>{MERIDIAN_SIM_BIN, "-c", cfg});
  if (!proc->wait_line("\"ready\"", 10s)) throw std::runtime_error("meridian-sim did not start");
  for (const auto& line : proc->lines()) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "listening")
      ports[j["provider"].get<std::string>()] = j["port"].get<std::uint16_t>();
  }
}

std::string sim::stats(const std::string& provider) {
  return http_call(ports.at(provider), "GET", "/sim/stats").body;
}

gateway::gateway(const std::string& yaml, const std::map<std::string, std::string>& env,
                 const std::vector<std::string>& args, bool capture_stderr) {
  std::string cfg = dir.write("meridian.yaml", yaml);
  std::vector<std::string> argv{MERIDIAN_BIN, "serve", "-c", cfg};
  argv.insert(argv.end(), args.begin(), args.end());
  proc = std::make_unique<process>(argv, env, dir.path(),
                                   capture_stderr ? dir.path() + "/stderr.log" : std::string());
  auto line = proc->wait_line("\"listening\"", 10s);
  if (!line) throw std::runtime_error("meridian did not start");
  port = nlohmann::json::parse(*line)["port"].get<std::uint16_t>();
  // The admin line is printed before "listening", so it is already here when there is one.
  if (auto admin = proc->wait_line("\"admin_listening\"", 0ms))
    admin_port = nlohmann::json::parse(*admin)["port"].get<std::uint16_t>();
}

std::string gateway::stderr_text() const {
  std::ifstream in(dir.path() + "/stderr.log", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string sha256_hex(const std::string& text) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), d, &n, EVP_sha256(), nullptr);
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += k_digits[d[i] >> 4];
    out += k_digits[d[i] & 15];
  }
  return out;
}

std::uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("cannot bind a loopback port");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

}  // namespace meridian::test
