// Internal: sockaddr_un from a UNIX socket path and back, shared by the UNIX
// stream (unix.cpp) and datagram (udp.cpp) transports. Spec: unix.md.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace weft::detail {

/// A UNIX socket address. `length` counts only the bytes of the name that
/// matter: an abstract-namespace name ("\0…") is not NUL-terminated and its
/// length is exact; a filesystem path carries its terminating NUL.
struct UnixSockAddr {
    sockaddr_un u{};
    socklen_t length = 0;
    static constexpr socklen_t capacity = sizeof(sockaddr_un);
    /// The longest filesystem path (107 bytes on Linux, room kept for the NUL).
    static constexpr std::size_t maxPath = sizeof(sockaddr_un::sun_path) - 1;

    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&u); }
    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&u); }

    /// False when `path` does not fit (too long, or a filesystem path with an
    /// embedded NUL); `result` is then untouched.
    static bool fromPath(std::string_view path, UnixSockAddr& result) noexcept {
        // Empty is no address: its sockaddr (a NUL at sun_path[0]) would name
        // the abstract socket "\0", whoever holds it.
        if (path.empty()) return false;
        UnixSockAddr a;
        a.u.sun_family = AF_UNIX;
        const bool abstract = path.front() == '\0';
        if (abstract) {
            if (path.size() > sizeof a.u.sun_path) return false;
        } else {
            if (path.size() > maxPath || path.find('\0') != std::string_view::npos) return false;
        }
        std::memcpy(a.u.sun_path, path.data(), path.size());
        a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
        result = a;
        return true;
    }

    /// The name as given back by the kernel: "" for an unbound socket, the
    /// NUL-prefixed bytes for an abstract name, the path otherwise.
    std::string path() const {
        const auto header = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
        if (length <= header) return {};
        std::size_t n = length - header;
        if (n > sizeof u.sun_path) n = sizeof u.sun_path;
        if (u.sun_path[0] == '\0') return std::string(u.sun_path, n);
        return std::string(u.sun_path, ::strnlen(u.sun_path, n));
    }

    static bool isAbstract(std::string_view path) noexcept { return !path.empty() && path.front() == '\0'; }
};

/// A path for messages, on one line: an abstract name shows its NUL as "@",
/// control bytes and invalid UTF-8 are escaped (weft::printable).
std::string displayPath(std::string_view path);

/// Why UnixSockAddr::fromPath refused `path`, in words: "AF_UNIX path too long
/// (N bytes, at most M)", or that a filesystem path holds a NUL byte.
std::string unusablePathMessage(std::string_view path);
/// The errno for the same: EINVAL for a NUL byte, ENAMETOOLONG for a path too long.
int unusablePathError(std::string_view path) noexcept;

/// What went wrong when creating `path` (a socket file or its lock) failed
/// with errno `e`, naming the real cause: the directory that does not exist,
/// the directory the user may not write to, a path that is too long, a live
/// listener or another file already there. For messages after "Couldn't
/// listen on any:PATH: ".
std::string pathFailure(const std::string& path, int e);

/// Which file a path named when a socket was bound there (lstat's device and
/// inode), so that closing the socket removes that file and not one another
/// socket has bound at the same path since (after unlinking ours).
struct BoundFile {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    bool known = false;
};
BoundFile boundFileAt(const std::string& path) noexcept;
/// Removes `path` if it is still `file` (or its identity is unknown); an
/// error other than ENOENT is logged. True if it was removed.
bool unlinkBoundFile(const std::string& path, const BoundFile& file) noexcept;

/// What a connect to `path` refused with ECONNREFUSED found there, which the
/// kernel says for both: " (a socket file no process listens on)" or
/// " (PATH is not a socket)"; empty for an abstract name or nothing there.
std::string refusedDetail(const std::string& path);

}  // namespace weft::detail
