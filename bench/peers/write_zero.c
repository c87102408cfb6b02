/* write_zero: the producer of bench/spawn.sh's child-output test, the same for every peer.
 *
 *   write_zero BYTES [CPU]
 *                       writes BYTES zero bytes to fd 1 in writes of 64 KiB (the last one shorter),
 *                       resuming partial writes; exit 0, or 1 on a write error (EPIPE included).
 *                       With CPU, it first pins itself to that core (sched_setaffinity), so that
 *                       bench/spawn.sh can put the writer and the reader on different cores.
 *
 * Blocking writes: the descriptor is whatever the parent made (weft: a pipe; libuv: a socketpair),
 * and the child waits in write() whenever the parent falls behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static char zeros[CHUNK];

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: write_zero BYTES [CPU]\n");
        return 2;
    }
    if (argc == 3) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(argv[2]), &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            perror("write_zero: sched_setaffinity");
            return 2;
        }
    }
    char* end = NULL;
    unsigned long long left = strtoull(argv[1], &end, 10);
    if (!end || *end != '\0') {
        fprintf(stderr, "write_zero: bad byte count %s\n", argv[1]);
        return 2;
    }
    while (left > 0) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ssize_t n = write(1, zeros, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("write_zero: write");
            return 1;
        }
        left -= (unsigned long long)n;
    }
    return 0;
}
