// What stops the tool: SIGTERM and SIGINT (the reactor's own handlers, R-52)
// and, for the tool only, a terminal's hang-up. Shared by every subcommand.
#pragma once

#include <optional>

#include <weft/internet/base.hpp>

namespace tool {

/// SIGHUP (the terminal or the SSH session closed) stops weft as SIGTERM does,
/// through the same orderly shutdown: listeners close, connections flush,
/// weft exec's programs get SIGTERM then SIGKILL and are reaped, a UNIX
/// socket's file and lock and a tun device weft made are removed. Left at its
/// default, SIGHUP killed weft at once and left all of that behind (weft
/// exec's programs run in process groups of their own, out of the terminal's
/// reach). A SIGHUP that is ignored (nohup) stays ignored. Call once, first.
void stopOnHangUp();

/// The signal that stopped `reactor` (SIGHUP when a hang-up did), if one did.
std::optional<int> stopSignal(const weft::Reactor& reactor);

/// Logs "stopped by signal 15 (SIGTERM)" (or the signal that did) if a signal stopped `reactor`.
void logStopSignal(const weft::Reactor& reactor);

}  // namespace tool
