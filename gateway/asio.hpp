// Beast/Asio names used across gateway/. Included only by gateway's own .cpp files and the
// gateway headers that need socket types, never by the libraries below gateway/.
#pragma once

#include <chrono>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace meridian::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
template <class T>
using awaitable = net::awaitable<T>;
constexpr auto use_awaitable = net::use_awaitable;
constexpr auto as_tuple = net::as_tuple(net::use_awaitable);

// The shorter of a phase's own limit and what is left of the request's total deadline.
inline steady::duration phase_limit(steady::duration phase, steady::time_point deadline) {
  auto left = deadline - steady::now();
  if (left < steady::duration::zero()) left = steady::duration::zero();
  return phase < left ? phase : left;
}

}  // namespace meridian::gateway
