// Test harness for integration tests: runs meridian-sim and meridian as child processes on
// ports they pick themselves (reported on stdout), and talks HTTP to them with deadlines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meridian::test {

using namespace std::chrono_literals;

// A temporary directory removed with everything in it when this object goes.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A child process whose stdout is collected line by line.
class process {
 public:
  // `cwd`, when set, is the child's working directory (the default ledger file lands there);
  // `stderr_path`, when set, receives the child's stderr (tests that grep every output).
  process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
          const std::string& cwd = {}, const std::string& stderr_path = {});
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  // The first stdout line (already seen or to come) containing `needle`, or nullopt after
  // `timeout`.
  std::optional<std::string> wait_line(const std::string& needle,
                                       std::chrono::milliseconds timeout);
  std::vector<std::string> lines();
  // Every stdout line, joined with newlines, once the child has exited (run wait_exit first).
  std::string output();
  void signal(int sig);
  // The exit status, or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::optional<int> status_;
};

struct http_result {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string error;  // transport failure; status 0
};

http_result http_call(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = {},
                      const std::map<std::string, std::string>& headers = {},
                      std::chrono::milliseconds timeout = 10s);

// A streaming request read incrementally, event by event.
class stream_client {
 public:
  stream_client(std::uint16_t port, const std::string& body,
                const std::map<std::string, std::string>& headers = {},
                const std::string& target = "/v1/chat/completions");
  ~stream_client();
  unsigned status() const { return status_; }
  const std::map<std::string, std::string>& headers() const { return headers_; }
  // The next SSE event's data, or nullopt at the end of the stream or after `timeout`.
  std::optional<std::string> next_event(std::chrono::milliseconds timeout = 10s);
  // Everything left of the body (until the server ends the response).
  std::string rest(std::chrono::milliseconds timeout = 10s);
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  unsigned status_ = 0;
  std::map<std::string, std::string> headers_;
};

// A raw TCP connection for hostile-client and deadline tests: exact bytes out, exact bytes in.
class raw_client {
 public:
  // `rcvbuf`, when non-zero, shrinks the receive buffer before connecting (slow readers).
  explicit raw_client(std::uint16_t port, int rcvbuf = 0);
  ~raw_client();
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  // False once the server has closed or reset the connection.
  bool send(const std::string& bytes);
  // One HTTP response; status 0 and `error` set if none arrived whole before `timeout`.
  http_result read_response(std::chrono::milliseconds timeout = 10s);
  // Reads until the server closes (true) or `timeout` passes (false).
  bool closed_within(std::chrono::milliseconds timeout);
  // Every byte received so far, exactly as sent by the server.
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
  std::string pending_;  // received but not yet consumed by read_response
  // Reads once, waiting at most until `until`; 1 data, 0 closed, -1 timed out.
  int read_some(std::chrono::steady_clock::time_point until);
};

// A hostile upstream on a raw TCP socket, for what meridian-sim will not do (interim 1xx
// responses, bytes beyond an answer, echoed secrets). For each request it reads (headers, then
// a Content-Length body), `script` gets the body and a writer of exact bytes; it returns whether
// the connection stays open for another request. One thread per connection.
class raw_upstream {
 public:
  using writer = std::function<bool(const std::string&)>;  // false once the peer is gone
  using script = std::function<bool(const std::string& body, const writer& write)>;
  explicit raw_upstream(script s);
  ~raw_upstream();
  raw_upstream(const raw_upstream&) = delete;
  raw_upstream& operator=(const raw_upstream&) = delete;
  std::uint16_t port = 0;
  int requests() const { return requests_; }
  int connections() const { return connections_; }
  // The last request's head (request line and headers), names and values lower-cased.
  std::string last_head();

 private:
  void serve(int fd);
  script script_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0}, connections_{0};
  std::mutex mu_;
  std::string last_head_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// An OpenAI chat completion whose answer text is `content` (a JSON-safe string).
std::string chat_completion_json(const std::string& content);
// `body` as a whole HTTP/1.1 200 response with Content-Length.
std::string http_200(const std::string& body, const std::string& content_type = "application/json",
                     const std::string& extra_headers = "");

// meridian-sim started from YAML; ports by provider name.
struct sim {
  explicit sim(const std::string& yaml);
  temp_dir dir;
  std::unique_ptr<process> proc;
  std::map<std::string, std::uint16_t> ports;
  std::string stats(const std::string& provider);  // GET /sim/stats body
};

// meridian serve on a config; `port` once it listens.
struct gateway {
  // `args` are added after `serve -c FILE`; `capture_stderr` sends stderr to stderr_text().
  explicit gateway(const std::string& yaml, const std::map<std::string, std::string>& env = {},
                   const std::vector<std::string>& args = {}, bool capture_stderr = false);
  temp_dir dir;
  std::unique_ptr<process> proc;
  std::uint16_t port = 0;
  std::uint16_t admin_port = 0;  // set when server.admin_listen is configured
  std::string stderr_text() const;
};

// The SHA-256 of `text` in lowercase hex: what a virtual key's key_sha256 holds.
std::string sha256_hex(const std::string& text);

// A loopback port nothing listens on: bound by the kernel's choice, then closed.
std::uint16_t closed_port();

// Polls `cond` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s);

}  // namespace meridian::test
