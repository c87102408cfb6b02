/* echo_udp_raw: a hand-written UDP echo server on epoll with recvmmsg/sendmmsg batching, the
 * "no library" UDP baseline of bench/compare.sh (what echo_epoll.c is for TCP).
 *
 *   echo_udp_raw PORT      binds 127.0.0.1:PORT (UDP); SIGTERM or SIGINT stops it (exit 0)
 *
 * When the socket is readable, recvmmsg takes up to BATCH datagrams (each into its own 64 KiB
 * slot, with its sender's address) and one sendmmsg sends them all back to their senders, until
 * recvmmsg finds nothing. Datagrams the socket does not take (EAGAIN, which loopback hardly
 * ever reports) are kept; the server then stops reading and waits for EPOLLOUT. A datagram that
 * fails for another reason (say, its sender is gone: ECONNREFUSED) is skipped. Nothing is
 * printed when ready: like the other peers, the server is ready once the port is bound. The
 * socket keeps the default receive buffer (as every server in the comparison does). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX (64 * 1024)

static char bufs[BATCH][DGRAM_MAX];
static struct sockaddr_storage addrs[BATCH];
static struct iovec iovs[BATCH];
static struct mmsghdr msgs[BATCH];
static unsigned pending_off, pending_end; /* msgs[pending_off, pending_end) still to send */

static void prepare_recv(void) {
    for (int i = 0; i < BATCH; ++i) {
        iovs[i].iov_base = bufs[i];
        iovs[i].iov_len = DGRAM_MAX;
        memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
}

/* Sends msgs[pending_off, pending_end) back. Returns 0 when all went out (or were skipped), 1
 * when the socket is full (EAGAIN) and the rest must wait for EPOLLOUT. */
static int flush(int fd) {
    while (pending_off < pending_end) {
        int n = sendmmsg(fd, msgs + pending_off, pending_end - pending_off, 0);
        if (n > 0) {
            pending_off += (unsigned)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            return 1;
        } else {
            ++pending_off; /* this datagram cannot be sent (its sender is gone, ...): skip it */
        }
    }
    return 0;
}

/* Echoes until the socket has nothing left to read. Returns 1 if a remainder waits for EPOLLOUT. */
static int on_readable(int fd) {
    for (;;) {
        prepare_recv();
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 0; /* EAGAIN, or an error queued by an earlier send (ECONNREFUSED): read again later */
        }
        if (n == 0) return 0;
        for (int i = 0; i < n; ++i) iovs[i].iov_len = msgs[i].msg_len; /* msg_namelen is set by recvmmsg */
        pending_off = 0;
        pending_end = (unsigned)n;
        if (flush(fd)) return 1;
        if (n < BATCH) return 0; /* drained: back to epoll_wait rather than one more empty recvmmsg */
    }
}

int main(int argc, char **argv) {
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (sfd < 0 || fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("echo_udp_raw");
        return 1;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    struct epoll_event events[4];
    int running = 1, blocked = 0;
    while (running) {
        int n = epoll_wait(ep, events, 4, -1);
        if (n < 0 && errno != EINTR) {
            perror("echo_udp_raw: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.fd == sfd) {
                running = 0;
                continue;
            }
            int now_blocked = blocked ? flush(fd) : 0;
            if (!now_blocked) now_blocked = on_readable(fd);
            if (now_blocked != blocked) {
                blocked = now_blocked;
                ev.events = blocked ? EPOLLOUT : EPOLLIN;
                ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            }
        }
    }
    close(fd);
    close(sfd);
    close(ep);
    return 0;
}
