// echo_asio: a TCP echo server on standalone asio (Debian's libasio-dev), a peer of weft in
// bench/compare.sh.
//
//   echo_asio PORT         listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
//   echo_asio unix:PATH    listens on the UNIX stream socket PATH instead
//                          (asio::local::stream_protocol; the path must not exist yet, and is
//                          removed at exit)
//
// One io_context run by one thread. Each session owns a 64 KiB buffer and alternates
// async_read_some and async_write (which completes only once every byte has gone out, so a
// session never reads while its echo is pending).
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <memory>
#include <utility>

#include <asio.hpp>

namespace {

using asio::ip::tcp;
using unix_stream = asio::local::stream_protocol;

template <typename Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>> {
public:
    explicit Session(typename Protocol::socket socket) : socket_(std::move(socket)) {}

    void read() {
        socket_.async_read_some(asio::buffer(buf_), [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
            if (!ec) self->write(n);
        });
    }

private:
    void write(std::size_t n) {
        asio::async_write(socket_, asio::buffer(buf_.data(), n),
                          [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                              if (!ec) self->read();
                          });
    }

    typename Protocol::socket socket_;
    std::array<char, 64 * 1024> buf_;
};

template <typename Protocol>
class Server {
public:
    Server(asio::io_context& io, const typename Protocol::endpoint& ep) : acceptor_(io) {
        acceptor_.open(ep.protocol());
        if constexpr (std::is_same_v<Protocol, tcp>) acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(ep);
        if constexpr (std::is_same_v<Protocol, unix_stream>) socketFile_ = ep.path();  // ours from now on
        acceptor_.listen(asio::socket_base::max_listen_connections);
        accept();
    }
    ~Server() {
        if (!socketFile_.empty()) ::unlink(socketFile_.c_str());
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    void close() { acceptor_.close(); }

private:
    void accept() {
        acceptor_.async_accept([this](std::error_code ec, typename Protocol::socket socket) {
            if (ec == asio::error::operation_aborted) return;  // closed at shutdown
            if (!ec) {
                if constexpr (std::is_same_v<Protocol, tcp>) {
                    std::error_code ignored;
                    socket.set_option(tcp::no_delay(true), ignored);
                }
                std::make_shared<Session<Protocol>>(std::move(socket))->read();
            }
            accept();
        });
    }

    typename Protocol::acceptor acceptor_;
    std::string socketFile_;  // unix: the path bound, removed by the destructor
};

template <typename Protocol>
void serve(const typename Protocol::endpoint& ep) {
    asio::io_context io(1);  // concurrency hint: one thread
    Server<Protocol> server(io, ep);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) {
        server.close();
        io.stop();  // the sessions still pending are destroyed with io
    });
    io.run();
}

}  // namespace

int main(int argc, char** argv) {
    const bool isUnix = argc == 2 && std::strncmp(argv[1], "unix:", 5) == 0 && argv[1][5] != '\0';
    const int port = argc == 2 && !isUnix ? std::atoi(argv[1]) : 0;
    if (!isUnix && (port <= 0 || port > 65535)) {
        std::fprintf(stderr, "usage: %s PORT | unix:PATH\n", argv[0]);
        return 2;
    }
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    try {
        if (isUnix) {
            serve<unix_stream>(unix_stream::endpoint(argv[1] + 5));
        } else {
            serve<tcp>(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), static_cast<unsigned short>(port)));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_asio: %s\n", e.what());
        return 1;
    }
    return 0;
}
