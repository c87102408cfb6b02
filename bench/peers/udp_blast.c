/* udp_blast: a UDP load source and sink for bench/tunnel.sh, bounded in count and time.
 *
 *   udp_blast send HOST PORT SIZE COUNT SECONDS [RATE]
 *                                                  sends COUNT datagrams of SIZE bytes to HOST:PORT
 *                                                  as fast as sendmmsg takes them (batches of 64),
 *                                                  or RATE a second (what is due, every 100 µs or
 *                                                  so: small bursts), until COUNT
 *                                                  are sent or SECONDS have passed; prints
 *                                                  "sent=N seconds=T"
 *   udp_blast recv HOST PORT IDLE SECONDS           counts what arrives at HOST:PORT (recvmmsg) until
 *                                                  nothing has come for IDLE seconds (after the
 *                                                  first datagram) or SECONDS have passed; prints
 *                                                  "received=N bytes=B seconds=T" where T runs from
 *                                                  the first datagram to the last
 * The receiver prints "ready" on stderr once bound. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fill(struct sockaddr_in* a, const char* host, const char* port) {
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)atoi(port));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static char buffers[BATCH][65536];

int main(int argc, char** argv) {
    if (argc < 6 || (strcmp(argv[1], "send") == 0 ? argc != 7 && argc != 8 : argc != 6)) {
        fprintf(stderr, "usage: udp_blast send HOST PORT SIZE COUNT SECONDS [RATE] | recv HOST PORT IDLE SECONDS\n");
        return 2;
    }
    struct sockaddr_in addr;
    if (fill(&addr, argv[2], argv[3]) != 0) {
        fprintf(stderr, "udp_blast: bad address %s\n", argv[2]);
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return perror("socket"), 1;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    if (strcmp(argv[1], "send") == 0) {
        size_t size = (size_t)atol(argv[4]);
        unsigned long long count = strtoull(argv[5], NULL, 10), sent = 0;
        double limit = atof(argv[6]);
        double rate = argc == 8 ? atof(argv[7]) : 0;
        if (size < 1 || size > sizeof buffers[0]) return fprintf(stderr, "udp_blast: bad size\n"), 2;
        if (connect(s, (struct sockaddr*)&addr, sizeof addr) != 0) return perror("connect"), 1;
        for (int i = 0; i < BATCH; ++i) {
            memset(buffers[i], 'b', size);
            iov[i].iov_base = buffers[i];
            iov[i].iov_len = size;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        double start = now(), end = start;
        while (sent < count && (end = now()) - start < limit) {
            unsigned want = count - sent < BATCH ? (unsigned)(count - sent) : BATCH;
            if (rate > 0) {
                /* Paced: send what is due by now (in sendmmsg batches), else sleep 100 µs. */
                unsigned long long due = (unsigned long long)((end - start) * rate) + 1;
                if (due <= sent) {
                    struct timespec pause = {0, 100000};
                    nanosleep(&pause, NULL);
                    continue;
                }
                if (due - sent < want) want = (unsigned)(due - sent);
            }
            int n = sendmmsg(s, msgs, want, 0);
            if (n > 0) sent += (unsigned long long)n;
            else if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
                return perror("sendmmsg"), 1;
        }
        printf("sent=%llu seconds=%.3f\n", sent, now() - start);
        return 0;
    }
    if (strcmp(argv[1], "recv") != 0) return fprintf(stderr, "udp_blast: send or recv\n"), 2;
    int big = 8 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (bind(s, (struct sockaddr*)&addr, sizeof addr) != 0) return perror("bind"), 1;
    double idle = atof(argv[4]), limit = atof(argv[5]);
    for (int i = 0; i < BATCH; ++i) {
        iov[i].iov_base = buffers[i];
        iov[i].iov_len = sizeof buffers[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    fprintf(stderr, "ready\n");
    unsigned long long received = 0, bytes = 0;
    double start = now(), first = 0, last = 0;
    struct pollfd p = {.fd = s, .events = POLLIN};
    for (;;) {
        double t = now();
        if (t - start > limit) break;
        if (received && t - last > idle) break;
        if (poll(&p, 1, 50) <= 0) continue;
        int n = recvmmsg(s, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) continue;
        last = now();
        if (!received) first = last;
        received += (unsigned long long)n;
        for (int i = 0; i < n; ++i) bytes += msgs[i].msg_len;
    }
    printf("received=%llu bytes=%llu seconds=%.6f\n", received, bytes, received ? last - first : 0.0);
    return 0;
}
