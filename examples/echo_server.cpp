// A TCP echo server on weft: listen on an endpoint description, echo every
// byte, pause reading while the client is not reading (the transport is its own
// producer), and stop cleanly on Ctrl-C.
//
//   ./echo_server tcp:8000:interface=127.0.0.1     then: nc 127.0.0.1 8000
#include <cstdio>
#include <memory>

#include <weft/internet/endpoints.hpp>
#include <weft/internet/tcp.hpp>

namespace {

class Echo final : public weft::Protocol {
public:
    void connectionMade() override {
        // Flow control: when more than bufferSize bytes wait to be sent, the
        // transport pauses its own reading until they have left.
        auto self = std::dynamic_pointer_cast<weft::tcp::Connection>(transport);
        if (self) self->registerProducer(std::static_pointer_cast<weft::IPushProducer>(self), true);
    }
    void dataReceived(weft::Bytes data) override { transport->write(data); }
    void connectionLost(const weft::Failure& reason) override {
        std::printf("connection closed: %s\n", reason.getErrorMessage().c_str());
    }
};

}  // namespace

int main(int argc, char** argv) {
    const char* description = argc > 1 ? argv[1] : "tcp:8000:interface=127.0.0.1";
    auto reactor = weft::Reactor::create();
    int status = 0;
    weft::endpoints::serverFromString(*reactor, description)
        ->listen(weft::Factory::forProtocol<Echo>())
        .addBoth([&](weft::Result<std::shared_ptr<weft::IListeningPort>> r) {
            if (r.ok()) {
                std::printf("listening on %s\n", weft::addressStr(r.value()->getHost()).c_str());
            } else {
                std::fprintf(stderr, "cannot listen: %s\n", r.failure().getErrorMessage().c_str());
                status = 1;
            }
        });
    if (status == 0) reactor->run();
    return status;
}
