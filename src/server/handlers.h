// The connection handlers of afd-serve (all coroutines on the server's I/O thread).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "server/connection.h"

namespace afd::server {

class Server;

// Reads requests from one connection and answers them until it closes, times out, or the server drains.
net::awaitable<void> run_session(Server& srv, net::ip::tcp::socket socket);

// POST /v1/completions (chat = false) and /v1/chat/completions: validates, submits, streams or collects the
// answer. Returns whether the connection may be kept alive.
net::awaitable<bool> serve_completion(Server& srv, Connection& c, const Request& req, bool chat);

}  // namespace afd::server
