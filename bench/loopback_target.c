/* A loopback HTTP/1.1 target for benchmarks: answers every request 200 "ok" exactly
 * DELAY seconds after the request's end, then closes.
 *
 * Why C: the Python target (loopback_http.py) spends about as much CPU per connection as
 * the prober being measured, and on a shared two-core machine that skews a side-by-side
 * benchmark. This one is a single epoll loop of non-blocking sockets: at 10,000 concurrent
 * connections it stays a few percent of one core.
 *
 * Usage: loopback_target DELAY_SECONDS LIFETIME_SECONDS
 * Binds 127.0.0.1 port 0, prints the port on stdout, and exits after LIFETIME seconds
 * (alarm) so a bench that died never leaves it running. Requests are read until
 * "\r\n\r\n" (at most 8 KiB; overflow or EOF before it closes the connection). The delay
 * is the same for every request, so the order requests end in is the order answers are
 * due: a FIFO queue is a correct timer list and epoll_wait sleeps until its head is due.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_CAP 8192
#define EVENTS 1024

static const char ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

struct conn {
    int fd;
    int used;           /* bytes of request read so far */
    int queued;         /* waiting in the answer queue: no more reads */
    double due;         /* when the answer is due (monotonic seconds) */
    struct conn *next;  /* answer queue link */
    char buf[REQUEST_CAP];
};

static struct conn *head, *tail; /* the answer queue, oldest (earliest due) first */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void drop(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Read what has arrived; 1 when the request is complete, -1 to close, 0 for more. */
static int take(struct conn *c) {
    for (;;) {
        if (c->used >= REQUEST_CAP) return -1;
        ssize_t got = read(c->fd, c->buf + c->used, REQUEST_CAP - c->used);
        if (got == 0) return -1;
        if (got < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : (errno == EINTR ? 0 : -1);
        int from = c->used > 3 ? c->used - 3 : 0;
        c->used += (int)got;
        if (memmem(c->buf + from, c->used - from, "\r\n\r\n", 4)) return 1;
    }
}

int main(int argc, char **argv) {
    double delay = argc > 1 ? atof(argv[1]) : 0.0;
    unsigned lifetime = argc > 2 ? (unsigned)atof(argv[2]) : 900;
    signal(SIGPIPE, SIG_IGN);
    alarm(lifetime ? lifetime : 1); /* default SIGALRM action: terminate */

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    if (listen(lfd, 65535) < 0) { perror("listen"); return 1; } /* the kernel caps it at somaxconn */
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the listener */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[EVENTS];

    for (;;) {
        int timeout = -1;
        if (head) {
            double wait = head->due - now();
            timeout = wait <= 0 ? 0 : (int)(wait * 1000.0 + 0.999); /* round up: never early */
        }
        int n = epoll_wait(ep, events, EVENTS, timeout);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                for (int accepted = 0; accepted < 4096; accepted++) { /* bounded; level-triggered */
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *fresh = malloc(sizeof *fresh);
                    if (!fresh) { close(fd); continue; }
                    fresh->fd = fd;
                    fresh->used = 0;
                    fresh->queued = 0;
                    fresh->next = NULL;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = fresh};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) { close(fd); free(fresh); }
                }
                continue;
            }
            if (c->queued) continue;
            int state = take(c);
            if (state < 0) {
                drop(ep, c);
            } else if (state > 0) {
                /* stop watching it: the answer goes out on time, whatever the peer does */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->queued = 1;
                c->due = now() + delay;
                if (tail) tail->next = c; else head = c;
                tail = c;
            }
        }
        double t = now();
        while (head && head->due <= t) {
            struct conn *c = head;
            head = c->next;
            if (!head) tail = NULL;
            /* a 64-byte answer fits any fresh socket's send buffer: one write */
            ssize_t unused = write(c->fd, ANSWER, sizeof ANSWER - 1);
            (void)unused;
            close(c->fd);
            free(c);
        }
    }
}
