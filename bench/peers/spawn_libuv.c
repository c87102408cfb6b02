/* spawn_libuv: the libuv peer of bench/spawn_weft.cpp (issue #11 item 4, bench/spawn.sh), with the
 * same options and the same output line (peer=libuv).
 *
 *   spawn_libuv --children N --in-flight K [--ballast-mib M] [--stdio out|pipes] [--timeout S]
 *       uv_spawn of /bin/true N times with K in flight; a child is done once its exit_cb ran and
 *       every pipe of it reached EOF and was closed (uv_close callbacks included), and only then
 *       is the next one started. Empty environment. --stdio out (the default): fd 1 is a
 *       UV_CREATE_PIPE read to EOF, fds 0 and 2 UV_INHERIT_FD of one /dev/null descriptor;
 *       --stdio pipes: UV_CREATE_PIPE on all three (stdin closed at once).
 *   spawn_libuv --read-bytes B --writer PATH [--writer-cpu C] [--channel socketpair|pipe] [--ballast-mib M]
 *               [--timeout S]
 *       One child, `PATH B [C]`, whose stdout is read through uv_read_start into one 64 KiB buffer.
 *       --channel socketpair (the default) is what UV_CREATE_PIPE makes; --channel pipe gives the
 *       child a kernel pipe instead (uv_pipe, the write end inherited as fd 1, the read end opened
 *       with uv_pipe_open): the kind of channel spawnProcess makes, so the two read paths can be
 *       compared on the same kernel object.
 *
 * Measured as in spawn_weft: latency is the time inside uv_spawn; CPU is getrusage(RUSAGE_SELF)
 * (and RUSAGE_CHILDREN) over the window from the first uv_spawn to the last child done.
 * libuv 1.44 (Debian 12) forks the child, and makes UV_CREATE_PIPE with a socketpair. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define READ_BUF (64 * 1024)

struct child {
    uv_process_t proc;
    uv_pipe_t pipes[3];
    int open_handles; /* the process handle and pipes not yet closed */
    int failed;
};

static uv_loop_t* loop;
static uv_timer_t deadline;
static uv_process_options_t options;
static uv_stdio_container_t stdio_base[3];
static char* child_args[4];
static char* empty_env[1] = {NULL};
static int three_pipes;
static uv_file kernel_pipe[2] = {-1, -1}; /* --channel pipe: the child's stdout */
static long total, started, ended, failures;
static unsigned long long bytes_read;
static double* latencies;
static char read_buf[READ_BUF];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(const char* why) {
    fprintf(stderr,
            "spawn_libuv: %s\n"
            "usage: spawn_libuv --children N --in-flight K [--ballast-mib M] [--stdio out|pipes] [--timeout S]\n"
            "       spawn_libuv --read-bytes B --writer PATH [--writer-cpu C] [--channel socketpair|pipe]\n"
            "                   [--ballast-mib M] [--timeout S]\n",
            why);
    exit(2);
}

static void start_one(void);

static void child_done(struct child* c) {
    ++ended;
    if (c->failed) ++failures;
    free(c);
    if (started < total) start_one();
}

static void on_handle_closed(uv_handle_t* h) {
    struct child* c = h->data;
    if (--c->open_handles == 0) child_done(c);
}

static void on_exit_cb(uv_process_t* p, int64_t status, int term_signal) {
    struct child* c = p->data;
    if (status != 0 || term_signal != 0) c->failed = 1;
    uv_close((uv_handle_t*)p, on_handle_closed);
}

static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, READ_BUF);
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    (void)buf;
    if (n > 0) {
        bytes_read += (unsigned long long)n;
        return;
    }
    if (n == 0) return; /* EAGAIN */
    if (n != UV_EOF) {
        fprintf(stderr, "spawn_libuv: read: %s\n", uv_strerror((int)n));
        ((struct child*)s->data)->failed = 1;
    }
    uv_close((uv_handle_t*)s, on_handle_closed);
}

