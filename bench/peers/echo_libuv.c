/* echo_libuv: a TCP echo server on libuv, a peer of weft in bench/compare.sh.
 *
 *   echo_libuv PORT        listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
 *
 * uv_read_start reads into one static 64 KiB buffer (the loop is single-threaded and read_cb
 * consumes it before the next alloc_cb). read_cb echoes with uv_try_write; whatever the socket
 * does not take is copied and queued with uv_write, and reading stops until that write
 * completes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <uv.h>

#define READ_BUF (64 * 1024)

struct client {
    uv_tcp_t tcp; /* first member: a uv_handle_t* of a client is a struct client* */
    uv_write_t req;
    char *pending; /* the remainder being written by uv_write, or NULL */
};

static char read_buf[READ_BUF];
static uv_tcp_t server;
static uv_signal_t sigint_handle, sigterm_handle;

static void on_client_close(uv_handle_t *h) {
    struct client *c = (struct client *)h;
    free(c->pending);
    free(c);
}

static void close_client(struct client *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_client_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
    struct client *c = req->data;
    free(c->pending);
    c->pending = NULL;
    if (status < 0) {
        close_client(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) close_client(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    struct client *c = (struct client *)stream;
    if (nread == 0) return; /* EAGAIN */
    if (nread < 0) {        /* UV_EOF or an error */
        close_client(c);
        return;
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int written = uv_try_write(stream, &out, 1);
    if (written == nread) return;
    if (written == UV_EAGAIN) written = 0;
    if (written < 0) {
        close_client(c);
        return;
    }
    size_t rest = (size_t)nread - (size_t)written;
    c->pending = malloc(rest);
    if (!c->pending) {
        close_client(c);
        return;
    }
    memcpy(c->pending, buf->base + written, rest);
    out = uv_buf_init(c->pending, (unsigned int)rest);
    uv_read_stop(stream);
    c->req.data = c;
    if (uv_write(&c->req, stream, &out, 1, on_write) != 0) close_client(c);
}

static void on_connection(uv_stream_t *listener, int status) {
    if (status < 0) return;
    struct client *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c; /* marks the handle as a client for close_all */
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        close_client(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) close_client(c);
}

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (uv_is_closing(h)) return;
    if (h->data) close_client(h->data);
    else uv_close(h, NULL);
}

static void on_signal(uv_signal_t *handle, int signum) {
    (void)signum;
    uv_walk(handle->loop, close_all, NULL); /* uv_run returns once every handle has closed */
}

int main(int argc, char **argv) {
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_tcp_init(loop, &server);
    int err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (err == 0) err = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection);
    if (err != 0) {
        fprintf(stderr, "echo_libuv: %s\n", uv_strerror(err));
        return 1;
    }
    uv_signal_init(loop, &sigint_handle);
    uv_signal_start(&sigint_handle, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm_handle);
    uv_signal_start(&sigterm_handle, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
