// weft exec — a program per connection, in the manner of ucspi-tcp's tcpserver
// and socat's EXEC address (issue #11, item 3).
//
//   weft exec ENDPOINT [--pty] [--window ROWSxCOLS] [--max-children N]
//             [--kill-grace S] -- PROGRAM [ARG...]
//
// Each connection accepted on ENDPOINT starts PROGRAM with the connection as
// its standard input and output (pipes, or a pseudo-terminal with --pty);
// its standard error is weft's. exec.cpp documents the life of a connection.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <weft/internet/base.hpp>

namespace tool {

/// What the command line gave `weft exec`, filled in by CLI11.
struct ExecOptions {
    CLI::App* command = nullptr;  ///< the subcommand (owned by the app)
    std::string endpoint;
    bool pty = false;
    std::string window = "24x80";
    int maxChildren = 64;
    double killGrace = 5;
    std::vector<std::string> program;  ///< PROGRAM and its arguments, after `--`
    /// The words before the first `--` (main sets it): CLI11 fills the ENDPOINT
    /// positional from after `--` when none came before, so runExec checks.
    std::vector<std::string> beforeDashes;

    /// True when `weft exec` was on the command line.
    bool parsed() const { return command && command->parsed(); }
};

/// Adds the `exec` subcommand to `app`; the options are filled in when it parses.
std::shared_ptr<ExecOptions> addExecCommand(CLI::App& app);

/// Runs `weft exec` until SIGINT/SIGTERM; the process's exit status: 0 after a
/// signal, 2 for bad input found before listening, 1 when it cannot listen.
int runExec(weft::Backend backend, const ExecOptions& options);

}  // namespace tool
