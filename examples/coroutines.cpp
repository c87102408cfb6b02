// coroutines: Deferreds awaited with co_await, as inlineCallbacks/async def do.
// Work runs on the reactor's thread pool; the coroutine resumes on the reactor
// thread each time a result arrives, and errors travel as exceptions.
#include <cstdio>
#include <stdexcept>

#include <weft/internet/base.hpp>
#include <weft/internet/defer.hpp>
#include <weft/internet/threads.hpp>

namespace {

long slowSquare(long x) {
    if (x < 0) throw std::domain_error("negative input");
    return x * x;
}

weft::Deferred<long> sumOfSquares(weft::Reactor& reactor, long n) {
    long total = 0;
    for (long i = 1; i <= n; ++i) total += co_await weft::deferToThread(reactor, slowSquare, i);
    co_return total;
}

weft::Deferred<void> program(weft::Reactor& reactor) {
    long s = co_await sumOfSquares(reactor, 10);
    std::printf("sum of squares 1..10 = %ld\n", s);
    try {
        co_await weft::deferToThread(reactor, slowSquare, -1L);
    } catch (const std::domain_error& e) {
        std::printf("caught from the worker thread: %s\n", e.what());
    }
}

}  // namespace

int main() {
    auto reactor = weft::Reactor::create();
    reactor->callWhenRunning([&] {
        program(*reactor).addBoth([&](weft::Result<void> r) {
            if (!r.ok()) std::printf("failed: %s\n", r.failure().getErrorMessage().c_str());
            reactor->stop();
        });
    });
    reactor->run();
    return 0;
}
