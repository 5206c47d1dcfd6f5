/*
 * count: a load client that makes exactly N requests and stops, for
 * scripts/instructions.sh (wrk runs for a time, not a count, and ab speaks
 * HTTP/1.0 and waits for the close of a response that has no
 * "Connection: keep-alive", which the floor never sends).
 *
 *     cc -O2 -o count scripts/floor/count.c
 *     count PORT PATH N CONNECTIONS HOST [close | pipeline K]
 *
 * CONNECTIONS connections to 127.0.0.1:PORT each send, one at a time, the
 * request wrk sends,
 *
 *     GET PATH HTTP/1.1\r\nHost: HOST:PORT\r\n\r\n
 *
 * (with "Connection: close\r\n" before the blank line under `close`, and
 * then a new connection for each request; under `pipeline K`, K requests in
 * one write, the next K once all K are answered), read the whole response
 * (head to "\r\n\r\n", then Content-Length bytes of body) and send the
 * next, until N responses have arrived in all: not one request more is
 * sent, so the server answers exactly N. Every response must be a 200 with a
 * Content-Length; anything else, a connection lost early or a 30 s stall is
 * an error (exit 1). One thread, blocking sockets, poll() across them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
#define HEAD_MAX 8192
#define MAX_DEPTH 64

struct conn {
    int fd;
    char head[HEAD_MAX];
    size_t head_len;     /* head bytes so far (until "\r\n\r\n") */
    long long body_left; /* -1 while the head is incomplete */
    int outstanding;     /* requests sent and not yet answered */
};

static struct sockaddr_in addr;
static char request[1024];
static size_t request_len;
static int close_mode;
static int depth = 1;
static long long sent, done, total;

static void die(const char *what)
{
    if (errno)
        perror(what);
    else
        fprintf(stderr, "count: %s\n", what);
    exit(1);
}

static void send_requests(struct conn *c)
{
    if (c->fd < 0) {
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0)
            die("socket");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect");
    }
    /* Up to `depth` requests in one write (one without `pipeline`). */
    static char batch[sizeof request * MAX_DEPTH];
    int k = 0;
    size_t len = 0;
    while (k < depth && sent < total) {
        memcpy(batch + len, request, request_len);
        len += request_len;
        k++;
        sent++;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, batch + off, len - off, MSG_NOSIGNAL);
        if (n < 0)
            die("send");
        off += (size_t)n;
    }
    c->outstanding = k;
    c->head_len = 0;
    c->body_left = -1;
}

/* The head is complete: check the status, find Content-Length. */
static long long body_length(const char *head)
{
    if (strncmp(head, "HTTP/1.1 200 ", 13) != 0 && strncmp(head, "HTTP/1.0 200 ", 13) != 0) {
        errno = 0;
        die("a response that is not 200");
    }
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "content-length:", 15) == 0)
            return atoll(p + 17);
    }
    errno = 0;
    die("a response without Content-Length");
    return 0;
}

/* Read what is there; returns how many responses it completed. */
static int on_readable(struct conn *c)
{
    static char buf[1 << 16];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0)
        die("recv");
    if (n == 0) {
        errno = 0;
        die("connection closed before the response ended");
    }
    int completed = 0;
    size_t used = 0;
    while (used < (size_t)n) {
        if (c->outstanding == 0) {
            errno = 0;
            die("bytes beyond the responses asked for");
        }
        if (c->body_left < 0) {
            if (c->head_len + 1 >= HEAD_MAX) {
                errno = 0;
                die("response head too long");
            }
            c->head[c->head_len++] = buf[used++];
            if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) {
                c->head[c->head_len] = 0;
                c->body_left = body_length(c->head);
            } else {
                continue;
            }
        } else {
            size_t take = (size_t)n - used;
            if ((long long)take > c->body_left)
                take = (size_t)c->body_left;
            c->body_left -= (long long)take;
            used += take;
        }
        if (c->body_left == 0) {
            completed++;
            c->outstanding--;
            c->head_len = 0;
            c->body_left = -1;
        }
    }
    return completed;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: count PORT PATH N CONNECTIONS HOST [close | pipeline K]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    total = atoll(argv[3]);
    int nconns = atoi(argv[4]);
    close_mode = argc > 6 && strcmp(argv[6], "close") == 0;
    if (argc > 7 && strcmp(argv[6], "pipeline") == 0)
        depth = atoi(argv[7]);
    if (nconns < 1 || nconns > MAX_CONNS || total < 1 || depth < 1 || depth > MAX_DEPTH) {
        fprintf(stderr, "count: N >= 1, 1 <= CONNECTIONS <= %d, 1 <= K <= %d\n", MAX_CONNS,
                MAX_DEPTH);
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", argv[2],
                                   argv[5], port, close_mode ? "Connection: close\r\n" : "");

    static struct conn conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS];
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (sent < total)
            send_requests(&conns[i]);
    }
    while (done < total) {
        int live = 0;
        for (int i = 0; i < nconns; i++) {
            if (conns[i].fd >= 0) {
                pfd[live].fd = conns[i].fd;
                pfd[live].events = POLLIN;
                live++;
            }
        }
        int r = poll(pfd, (nfds_t)live, 30000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            errno = 0;
            die(r == 0 ? "stalled for 30 s" : "poll");
        }
        for (int k = 0; k < live; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct conn *c = NULL;
            for (int i = 0; i < nconns; i++)
                if (conns[i].fd == pfd[k].fd)
                    c = &conns[i];
            done += on_readable(c);
            if (c->outstanding > 0)
                continue;
            if (close_mode) {
                close(c->fd);
                c->fd = -1;
            }
            if (sent < total)
                send_requests(c);
            else if (c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    printf("%lld responses\n", done);
    return 0;
}
