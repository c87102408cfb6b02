// A stdio: endpoint serves one connection (weft run by inetd, or in a pipe):
// once it has ended nothing else can come, so the subcommand serving it ends
// too. Shared by the servers of main.cpp (echo, portforward) and exec.cpp.
#pragma once

#include <memory>

#include <weft/internet/base.hpp>
#include <weft/internet/stdio.hpp>
#include <weft/log.hpp>

namespace tool {

namespace detail {
inline void stopAfter(weft::Reactor& reactor, const std::weak_ptr<weft::stdio::StandardIO>& io) {
    auto connection = io.lock();
    if (connection && connection->isConnected()) {
        reactor.callLater(0.05, [&reactor, io] { stopAfter(reactor, io); });
        return;
    }
    weft::log::info("weft", "the standard I/O connection has ended");
    if (reactor.running()) reactor.stop();
}
}  // namespace detail

/// When `port` is a stdio: endpoint's, stops `reactor` (through its shutdown
/// triggers) once that one connection has ended; any other port: nothing.
inline void stopWhenTheOnlyConnectionEnds(weft::Reactor& reactor, weft::IListeningPort& port) {
    if (auto* one = dynamic_cast<weft::stdio::StandardIOPort*>(&port))
        reactor.callWhenRunning([&reactor, io = std::weak_ptr(one->transport())] { detail::stopAfter(reactor, io); });
}

}  // namespace tool
