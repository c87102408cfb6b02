/* tunnel_loop: the plain C ceiling for `weft tunnel` (bench/tunnel.sh): the same point-to-point
 * tunnel with nothing but system calls.
 *
 *   tunnel_loop NAME LISTEN_IP LISTEN_PORT PEER_IP PEER_PORT MTU
 *
 * Creates (or attaches to) the TUN device NAME with IFF_TUN | IFF_NO_PI, sets its MTU, binds a UDP
 * socket to LISTEN_IP:LISTEN_PORT, then loops on poll(2) over both descriptors: while the device
 * is readable, read(2) a packet and sendto(2) it to the peer; while the socket is readable,
 * recvfrom(2) a datagram and, if the peer sent it, write(2) it into the device (others are counted).
 * Each side is drained until EAGAIN before polling again, as weft's read loop does (without its
 * budget). SIGTERM or SIGINT stops it (exit 0), printing the counts on stderr. Prints "ready" on
 * stdout once the device and the socket are set up. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int die(const char* what) {
    fprintf(stderr, "tunnel_loop: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char** argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: tunnel_loop NAME LISTEN_IP LISTEN_PORT PEER_IP PEER_PORT MTU\n");
        return 2;
    }
    int mtu = atoi(argv[6]);
    int tun = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tun < 0) return die("open /dev/net/tun");
    struct ifreq req;
    memset(&req, 0, sizeof req);
    strncpy(req.ifr_name, argv[1], IFNAMSIZ - 1);
    req.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(tun, TUNSETIFF, &req) != 0) return die("TUNSETIFF");
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return die("socket");
    struct ifreq mreq;
    memset(&mreq, 0, sizeof mreq);
    memcpy(mreq.ifr_name, req.ifr_name, IFNAMSIZ);
    mreq.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &mreq) != 0) return die("SIOCSIFMTU");
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[3]))};
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[5]))};
    if (inet_pton(AF_INET, argv[2], &local.sin_addr) != 1 || inet_pton(AF_INET, argv[4], &peer.sin_addr) != 1) {
        fprintf(stderr, "tunnel_loop: bad address\n");
        return 2;
    }
    if (bind(s, (struct sockaddr*)&local, sizeof local) != 0) return die("bind");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);

    static char buf[65536];
    unsigned long long to_peer = 0, from_peer = 0, strangers = 0;
    struct pollfd fds[2] = {{.fd = tun, .events = POLLIN}, {.fd = s, .events = POLLIN}};
    while (!stopping) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return die("poll");
        }
        if (fds[0].revents & POLLIN) {
            for (;;) {
                ssize_t n = read(tun, buf, sizeof buf);
                if (n < 0) break; /* EAGAIN (or EINTR: poll again) */
                if (sendto(s, buf, (size_t)n, 0, (struct sockaddr*)&peer, sizeof peer) >= 0) ++to_peer;
            }
        }
        if (fds[1].revents & POLLIN) {
            for (;;) {
                struct sockaddr_in from;
                socklen_t len = sizeof from;
                ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr*)&from, &len);
                if (n < 0) break;
                if (from.sin_addr.s_addr != peer.sin_addr.s_addr || from.sin_port != peer.sin_port) {
                    ++strangers;
                    continue;
                }
                if (write(tun, buf, (size_t)n) >= 0) ++from_peer;
            }
        }
    }
    fprintf(stderr, "tunnel_loop %s: %llu packets to the peer, %llu from the peer; dropped: %llu from strangers\n",
            req.ifr_name, to_peer, from_peer, strangers);
    close(s);
    close(tun);
    return 0;
}
