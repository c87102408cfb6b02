// tools/weft/signals.hpp: SIGHUP as SIGTERM, and naming the signal that stopped weft.
#include "signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <weft/log.hpp>

namespace tool {

namespace {
volatile std::sig_atomic_t gHungUp = 0;

// Async-signal-safe: a flag and kill(2). The reactor's SIGTERM handler does the rest.
void onHangUp(int) {
    gHungUp = 1;
    ::kill(::getpid(), SIGTERM);
}
}  // namespace

void stopOnHangUp() {
    struct sigaction current {};
    if (::sigaction(SIGHUP, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return;  // nohup: leave it
    struct sigaction sa {};
    sa.sa_handler = onHangUp;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGHUP, &sa, nullptr);
}

std::optional<int> stopSignal(const weft::Reactor& reactor) {
    auto sig = reactor.exitSignal();
    if (sig && *sig == SIGTERM && gHungUp) return SIGHUP;
    return sig;
}

void logStopSignal(const weft::Reactor& reactor) {
    if (auto sig = stopSignal(reactor)) {
        const char* name = sigabbrev_np(*sig);
        if (name) weft::log::info("weft", "stopped by signal {} (SIG{})", *sig, name);
        else weft::log::info("weft", "stopped by signal {}", *sig);
    }
}

}  // namespace tool
