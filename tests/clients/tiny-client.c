/* A minimal protocol-v1 client in C: hello, then `get NAME`, then prints the answer's
 * JSON. The storm test copies it and appends bytes, so each copy is a different
 * executable (a new hash) that costs 16 KiB instead of a Rust binary's megabytes.
 * Usage: tiny-client NAME   (socket: $KEYCHAIN_AUTH_HOME/agent.sock) */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int full(int fd, void *buf, size_t n, int writing) {
    char *p = buf;
    while (n > 0) {
        ssize_t k = writing ? write(fd, p, n) : read(fd, p, n);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(int fd, const char *json) {
    uint32_t n = htonl((uint32_t)strlen(json));
    return full(fd, &n, 4, 1) || full(fd, (void *)json, strlen(json), 1);
}

static int read_frame(int fd, char *buf, size_t cap) {
    uint32_t n;
    if (full(fd, &n, 4, 0)) return -1;
    n = ntohl(n);
    if (n >= cap) return -1;
    if (full(fd, buf, n, 0)) return -1;
    buf[n] = 0;
    return 0;
}

int main(int argc, char **argv) {
    const char *home = getenv("KEYCHAIN_AUTH_HOME");
    if (argc != 2 || !home) return 2;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/agent.sock", home);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "connect: %s\n", strerror(errno));
        return 1;
    }
    /* A daemon that never answers fails this client instead of hanging the test. */
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    static char buf[70000];
    /* A refusal sent before the daemon read anything is still there to read after EPIPE. */
    if (send_frame(fd, "{\"type\":\"hello\",\"protocol\":1,\"client\":\"tiny\"}")) {
        int e = errno;
        if (read_frame(fd, buf, sizeof buf) == 0) {
            puts(buf);
            return 0;
        }
        fprintf(stderr, "send hello: %s\n", strerror(e));
        return 1;
    }
    errno = 0;
    if (read_frame(fd, buf, sizeof buf)) {
        fprintf(stderr, "read hello answer: %s\n", errno ? strerror(errno) : "closed");
        return 1;
    }
    if (strstr(buf, "\"type\":\"error\"")) {
        puts(buf);
        return 0;
    }
    char req[2048];
    snprintf(req, sizeof req, "{\"type\":\"get\",\"name\":\"%s\"}", argv[1]);
    if (send_frame(fd, req)) {
        fprintf(stderr, "send get: %s\n", strerror(errno));
        return 1;
    }
    errno = 0;
    if (read_frame(fd, buf, sizeof buf)) {
        fprintf(stderr, "read get answer: %s\n", errno ? strerror(errno) : "closed");
        return 1;
    }
    puts(buf);
    return 0;
}
