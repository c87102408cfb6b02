/* echo_libuv_udp: a UDP echo server on libuv, a peer of weft in bench/compare.sh.
 *
 *   echo_libuv_udp PORT    binds 127.0.0.1:PORT (UDP); SIGTERM or SIGINT stops it (exit 0)
 *
 * uv_udp_recv_start reads each datagram into one static 64 KiB buffer (plain uv_udp_init: one
 * recvmsg per datagram, libuv's default; the loop is single-threaded and recv_cb consumes the
 * buffer before the next alloc_cb). recv_cb sends the datagram back to its sender with
 * uv_udp_try_send; if that cannot send now (UV_EAGAIN: the socket is full, or earlier sends are
 * still queued) the datagram is copied and queued with uv_udp_send. Other send errors (say,
 * ECONNREFUSED from a sender that has gone) drop that datagram. Nothing is printed when ready:
 * like the other peers, the server is ready once the port is bound. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DGRAM_MAX (64 * 1024)

struct send_req {
    uv_udp_send_t req;
    char data[]; /* the datagram's copy */
};

static char recv_buf[DGRAM_MAX];
static uv_udp_t server;
static uv_signal_t sigint_handle, sigterm_handle;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(recv_buf, sizeof recv_buf);
}

static void on_send(uv_udp_send_t *req, int status) {
    (void)status; /* a datagram that could not be sent is lost, as UDP allows */
    free(req);
}

static void on_recv(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
    if (nread < 0 || addr == NULL) return; /* an error, or nothing more to read (nread == 0) */
    if (flags & UV_UDP_PARTIAL) return;    /* truncated: cannot be echoed intact */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int r = uv_udp_try_send(handle, &out, 1, addr);
    if (r != UV_EAGAIN) return; /* sent (r >= 0), or failed for good */
    struct send_req *s = malloc(sizeof *s + (size_t)nread);
    if (!s) return;
    memcpy(s->data, buf->base, (size_t)nread);
    out = uv_buf_init(s->data, (unsigned int)nread);
    if (uv_udp_send(&s->req, handle, &out, 1, addr, on_send) != 0) free(s);
}

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL); /* queued sends complete with UV_ECANCELED */
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
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_udp_init(loop, &server);
    int err = uv_udp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (err == 0) err = uv_udp_recv_start(&server, on_alloc, on_recv);
    if (err != 0) {
        fprintf(stderr, "echo_libuv_udp: %s\n", uv_strerror(err));
        return 1;
    }
    uv_signal_init(loop, &sigint_handle);
    uv_signal_start(&sigint_handle, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm_handle);
    uv_signal_start(&sigterm_handle, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
