/* echo_libuv: a TCP echo server on libuv, a peer of weft in bench/compare.sh.
 *
 *   echo_libuv PORT        listens on 127.0.0.1:PORT; SIGTERM or SIGINT stops it (exit 0)
 *   echo_libuv unix:PATH   listens on the UNIX stream socket PATH instead (uv_pipe_t; the path
 *                          must not exist yet, and is removed when the server closes)
 *
 * uv_read_start reads into one static 64 KiB buffer (the loop is single-threaded and read_cb
 * consumes it before the next alloc_cb). read_cb echoes with uv_try_write; whatever the socket
 * does not take is copied into a write request made for it and queued with uv_write, and reading
 * stops until that write completes. A connection holds nothing but its handle, allocated at the
 * size of its kind (uv_tcp_t or uv_pipe_t): what a lean libuv server keeps per idle connection,
 * so that bench/compare.sh's idle scenario compares weft with that, not with spare fields. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <uv.h>

#define READ_BUF (64 * 1024)

/* A client is its handle alone, allocated at the size of its kind (see client_size). */
struct client {
    union {
        uv_handle_t handle;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
};

/* What the socket did not take of one read, on its way out through uv_write. */
struct pending_write {
    uv_write_t req; /* req.data: the client */
    char bytes[];
};

static char read_buf[READ_BUF];
static union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} server;
static int use_pipe; /* unix:PATH */
static uv_signal_t sigint_handle, sigterm_handle;

static size_t client_size(void) { return use_pipe ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t); }

/* uv_close runs every pending write's callback (UV_ECANCELED) before this one. */
static void on_client_close(uv_handle_t *h) { free(h); }

static void close_client(struct client *c) {
    if (!uv_is_closing((uv_handle_t *)&c->h)) uv_close((uv_handle_t *)&c->h, on_client_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
    struct client *c = req->data;
    free(req); /* the pending_write it begins */
    if (status < 0) {
        close_client(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) != 0) close_client(c);
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
    struct pending_write *w = malloc(sizeof *w + rest);
    if (!w) {
        close_client(c);
        return;
    }
    memcpy(w->bytes, buf->base + written, rest);
    out = uv_buf_init(w->bytes, (unsigned int)rest);
    uv_read_stop(stream);
    w->req.data = c;
    if (uv_write(&w->req, stream, &out, 1, on_write) != 0) {
        free(w);
        close_client(c);
    }
}

static void on_connection(uv_stream_t *listener, int status) {
    if (status < 0) return;
    struct client *c = calloc(1, client_size());
    if (!c) return;
    if (use_pipe) uv_pipe_init(listener->loop, &c->h.pipe, 0);
    else uv_tcp_init(listener->loop, &c->h.tcp);
    c->h.handle.data = c; /* marks the handle as a client for close_all */
    if (uv_accept(listener, (uv_stream_t *)&c->h) != 0) {
        close_client(c);
        return;
    }
    if (!use_pipe) uv_tcp_nodelay(&c->h.tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) != 0) close_client(c);
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
    use_pipe = argc == 2 && strncmp(argv[1], "unix:", 5) == 0 && argv[1][5] != '\0';
    if (argc != 2 || (!use_pipe && (atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535))) {
        fprintf(stderr, "usage: %s PORT | unix:PATH\n", argv[0]);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* libuv writes with write()/writev(), not send(MSG_NOSIGNAL): a UNIX socket whose peer has
     * gone raises SIGPIPE on the first write (TCP only on a write after the RST) */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    int err;
    if (use_pipe) {
        uv_pipe_init(loop, &server.pipe, 0);
        err = uv_pipe_bind(&server.pipe, argv[1] + 5);
    } else {
        struct sockaddr_in addr;
        uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
        uv_tcp_init(loop, &server.tcp);
        err = uv_tcp_bind(&server.tcp, (const struct sockaddr *)&addr, 0);
    }
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
