#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include "internet/detail/poller.hpp"
#include "sys/syscalls.hpp"

namespace weft::detail {

int timeoutMillis(std::optional<double> timeout) {
    if (!timeout) return -1;
    double ms = std::ceil(*timeout * 1000.0);
    if (!(ms > 0)) return 0;  // NaN too: a cast of it to int is undefined
    if (ms > 2147483647.0) return 2147483647;
    return static_cast<int>(ms);
}

namespace {

[[noreturn]] void throwErrno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// ---- epoll -----------------------------------------------------------------

class EpollPoller final : public Poller {
    static constexpr std::size_t kMaxEvents = 1024;

public:
    EpollPoller() : ep_(sys::ops.epoll_create1(EPOLL_CLOEXEC)) {
        if (ep_ < 0) throwErrno("epoll_create1");
        events_.resize(256);
    }
    ~EpollPoller() override { sys::ops.close(ep_); }

    void set(int fd, std::uint64_t token, unsigned interest, bool present) override {
        epoll_event ev{};
        ev.events = ((interest & kReadable) ? EPOLLIN : 0u) | ((interest & kWritable) ? EPOLLOUT : 0u);
        ev.data.u64 = token;
        if (auto it = continuous_.find(fd); it != continuous_.end()) {
            it->second = {token, interest};
            return;
        }
        if (sys::ops.epoll_ctl(ep_, present ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0) return;
        if (errno == EPERM) {
            // Regular files cannot be polled; they are always ready (R-43, Twisted's
            // _ContinuousPolling): report them every iteration while registered.
            continuous_[fd] = {token, interest};
            return;
        }
        if (present && errno == ENOENT) {  // the kernel dropped it (fd closed and reopened)
            if (sys::ops.epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0) return;
        }
        throwErrno("epoll_ctl");
    }

    void remove(int fd) override {
        if (continuous_.erase(fd)) return;
        sys::ops.epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);  // ENOENT/EBADF: already gone
    }

    void wait(std::optional<double> timeout, std::vector<ReadyEvent>& out) override {
        for (auto& [fd, st] : continuous_)
            if (st.second) out.push_back({fd, st.second, st.first});
        int ms = out.empty() ? timeoutMillis(timeout) : 0;
        int n = sys::ops.epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()), ms);
        if (n < 0) {
            if (errno == EINTR) return;
            throwErrno("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const auto& e = events_[static_cast<std::size_t>(i)];
            unsigned bits = ((e.events & EPOLLIN) ? kReadable : 0u) | ((e.events & EPOLLOUT) ? kWritable : 0u) |
                            ((e.events & EPOLLHUP) ? kHangup : 0u) | ((e.events & EPOLLERR) ? kError : 0u);
            out.push_back({static_cast<int>(e.data.u64 & 0xffffffffu), bits, e.data.u64});
        }
        // A full array: more may be ready, so take more next time, up to kMaxEvents
        // (libuv takes 1024). Beyond that a larger array saves almost no waits but
        // stays in memory: a burst of 10 000 connections grew it to 8192 entries
        // (96 KiB, and twice that in the reactor's list of ready events).
        if (static_cast<std::size_t>(n) == events_.size() && events_.size() < kMaxEvents)
            events_.resize(events_.size() * 2);
    }

    bool checksNewDescriptors() const override { return true; }
    bool reportsHangup() const override { return true; }

private:
    int ep_;
    std::vector<epoll_event> events_;
    std::unordered_map<int, std::pair<std::uint64_t, unsigned>> continuous_;
};

// ---- poll ------------------------------------------------------------------

class PollPoller final : public Poller {
public:
    void set(int fd, std::uint64_t token, unsigned interest, bool /*present*/) override {
        short ev = static_cast<short>(((interest & kReadable) ? POLLIN : 0) | ((interest & kWritable) ? POLLOUT : 0));
        auto it = index_.find(fd);
        if (it == index_.end()) {
            index_[fd] = fds_.size();
            fds_.push_back({fd, ev, 0});
            tokens_.push_back(token);
        } else {
            fds_[it->second].events = ev;
            tokens_[it->second] = token;
        }
    }

