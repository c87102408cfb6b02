// inotify_drain: weft's INotify without output, the library-level peer of
// bench/inotify_vs_inotifywait.sh (issue #13 item 5). A whole-system
// measurement, not a Google Benchmark: one process, one epoll reactor, a real
// inotify instance.
//
//   inotify_drain DIR N [--mask create|create,close_write]
//       Watches DIR (IN_CREATE, or IN_CREATE|IN_CLOSE_WRITE), says "watching" on
//       standard error, counts the events its callback receives (each one
//       decoded, its path built, its callback called), and when N have
//       arrived prints "events=N" on standard output and exits 0.
//       Exits 1 if DIR cannot be watched, or if the kernel queue overflowed
//       (the run would not count what it claims).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <weft/internet/base.hpp>
#include <weft/internet/inotify.hpp>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: inotify_drain DIR N [--mask create|create,close_write]\n");
        return 2;
    }
    const std::string dir = argv[1];
    const long want = std::strtol(argv[2], nullptr, 10);
    std::uint32_t mask = IN_CREATE;
    if (argc >= 5 && std::string(argv[3]) == "--mask" && std::string(argv[4]) == "create,close_write")
        mask |= IN_CLOSE_WRITE;

    auto reactor = weft::Reactor::create(weft::Backend::epoll);
    auto notifier = std::make_shared<weft::inotify::INotify>(*reactor);
    long seen = 0;
    std::size_t pathBytes = 0;  // touch what the callback gets, as a consumer would
    int status = 0;
    notifier->setOverflowCallback([&] {
        std::fprintf(stderr, "inotify_drain: the kernel queue overflowed (raise max_queued_events)\n");
        status = 1;
        reactor->stop();
    });
    try {
        notifier->watch(dir, mask, false, {[&](const weft::inotify::Event& e) {
                            pathBytes += e.path.native().size();
                            if (++seen == want) {
                                std::printf("events=%ld path_bytes=%zu\n", seen, pathBytes);
                                std::fflush(stdout);
                                reactor->stop();
                            }
                        }});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "inotify_drain: %s\n", e.what());
        return 1;
    }
    notifier->startReading();
    std::fprintf(stderr, "watching %s\n", dir.c_str());
    reactor->run();
    return status;
}
