// echo_asio: a TCP echo server on standalone asio (Debian's libasio-dev), a peer of weft in
// bench/compare.sh.
//
//   echo_asio PORT         listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
//
// One io_context run by one thread. Each session owns a 64 KiB buffer and alternates
// async_read_some and async_write (which completes only once every byte has gone out, so a
// session never reads while its echo is pending).
#include <sys/resource.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include <asio.hpp>

namespace {

using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

    void read() {
        socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
            if (!ec) self->write(n);
        });
    }

private:
    void write(std::size_t n) {
        asio::async_write(socket_, asio::buffer(buf_.data(), n),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (!ec) self->read();
                          });
    }

    tcp::socket socket_;
    std::array<char, 64 * 1024> buf_;
};

class Server {
public:
    Server(asio::io_context& io, unsigned short port) : acceptor_(io) {
        tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), port);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        accept();
    }
    void close() { acceptor_.close(); }

private:
    void accept() {
        acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;  // closed at shutdown
            if (!ec) {
                std::error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                std::make_shared<Session>(std::move(socket))->read();
            }
            accept();
        });
    }

    tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
    const int port = argc == 2 ? std::atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    try {
        asio::io_context io(1);  // concurrency hint: one thread
        Server server(io, static_cast<unsigned short>(port));
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code, int) {
            server.close();
            io.stop();  // the sessions still pending are destroyed with io
        });
        io.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_asio: %s\n", e.what());
        return 1;
    }
    return 0;
}
