// Messages about UNIX socket paths, shared by the stream and datagram
// transports (detail/unixpath.hpp).
#include "internet/detail/unixpath.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <weft/log.hpp>
#include <weft/text.hpp>

#include "sys/syscalls.hpp"

namespace weft::detail {

std::string displayPath(std::string_view path) {
    if (UnixSockAddr::isAbstract(path)) return "@" + weft::printable(path.substr(1));
    return weft::printable(path);
}

namespace {
bool holdsNul(std::string_view path) noexcept {
    return !UnixSockAddr::isAbstract(path) && path.find('\0') != std::string_view::npos;
}
}  // namespace

std::string unusablePathMessage(std::string_view path) {
    if (path.empty()) return "AF_UNIX path is empty (an unbound socket has no address)";
    if (holdsNul(path))
        return "AF_UNIX path contains a NUL byte (only an abstract name, which starts with one, may hold NUL bytes)";
    return fmt::format("AF_UNIX path too long ({} bytes, at most {})", path.size(),
                       UnixSockAddr::isAbstract(path) ? sizeof(sockaddr_un::sun_path) : UnixSockAddr::maxPath);
}

BoundFile boundFileAt(const std::string& path) noexcept {
    struct stat st {};
    if (sys::ops.lstat(path.c_str(), &st) != 0) return {};
    return BoundFile{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino), true};
}

bool unlinkBoundFile(const std::string& path, const BoundFile& file) noexcept {
    if (file.known) {
        struct stat st {};
        if (sys::ops.lstat(path.c_str(), &st) != 0) return false;  // gone already
        if (static_cast<std::uint64_t>(st.st_dev) != file.dev || static_cast<std::uint64_t>(st.st_ino) != file.ino)
            return false;  // another socket's now
    }
    if (sys::ops.unlink(path.c_str()) == 0) return true;
    if (errno != ENOENT)
        log::warn("", "Could not remove the socket file {}: {}", displayPath(path), std::strerror(errno));
    return false;
}

int unusablePathError(std::string_view path) noexcept { return path.empty() || holdsNul(path) ? EINVAL : ENAMETOOLONG; }

namespace {

std::string directoryOf(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

std::string pathFailure(const std::string& path, int e) {
    if (e == EINVAL && holdsNul(path)) return unusablePathMessage(path);
    const std::string dir = directoryOf(path);
    const char* reason = std::strerror(e);
    switch (e) {
        case ENOENT: {
            // procfs answers ENOENT to a file made in a directory that exists.
            struct stat st {};
            if (sys::ops.stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
                return fmt::format("{}: the directory {} exists but its file system makes no files there", reason,
                                   weft::quote(dir));
            return fmt::format("{}: the directory {} does not exist", reason, weft::quote(dir));
        }
        case ENOTDIR: return fmt::format("{}: a component of {} is not a directory", reason, weft::quote(dir));
        case EACCES:
        case EPERM: return fmt::format("{}: no permission to create a file in {}", reason, weft::quote(dir));
        case EROFS: return fmt::format("{}: {} is on a read-only file system", reason, weft::quote(dir));
        case ENAMETOOLONG: return unusablePathMessage(path);
        case EADDRINUSE: {
            struct stat st {};
            if (sys::ops.lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
                return fmt::format("{}: {} exists and is not a socket (left untouched)", reason, weft::quote(path));
            return fmt::format("{}: {} belongs to another socket that is in use", reason, weft::quote(path));
        }
        default: return reason;
    }
}

std::string refusedDetail(const std::string& path) {
    struct stat st {};
    if (UnixSockAddr::isAbstract(path) || sys::ops.stat(path.c_str(), &st) != 0) return {};
    if (S_ISSOCK(st.st_mode)) return " (a socket file no process listens on)";
    return " (" + displayPath(path) + " is not a socket)";
}

}  // namespace weft::detail