static void start_one(void) {
    ++started;
    struct child* c = calloc(1, sizeof *c);
    if (!c) abort();
    uv_stdio_container_t stdio[3];
    memcpy(stdio, stdio_base, sizeof stdio);
    for (int fd = 0; fd < 3; ++fd) {
        if (!(stdio[fd].flags & UV_CREATE_PIPE)) continue;
        uv_pipe_init(loop, &c->pipes[fd], 0);
        c->pipes[fd].data = c;
        stdio[fd].data.stream = (uv_stream_t*)&c->pipes[fd];
    }
    options.stdio = stdio;
    c->proc.data = c;
    double t0 = now_s();
    int rc = uv_spawn(loop, &c->proc, &options);
    latencies[started - 1] = (now_s() - t0) * 1e6;
    c->open_handles = 1;
    for (int fd = 0; fd < 3; ++fd) {
        if (!(stdio[fd].flags & UV_CREATE_PIPE)) continue;
        ++c->open_handles;
        if (rc == 0 && fd != 0) {
            uv_read_start((uv_stream_t*)&c->pipes[fd], on_alloc, on_read);
        } else {
            uv_close((uv_handle_t*)&c->pipes[fd], on_handle_closed); /* stdin: nothing to write */
        }
    }
    if (kernel_pipe[0] >= 0) { /* --channel pipe: read the parent's end; the child has its own copy */
        close(kernel_pipe[1]);
        ++c->open_handles;
        uv_pipe_init(loop, &c->pipes[1], 0);
        c->pipes[1].data = c;
        uv_pipe_open(&c->pipes[1], kernel_pipe[0]);
        if (rc == 0) uv_read_start((uv_stream_t*)&c->pipes[1], on_alloc, on_read);
        else uv_close((uv_handle_t*)&c->pipes[1], on_handle_closed);
    }
    if (rc != 0) {
        fprintf(stderr, "spawn_libuv: uv_spawn: %s\n", uv_strerror(rc));
        c->failed = 1;
        uv_close((uv_handle_t*)&c->proc, on_handle_closed);
    }
}

