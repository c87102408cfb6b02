// weft tunnel — a point-to-point tunnel over UDP, in the manner of a minimal
// WireGuard without the cryptography (issue #13).
//
//   weft tunnel tun:NAME|tap:NAME --listen udp:PORT[:interface=ADDR]
//               --peer HOST:PORT [--mtu N]
//
// Each packet read from the tun/tap device goes to the peer as one UDP
// datagram; each datagram from the peer is written into the device.
// Datagrams from any other source are dropped and counted. Addresses and
// routes are left to `ip`. tunnel.cpp documents the rest.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include <weft/internet/base.hpp>

namespace tool {

/// What the command line gave `weft tunnel`, filled in by CLI11.
struct TunnelOptions {
    CLI::App* command = nullptr;  ///< the subcommand (owned by the app)
    std::string device;           ///< "tun:NAME" or "tap:NAME"
    std::string listen;           ///< "udp:PORT[:interface=ADDR]"
    std::string peer;             ///< "HOST:PORT", "[IPv6]:PORT"
    int mtu = 0;                  ///< 0: leave the device's MTU as it is

    /// True when `weft tunnel` was on the command line.
    bool parsed() const { return command && command->parsed(); }
};

/// Adds the `tunnel` subcommand to `app`; the options are filled in when it parses.
std::shared_ptr<TunnelOptions> addTunnelCommand(CLI::App& app);

/// Runs `weft tunnel` until SIGINT/SIGTERM; the process's exit status: 0
/// after a signal, 2 for bad input, 1 when the device or the UDP port cannot
/// be set up, or the device goes away while running.
int runTunnel(weft::Backend backend, const TunnelOptions& options);

}  // namespace tool
