// weft connect CLIENT-ENDPOINT: standard input and output joined to one
// connection, as nc does (tools/weft/connect.cpp).
#pragma once

#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <weft/internet/base.hpp>

namespace tool {

struct ConnectOptions {
    std::string endpoint;
};

/// Adds the `connect` subcommand to `app`, filling `options` when parsed.
CLI::App* addConnectCommand(CLI::App& app, ConnectOptions& options);

/// What to add to a bad client endpoint's message: for a type that is not a
/// stream client one (udp:, stdio:, …), the types that are; otherwise nothing.
const char* clientTypesHint(const std::exception& e);

/// Runs it: 0 once the peer has closed and everything it sent is written
/// out; 1 when the connection cannot be made or is lost; 2 for a bad endpoint.
int runConnect(weft::Backend backend, const ConnectOptions& options);

}  // namespace tool