static void on_deadline(uv_timer_t* t) {
    (void)t;
    fprintf(stderr, "spawn_libuv: timed out (%ld of %ld ended)\n", ended, total);
    exit(1);
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    long children = 0, in_flight = 1, ballast_mib = 0;
    long long read_bytes = -1;
    double timeout = 300;
    const char *writer = NULL, *writer_cpu = NULL, *stdio_mode = "out", *channel = "socketpair";
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (i + 1 >= argc) usage("an option needs a value");
        const char* v = argv[++i];
        if (!strcmp(a, "--children")) children = atol(v);
        else if (!strcmp(a, "--in-flight")) in_flight = atol(v);
        else if (!strcmp(a, "--ballast-mib")) ballast_mib = atol(v);
        else if (!strcmp(a, "--read-bytes")) read_bytes = atoll(v);
        else if (!strcmp(a, "--writer")) writer = v;
        else if (!strcmp(a, "--writer-cpu")) writer_cpu = v;
        else if (!strcmp(a, "--stdio")) stdio_mode = v;
        else if (!strcmp(a, "--channel")) channel = v;
        else if (!strcmp(a, "--timeout")) timeout = atof(v);
        else usage("unknown option");
    }
    int read_mode = read_bytes >= 0;
    if (read_mode ? writer == NULL : (children <= 0 || in_flight <= 0)) usage("missing or bad arguments");
    if (strcmp(stdio_mode, "out") && strcmp(stdio_mode, "pipes")) usage("--stdio is out or pipes");
    three_pipes = !read_mode && !strcmp(stdio_mode, "pipes");
    if (strcmp(channel, "socketpair") && strcmp(channel, "pipe")) usage("--channel is socketpair or pipe");
    if (!strcmp(channel, "pipe") && !read_mode) usage("--channel pipe is for --read-bytes");

    void* ballast = NULL;
    if (ballast_mib > 0) {
        size_t size = (size_t)ballast_mib << 20;
        ballast = malloc(size);
        if (!ballast) {
            perror("spawn_libuv: ballast");
            return 1;
        }
        memset(ballast, 1, size);
        __asm__ volatile("" : : "r"(ballast) : "memory"); /* the stores are observable */
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        perror("spawn_libuv: /dev/null");
        return 1;
    }

    loop = uv_default_loop();
    char count[32];
    if (read_mode) {
        snprintf(count, sizeof count, "%lld", read_bytes);
        child_args[0] = (char*)writer;
        child_args[1] = count;
        child_args[2] = (char*)writer_cpu; /* NULL: no pinning */
        total = 1;
        in_flight = 1;
    } else {
        child_args[0] = "true";
        total = children;
        if (in_flight > children) in_flight = children;
    }
    latencies = calloc((size_t)total, sizeof *latencies);
    options.exit_cb = on_exit_cb;
    options.file = read_mode ? writer : "/bin/true";
    options.args = child_args;
    options.env = empty_env;
    options.stdio_count = 3;
    for (int fd = 0; fd < 3; ++fd) {
        if (fd == 1 || three_pipes) {
            stdio_base[fd].flags = UV_CREATE_PIPE | (fd == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
        } else {
            stdio_base[fd].flags = UV_INHERIT_FD;
            stdio_base[fd].data.fd = devnull;
        }
    }
    if (read_mode && !strcmp(channel, "pipe")) {
        int rc = uv_pipe(kernel_pipe, 0, 0); /* both ends close-on-exec; uv_pipe_open makes ours non-blocking */
        if (rc != 0) {
            fprintf(stderr, "spawn_libuv: uv_pipe: %s\n", uv_strerror(rc));
            return 1;
        }
        stdio_base[1].flags = UV_INHERIT_FD;
        stdio_base[1].data.fd = kernel_pipe[1];
    }
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, (uint64_t)(timeout * 1000), 0);
    uv_unref((uv_handle_t*)&deadline);

    double cpu0 = cpu_s(RUSAGE_SELF), child0 = cpu_s(RUSAGE_CHILDREN), t0 = now_s();
    for (long i = 0; i < in_flight; ++i) start_one();
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    double cpu = cpu_s(RUSAGE_SELF) - cpu0, child_cpu = cpu_s(RUSAGE_CHILDREN) - child0;

    int ok = failures == 0 && ended == total;
    if (read_mode) {
        ok = ok && bytes_read == (unsigned long long)read_bytes;
        double mb = (double)bytes_read / 1e6;
        printf("peer=%s mode=read bytes=%llu ballast_mib=%ld wall_s=%.4f mb_per_s=%.1f cpu_per_mb_us=%.1f ok=%d\n",
               kernel_pipe[0] >= 0 ? "libuvpipe" : "libuv", bytes_read, ballast_mib, wall, mb / wall, cpu * 1e6 / mb, ok);
    } else {
        qsort(latencies, (size_t)total, sizeof *latencies, cmp_double);
        double mean = 0;
        for (long i = 0; i < total; ++i) mean += latencies[i];
        mean /= (double)total;
        long i99 = total * 99 / 100;
        if (i99 >= total) i99 = total - 1;
        double n = (double)ended;
        printf(
            "peer=libuv mode=spawn stdio=%s children=%ld in_flight=%ld ballast_mib=%ld wall_s=%.4f "
            "spawns_per_s=%.1f lat_mean_us=%.1f lat_p99_us=%.1f cpu_per_spawn_us=%.1f "
            "child_cpu_per_spawn_us=%.1f failures=%ld ok=%d\n",
            stdio_mode, total, in_flight, ballast_mib, wall, n / wall, mean, latencies[i99], cpu * 1e6 / n,
            child_cpu * 1e6 / n, failures, ok);
    }
    uv_timer_stop(&deadline);
    uv_close((uv_handle_t*)&deadline, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(latencies);
    free(ballast);
    close(devnull);
    return ok ? 0 : 1;
}
