/* unix_read_cost: what a UNIX stream socket's read costs by the call that makes it (bench/README.md,
 * "The stream layer's cost"). weft reads UNIX stream connections with recvmsg and a control buffer,
 * because UNIX-19 asks it to notice (close and log) descriptors a peer sends to a protocol that
 * does not take them; libuv reads a non-IPC pipe with read(). This puts a number on the
 * difference, with nothing else in the loop: one 64-byte write and one read per message on a
 * socketpair, the read made four ways in turn (rounds alternate the order), medians printed.
 *
 *   unix_read_cost [--messages N] [--rounds R]      (defaults 1000000 and 5)
 *
 * Prints one line per way: `way=NAME us_per_message=X ratio_to_read=Y`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kWays = 4, kMaxRounds = 64 };
static const char* const kNames[kWays] = {"read", "recvmsg_control_253_fds", "recvmsg_control_1_fd",
                                          "recvmsg_no_control"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static ssize_t read_one(int way, int fd, char* buf, size_t room) {
    if (way == 0) return read(fd, buf, room);
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 253)];
    } control;
    struct iovec iov = {buf, room};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (way == 1 || way == 2) {
        m.msg_control = control.bytes;
        m.msg_controllen = way == 1 ? CMSG_SPACE(sizeof(int) * 253) : CMSG_SPACE(sizeof(int));
    }
    return recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
}

int main(int argc, char** argv) {
    long messages = 1000000, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--messages")) messages = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: unix_read_cost [--messages N] [--rounds R]\n");
            return 2;
        }
    }
    if (argc % 2 == 0 || messages <= 0 || rounds <= 0 || rounds > kMaxRounds) {
        fprintf(stderr, "usage: unix_read_cost [--messages N > 0] [--rounds 1..%d]\n", kMaxRounds);
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("unix_read_cost: socketpair");
        return 1;
    }
    static char buf[65536];
    char msg[64];
    memset(msg, 'x', sizeof msg);
    static double us[kWays][kMaxRounds];
    for (long r = 0; r < rounds; ++r) {
        for (int k = 0; k < kWays; ++k) {
            int way = (int)((k + r) % kWays);
            double t0 = now_s();
            for (long i = 0; i < messages; ++i) {
                if (write(sv[0], msg, sizeof msg) != (ssize_t)sizeof msg ||
                    read_one(way, sv[1], buf, sizeof buf) != (ssize_t)sizeof msg) {
                    fprintf(stderr, "unix_read_cost: %s: %s\n", kNames[way], strerror(errno));
                    return 1;
                }
            }
            us[way][r] = (now_s() - t0) / (double)messages * 1e6;
        }
    }
    double median[kWays];
    for (int w = 0; w < kWays; ++w) {
        qsort(us[w], (size_t)rounds, sizeof us[w][0], cmp_double);
        median[w] = us[w][rounds / 2];
    }
    for (int w = 0; w < kWays; ++w)
        printf("way=%s us_per_message=%.3f ratio_to_read=%.3f\n", kNames[w], median[w], median[w] / median[0]);
    return 0;
}
