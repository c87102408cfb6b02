/* echo_epoll: a hand-written TCP echo server on a level-triggered epoll loop, the "no library"
 * baseline of bench/compare.sh.
 *
 *   echo_epoll PORT        listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
 *   echo_epoll unix:PATH   listens on the UNIX stream socket PATH instead (AF_UNIX; the path
 *                          must not exist yet, and is removed at exit)
 *
 * Each readable connection gets one read() into a 64 KiB stack buffer, written straight back.
 * Whatever the socket does not take is kept per connection; only then is the connection
 * switched from EPOLLIN to EPOLLOUT (no reading until the remainder has gone out). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    char *pending; /* unsent remainder of the last echo, or NULL */
    size_t pending_len;
    size_t pending_off;
    struct conn *prev, *next; /* every open connection, freed at exit */
};

static int ep = -1;
static struct conn *conns;
static int is_unix; /* unix:PATH */
static char listener_tag, signal_tag; /* epoll data for the two non-connection descriptors */

static void set_events(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c) {
    close(c->fd); /* also leaves the epoll set */
    if (c->prev) c->prev->next = c->next;
    else conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->pending);
    free(c);
}

static void on_readable(struct conn *c) {
    char buf[READ_BUF];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0) {
        conn_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_close(c);
        return;
    }
    size_t done = 0, len = (size_t)n;
    while (done < len) {
        ssize_t w = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            conn_close(c);
            return;
        }
    }
    if (done < len) {
        c->pending = malloc(len - done);
        if (!c->pending) {
            conn_close(c);
            return;
        }
        memcpy(c->pending, buf + done, len - done);
        c->pending_len = len - done;
        c->pending_off = 0;
        set_events(c, EPOLLOUT);
    }
}

static void on_writable(struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t w = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->pending_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_close(c);
            return;
        }
    }
    free(c->pending);
    c->pending = NULL;
    set_events(c, EPOLLIN);
}

static void on_accept(int lfd) {
    static int warned;
    for (int i = 0; i < 64; ++i) { /* a bounded batch, then back to the other descriptors */
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && !warned) {
                warned = 1;
                perror("echo_epoll: accept4");
            }
            return;
        }
        int one = 1;
        if (!is_unix) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = conns;
        if (conns) conns->prev = c;
        conns = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) conn_close(c);
    }
}

int main(int argc, char **argv) {
    is_unix = argc == 2 && strncmp(argv[1], "unix:", 5) == 0;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (is_unix && (argv[1][5] == '\0' || strlen(argv[1] + 5) >= sizeof sun.sun_path)) {
        fprintf(stderr, "echo_epoll: bad UNIX socket path %s\n", argv[1] + 5);
        return 2;
    }
    if (argc != 2 || (!is_unix && (atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535))) {
        fprintf(stderr, "usage: %s PORT | unix:PATH\n", argv[0]);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    int lfd = socket(is_unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int bound;
    if (is_unix) {
        strcpy(sun.sun_path, argv[1] + 5);
        bound = lfd >= 0 && bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0;
    } else {
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        bound = lfd >= 0 && bind(lfd, (struct sockaddr *)&addr, sizeof addr) == 0;
    }
    if (sfd < 0 || !bound || listen(lfd, SOMAXCONN) != 0) {
        perror("echo_epoll");
        if (bound && is_unix) unlink(sun.sun_path);
        return 1;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &signal_tag;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    struct epoll_event events[MAX_EVENTS];
    int running = 1;
    while (running) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            void *p = events[i].data.ptr;
            if (p == &listener_tag) {
                on_accept(lfd);
            } else if (p == &signal_tag) {
                running = 0;
            } else {
                struct conn *c = p;
                if (c->pending) on_writable(c);
                else on_readable(c);
            }
        }
    }

    while (conns) conn_close(conns);
    close(lfd);
    if (is_unix) unlink(sun.sun_path);
    close(sfd);
    close(ep);
    return 0;
}
