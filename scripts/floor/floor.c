/*
 * floor: the cheapest HTTP/1.1 keep-alive responder the kernel allows, as a
 * floor for scripts/bench.sh. It parses nothing: every "\r\n\r\n" that
 * arrives on a connection is answered with the same canned response
 *
 *     HTTP/1.1 200 OK\r\nContent-Length: N\r\nContent-Type: text/plain\r\n\r\n
 *
 * followed by the N bytes of BODY_FILE (the benchmark passes its 1 KiB file,
 * so the body is byte for byte what the real servers send). Keep-alive for
 * ever, no timeouts, no logging.
 *
 *     cc -O2 -o floor scripts/floor/floor.c
 *     floor PORT BODY_FILE            (listens on 127.0.0.1:PORT)
 *
 * One thread, one epoll instance. Connections are non-blocking and
 * edge-triggered (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, registered once,
 * never modified). On a readable event everything available is read (until
 * a short read or EAGAIN), the "\r\n\r\n" sequences are counted with a
 * 0-3 byte carry (a small matcher state kept across reads, so a sequence
 * split between two reads still counts once), and all the responses owed are
 * written with one send(). Since every response is the same, what a
 * connection still owes is only a byte count: the bytes are sent straight
 * from a static buffer holding RING copies of the response, starting at the
 * right offset, so nothing is copied per request. A partial write leaves
 * the count pending and is finished on EPOLLOUT. A connection owing more than
 * MAX_OWED bytes stops reading until it has caught up (a client that never
 * reads cannot grow anything). The listening socket is level-triggered and
 * drained with accept4() until EAGAIN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RING 64                   /* copies of the response in the send buffer */
#define READ_SIZE 65536
#define MAX_OWED (4u << 20)       /* stop reading while this much is owed */
#define MAX_EVENTS 256

struct conn {
    uint64_t owed;     /* response bytes not yet sent */
    uint8_t state;     /* matcher: how much of "\r\n\r\n" the input ends with */
    uint8_t readable;  /* EPOLLIN seen and not yet drained */
    uint8_t open;
};

static char *ring;          /* RING copies of the response */
static size_t resp_len;     /* one response */
static struct conn *conns;
static int max_fd;
static int ep;
static char inbuf[READ_SIZE];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void conn_close(int fd)
{
    conns[fd].open = 0;
    close(fd); /* also removes it from the epoll set */
}

/* Count "\r\n\r\n" in buf, carrying the matcher state across calls. */
static uint64_t count_heads(struct conn *c, const char *buf, size_t n)
{
    uint64_t heads = 0;
    unsigned s = c->state;
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '\r')
            s = (s == 2) ? 3 : 1;
        else if (ch == '\n') {
            if (s == 3) {
                heads++;
                s = 0;
            } else
                s = (s == 1) ? 2 : 0;
        } else
            s = 0;
    }
    c->state = (uint8_t)s;
    return heads;
}

/* Send what c owes: one send() unless it filled the whole slice offered and
 * more is owed. Returns -1 if the connection was closed. */
static int flush(int fd, struct conn *c)
{
    while (c->owed) {
        size_t start = (resp_len - c->owed % resp_len) % resp_len;
        size_t len = RING * resp_len - start;
        if (len > c->owed)
            len = c->owed;
        ssize_t n = send(fd, ring + start, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0; /* EPOLLOUT will tell us */
            if (errno == EINTR)
                continue;
            conn_close(fd);
            return -1;
        }
        c->owed -= (uint64_t)n;
        if ((size_t)n < len)
            return 0; /* socket buffer full: EPOLLOUT will tell us */
    }
    return 0;
}

static void on_conn(int fd, uint32_t events)
{
    struct conn *c = &conns[fd];
    if (events & EPOLLIN)
        c->readable = 1;
    if (c->owed && flush(fd, c) < 0)
        return;
    if (c->readable && c->owed < MAX_OWED) {
        uint64_t heads = 0;
        for (;;) {
            ssize_t n = read(fd, inbuf, sizeof inbuf);
            if (n > 0) {
                heads += count_heads(c, inbuf, (size_t)n);
                if ((size_t)n < sizeof inbuf) {
                    c->readable = 0; /* drained: the next edge will come */
                    break;
                }
                if (c->owed + heads * resp_len >= MAX_OWED)
                    break; /* stays readable; resumed after a flush */
                continue;
            }
            if (n == 0) { /* peer closed */
                conn_close(fd);
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->readable = 0;
                break;
            }
            if (errno == EINTR)
                continue;
            conn_close(fd);
            return;
        }
        if (heads) {
            c->owed += heads * resp_len;
            if (flush(fd, c) < 0)
                return;
        }
    }
    if ((events & (EPOLLERR | EPOLLHUP)) && !c->owed && !c->readable)
        conn_close(fd);
}

static void on_listen(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE and the like: try again on the next event */
        }
        if (fd >= max_fd) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[fd] = (struct conn){.open = 1};
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(fd);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT BODY_FILE\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);

    /* the canned response, RING times over */
    int bfd = open(argv[2], O_RDONLY);
    struct stat st;
    if (bfd < 0 || fstat(bfd, &st) < 0)
        die(argv[2]);
    char head[128];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nContent-Type: text/plain\r\n\r\n",
                            (long long)st.st_size);
    resp_len = (size_t)head_len + (size_t)st.st_size;
    ring = malloc(RING * resp_len);
    if (!ring)
        die("malloc");
    memcpy(ring, head, (size_t)head_len);
    for (size_t got = 0; got < (size_t)st.st_size;) {
        ssize_t n = read(bfd, ring + head_len + got, (size_t)st.st_size - got);
        if (n <= 0)
            die("read body");
        got += (size_t)n;
    }
    close(bfd);
    for (int i = 1; i < RING; i++)
        memcpy(ring + i * resp_len, ring, resp_len);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    max_fd = rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);
    if (!conns)
        die("calloc");

    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 511) < 0) /* nginx's default backlog, as in bench.sh */
        die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_listen(lfd);
            else if (conns[fd].open)
                on_conn(fd, evs[i].events);
        }
    }
}
