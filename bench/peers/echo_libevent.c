/* echo_libevent: a TCP echo server on libevent 2.1, a peer of weft in bench/compare.sh.
 *
 *   echo_libevent PORT     listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
 *   echo_libevent unix:PATH  listens on the UNIX stream socket PATH instead (the path must not
 *                          exist yet, and is removed at exit)
 *
 * An evconnlistener accepts; each connection has a persistent EV_READ event whose callback
 * reads into a 64 KiB stack buffer and writes straight back. Whatever the socket does not take
 * is kept, and the connection swaps its EV_READ event for an EV_WRITE one until that remainder
 * has gone out. (Not bufferevents: libevent 2.1's evbuffer_read reads at most 4 KiB per call,
 * EVBUFFER_MAX_READ, whatever bufferevent_set_max_single_read says.) */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)

struct conn {
    evutil_socket_t fd;
    struct event *read_ev;
    struct event *write_ev;
    char *pending; /* unsent remainder of the last echo, or NULL */
    size_t pending_len;
    size_t pending_off;
    struct conn *prev, *next; /* every open connection, freed at exit */
};

static struct conn *conns;

static void conn_free(struct conn *c) {
    if (c->read_ev) event_free(c->read_ev);
    if (c->write_ev) event_free(c->write_ev);
    evutil_closesocket(c->fd);
    if (c->prev) c->prev->next = c->next;
    else conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->pending);
    free(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    struct conn *c = arg;
    char buf[READ_BUF];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
        conn_free(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_free(c);
        return;
    }
    size_t done = 0, len = (size_t)n;
    while (done < len) {
        ssize_t w = send(fd, buf + done, len - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            conn_free(c);
            return;
        }
    }
    if (done < len) {
        c->pending = malloc(len - done);
        if (!c->pending) {
            conn_free(c);
            return;
        }
        memcpy(c->pending, buf + done, len - done);
        c->pending_len = len - done;
        c->pending_off = 0;
        event_del(c->read_ev);
        event_add(c->write_ev, NULL);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    struct conn *c = arg;
    while (c->pending_off < c->pending_len) {
        ssize_t w = send(fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->pending_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_free(c);
            return;
        }
    }
    free(c->pending);
    c->pending = NULL;
    event_del(c->write_ev);
    event_add(c->read_ev, NULL);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                      void *arg) {
    (void)listener;
    (void)socklen;
    struct event_base *base = arg;
    int one = 1; /* the listener made the socket non-blocking */
    if (sa->sa_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->fd = fd;
    c->next = conns;
    if (conns) conns->prev = c;
    conns = c;
    c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->write_ev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->read_ev || !c->write_ev || event_add(c->read_ev, NULL) != 0) conn_free(c);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
    const int is_unix = argc == 2 && strncmp(argv[1], "unix:", 5) == 0;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (is_unix && (argv[1][5] == '\0' || strlen(argv[1] + 5) >= sizeof sun.sun_path)) {
        fprintf(stderr, "echo_libevent: bad UNIX socket path %s\n", argv[1] + 5);
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
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (is_unix) strcpy(sun.sun_path, argv[1] + 5);
    struct sockaddr *sa = is_unix ? (struct sockaddr *)&sun : (struct sockaddr *)&addr;
    int salen = is_unix ? (int)sizeof sun : (int)sizeof addr;
    struct evconnlistener *listener =
        base ? evconnlistener_new_bind(base, on_accept, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                                                   LEV_OPT_CLOSE_ON_EXEC,
                                       SOMAXCONN, sa, salen)
             : NULL;
    if (!listener) {
        perror("echo_libevent: listen");
        return 1;
    }
    struct event *sigint_ev = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm_ev = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint_ev, NULL);
    event_add(sigterm_ev, NULL);

    event_base_dispatch(base);

    while (conns) conn_free(conns);
    evconnlistener_free(listener);
    if (is_unix) unlink(sun.sun_path);
    event_free(sigint_ev);
    event_free(sigterm_ev);
    event_base_free(base);
    return 0;
}
