// Internal: one read from a descriptor that is not a socket (a pipe end, a
// PTY master, standard input), into the thread's shared read buffer, the way
// StreamTransport::doRead reads a socket: EINTR retried, EAGAIN is nothing
// to do, 0 (and, for a PTY master whose last slave closed, EIO) is the end
// of the stream, anything else a ConnectionLost carrying the errno.
#pragma once

#include <cerrno>
#include <cstddef>
#include <system_error>

#include <weft/internet/error.hpp>
#include <weft/internet/interfaces.hpp>

#include "internet/detail/scratch.hpp"
#include "sys/syscalls.hpp"

namespace weft::detail {

enum class EioMeans : bool { error, end };

/// Reads at most `bufferSize` bytes from fd and hands them to deliver(Bytes);
/// `*got` (if given) is the number delivered, 0 when nothing was.
template <class Deliver>
Reason readChunk(int fd, std::size_t bufferSize, EioMeans eio, Deliver&& deliver, std::size_t* got = nullptr) {
    if (got) *got = 0;
    if (fd < 0) return std::nullopt;
    const std::size_t want = bufferSize ? bufferSize : 1;
    BorrowedBuffer buffer(want);
    ssize_t n;
    do n = sys::ops.read(fd, buffer.data(), want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        if (errno == EIO && eio == EioMeans::end) return error::connectionDone();
        return Failure(error::ConnectionLost(std::error_code(errno, std::generic_category())));
    }
    if (n == 0) return error::connectionDone();
    if (got) *got = static_cast<std::size_t>(n);
    deliver(Bytes(buffer.data(), static_cast<std::size_t>(n)));
    return std::nullopt;
}

}  // namespace weft::detail
