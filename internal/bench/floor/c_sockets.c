/*
 * c_sockets.c -- the floor of a round trip over a connected socket: TCP
 * loopback and a unix stream socket, made with listen/connect/accept as
 * multiproc's Listener and Dial make theirs. c_limits.c (shared by the
 * project, not this repository's to change) measures socketpair(2) only; a
 * TCP round trip costs the loopback's TCP stack on top, which no program
 * on the machine avoids.
 *
 * Build:  cc -O2 -Wall -o c_sockets c_sockets.c
 * Run:    ./c_sockets [--quick]  > out.json
 *
 * The output is c_limits's JSON document (tool "c_sockets"): per metric the
 * figure of each repetition, and their median, min and max. Progress goes
 * to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int REPS = 7;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        if (r == 0) {
            fprintf(stderr, "unexpected EOF\n");
            exit(1);
        }
        p += r;
        n -= (size_t)r;
    }
}

static void write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += r;
        n -= (size_t)r;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int n_results = 0;

static void emit(const char *name, const char *unit, const char *better,
                 const double *v, int n, const char *notes) {
    double s[64];
    memcpy(s, v, sizeof(double) * n);
    qsort(s, n, sizeof(double), cmp_double);
    double med = (n % 2) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    printf("%s\n    {\"name\": \"%s\", \"unit\": \"%s\", \"better\": \"%s\", "
           "\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"reps\": [",
           n_results ? "," : "", name, unit, better, med, s[0], s[n - 1]);
    for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", v[i]);
    printf("], \"notes\": \"%s\"}", notes ? notes : "");
    fflush(stdout);
    fprintf(stderr, "  %-44s median %12.4f  min %12.4f  max %12.4f  %s\n", name, med, s[0],
            s[n - 1], unit);
    n_results++;
}

static void nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}

/* One connection, n round trips of 64 bytes after 1000 to warm up; the
 * parent accepts, a forked child connects and echoes. Returns seconds. */
static double pingpong_conn(int tcp, int n) {
    struct sockaddr_storage ss;
    socklen_t sl;
    int ls;
    if (tcp) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
        if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    } else {
        /* an abstract name: nothing to remove afterwards */
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "c_sockets-%d", (int)getpid());
        if ((ls = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) die("socket");
        if (bind(ls, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + len) < 0) die("bind");
    }
    if (listen(ls, 1) < 0) die("listen");
    /* accept gives up after 10 s: a child that cannot connect exits, and
     * must not leave the parent waiting for good */
    struct timeval tmo = {.tv_sec = 10};
    if (setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo) < 0) die("SO_RCVTIMEO");
    sl = sizeof ss;
    if (getsockname(ls, (struct sockaddr *)&ss, &sl) < 0) die("getsockname");
    char buf[64];
    memset(buf, 'x', sizeof buf);
    fflush(stdout); /* or the child's exit on an error would print it again */
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(ls);
        int c = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&ss, sl) < 0) die("connect");
        if (tcp) nodelay(c);
        for (int i = 0; i < n + 1000; i++) {
            read_full(c, buf, sizeof buf);
            write_full(c, buf, sizeof buf);
        }
        _exit(0);
    }
    int s = accept(ls, NULL, NULL);
    if (s < 0) die("accept");
    close(ls);
    if (tcp) nodelay(s);
    for (int i = 0; i < 1000; i++) {
        write_full(s, buf, sizeof buf);
        read_full(s, buf, sizeof buf);
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        write_full(s, buf, sizeof buf);
        read_full(s, buf, sizeof buf);
    }
    double t = now() - t0;
    close(s);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child failed (status 0x%x)\n", st);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv) {
    int scale = 1;
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        REPS = 3;
        scale = 10;
    }
    printf("{\n  \"tool\": \"c_sockets\", \"reps\": %d, \"nproc\": %ld, \"results\": [", REPS,
           sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(stderr, "[6] connected socket round trips\n");
    double v[64];
    char notes[256];
    int n = 50000 / scale;
    for (int r = 0; r < REPS; r++) v[r] = pingpong_conn(1, n) / n * 1e6;
    snprintf(notes, sizeof notes, "TCP over 127.0.0.1, TCP_NODELAY, listen/connect/accept, 64-byte message, blocking read/write, %d round trips/rep", n);
    emit("tcp loopback ping-pong RTT 64B", "us", "lower", v, REPS, notes);
    for (int r = 0; r < REPS; r++) v[r] = pingpong_conn(0, n) / n * 1e6;
    snprintf(notes, sizeof notes, "AF_UNIX SOCK_STREAM, listen/connect/accept (abstract name), 64-byte message, blocking read/write, %d round trips/rep", n);
    emit("unix socket ping-pong RTT 64B", "us", "lower", v, REPS, notes);
    printf("\n  ]\n}\n");
    return 0;
}