    void remove(int fd) override {
        auto it = index_.find(fd);
        if (it == index_.end()) return;
        std::size_t i = it->second, last = fds_.size() - 1;
        if (i != last) {
            fds_[i] = fds_[last];
            tokens_[i] = tokens_[last];
            index_[fds_[i].fd] = i;
        }
        fds_.pop_back();
        tokens_.pop_back();
        index_.erase(it);
    }

    void wait(std::optional<double> timeout, std::vector<ReadyEvent>& out) override {
        int n = sys::ops.poll(fds_.data(), fds_.size(), timeoutMillis(timeout));
        if (n < 0) {
            if (errno == EINTR) return;
            throwErrno("poll");
        }
        for (std::size_t i = 0; i < fds_.size() && n > 0; ++i) {
            short r = fds_[i].revents;
            if (!r) continue;
            --n;
            unsigned bits = ((r & POLLIN) ? kReadable : 0u) | ((r & POLLOUT) ? kWritable : 0u) |
                            ((r & POLLHUP) ? kHangup : 0u) | ((r & POLLERR) ? kError : 0u) |
                            ((r & POLLNVAL) ? kInvalid : 0u);
            out.push_back({fds_[i].fd, bits, tokens_[i]});
        }
    }

    bool reportsHangup() const override { return true; }

private:
    std::vector<pollfd> fds_;
    std::vector<std::uint64_t> tokens_;
    std::unordered_map<int, std::size_t> index_;
};

// ---- select ----------------------------------------------------------------

class SelectPoller final : public Poller {
public:
    void set(int fd, std::uint64_t token, unsigned interest, bool /*present*/) override {
        fds_[fd] = {token, interest};
    }
    void remove(int fd) override { fds_.erase(fd); }

    void wait(std::optional<double> timeout, std::vector<ReadyEvent>& out) override {
        fd_set r, w;
        FD_ZERO(&r);
        FD_ZERO(&w);
        int maxfd = -1;
        for (auto& [fd, st] : fds_) {
            if (fd >= FD_SETSIZE) {  // cannot be watched: disconnect it
                out.push_back({fd, kInvalid, st.first});
                continue;
            }
            if (st.second & kReadable) FD_SET(fd, &r);
            if (st.second & kWritable) FD_SET(fd, &w);
            if (st.second && fd > maxfd) maxfd = fd;
        }
        if (!out.empty()) return;
        timeval tv{}, *tvp = nullptr;
        if (timeout) {
            double t = std::max(0.0, *timeout);
            tv.tv_sec = static_cast<time_t>(t);
            tv.tv_usec = static_cast<suseconds_t>(std::ceil((t - static_cast<double>(tv.tv_sec)) * 1e6));
            if (tv.tv_usec >= 1000000) {
                tv.tv_sec += 1;
                tv.tv_usec = 0;
            }
            tvp = &tv;
        }
        int n = sys::ops.select(maxfd + 1, &r, &w, nullptr, tvp);
        if (n < 0) {
            if (errno == EINTR) return;
            if (errno == EBADF) {  // probe each descriptor alone (Twisted's _preenDescriptors)
                for (auto& [fd, st] : fds_)
                    if (sys::ops.fcntl(fd, F_GETFD, 0) < 0) out.push_back({fd, kInvalid, st.first});
                return;
            }
            throwErrno("select");
        }
        for (auto& [fd, st] : fds_) {
            if (n <= 0) break;
            unsigned bits = (FD_ISSET(fd, &r) ? kReadable : 0u) | (FD_ISSET(fd, &w) ? kWritable : 0u);
            if (bits) {
                out.push_back({fd, bits, st.first});
                --n;
            }
        }
    }

    bool reportsHangup() const override { return false; }

private:
    std::unordered_map<int, std::pair<std::uint64_t, unsigned>> fds_;
};

}  // namespace

std::unique_ptr<Poller> makeEpollPoller() { return std::make_unique<EpollPoller>(); }
std::unique_ptr<Poller> makePollPoller() { return std::make_unique<PollPoller>(); }
std::unique_ptr<Poller> makeSelectPoller() { return std::make_unique<SelectPoller>(); }

}  // namespace weft::detail
