// hello_reactor: the smallest complete weft program.
// A timer ticks three times, a worker thread hands a result back to the
// reactor thread, and the reactor stops itself through the shutdown event.
#include <cstdio>

#include <weft/internet/base.hpp>

int main() {
    auto reactor = weft::Reactor::create();  // epoll unless WEFT_REACTOR says otherwise
    int ticks = 0;
    weft::Function<void()> tick;
    tick = [&] {
        std::printf("tick %d\n", ++ticks);
        if (ticks < 3) reactor->callLater(0.01, [&] { tick(); });
        else
            reactor->callInThread([&] {
                // Runs on the pool; results go back to the reactor thread.
                reactor->callFromThread([&] { reactor->stop(); });
            });
    };
    reactor->callWhenRunning([&] { tick(); });
    reactor->addSystemEventTrigger("after", "shutdown", [] { std::printf("stopped\n"); });
    reactor->run();
    return 0;
}
