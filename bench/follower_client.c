/*
 * The events benchmark's GetFlows follower (bench/follower.py, table 4b): a gRPC client
 * small enough to keep up with 200,000 flows/s on one core, compiled at bench time
 * (gcc -O2). It speaks just what one follow needs:
 *
 *   HTTP/2 with prior knowledge on a unix socket: the preface, SETTINGS (a 2^31-1 stream
 *   window and 1 MiB frames), a connection WINDOW_UPDATE; one HEADERS (HPACK literals
 *   without indexing, no Huffman) and one DATA frame carrying the length-prefixed
 *   request; SETTINGS and PING acknowledged; WINDOW_UPDATEs as data is consumed.
 *
 * Every gRPC message of the response is split out of the DATA frames and its kind read
 * from its first byte (GetFlowsResponse field 1 flow: 0x0a; field 3 lost_events: 0x1a,
 * whose num_events_lost is added up by source); nothing else is parsed. The response's
 * HEADERS are not decoded (nothing here needs them). On SIGTERM, or when the stream
 * ends, it prints {"received": flows, "lost": overwritten in the flow ring before it
 * read them, "upstream_lost": lost before the ring, "bytes": message bytes, "end": why}.
 *
 * usage: follower_client SOCKET [REQUEST_HEX]   (default request: {follow: true})
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FRAME_DATA 0
#define FRAME_HEADERS 1
#define FRAME_RST_STREAM 3
#define FRAME_SETTINGS 4
#define FRAME_PING 6
#define FRAME_GOAWAY 7
#define FLAG_ACK 0x1
#define FLAG_END_STREAM 0x1
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define WINDOW_MAX 0x7fffffffu
#define MAX_FRAME (1u << 20)
#define UPDATE_EVERY (1u << 20)   /* bytes consumed between WINDOW_UPDATEs */
#define HEAD_KEPT 32              /* bytes of a message kept to read its kind and loss */

static volatile sig_atomic_t stopping;
static int fd;
static unsigned long long received, lost, upstream_lost, message_bytes;

/* The message being split out of DATA payloads. */
static unsigned char prefix[5];
static unsigned prefix_have;
static uint32_t body_left, body_len;
static unsigned char head[HEAD_KEPT];
static unsigned head_have;

static void on_term(int sig) { (void)sig; stopping = 1; }

static void send_all(const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("write");
            exit(1);
        }
        p += n;
        len -= (size_t)n;
    }
}

static void frame_header(unsigned char *h, uint32_t len, int type, int flags, uint32_t sid) {
    h[0] = (unsigned char)(len >> 16); h[1] = (unsigned char)(len >> 8); h[2] = (unsigned char)len;
    h[3] = (unsigned char)type; h[4] = (unsigned char)flags;
    h[5] = (unsigned char)(sid >> 24); h[6] = (unsigned char)(sid >> 16);
    h[7] = (unsigned char)(sid >> 8); h[8] = (unsigned char)sid;
}

static void window_update(uint32_t sid, uint32_t increment) {
    unsigned char f[13];
    frame_header(f, 4, 8, 0, sid);
    f[9] = (unsigned char)(increment >> 24); f[10] = (unsigned char)(increment >> 16);
    f[11] = (unsigned char)(increment >> 8); f[12] = (unsigned char)increment;
    send_all(f, sizeof f);
}

/* An HPACK literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2). */
static size_t literal(unsigned char *out, const char *name, const char *value) {
    size_t n = strlen(name), v = strlen(value), i = 0;
    out[i++] = 0x00;
    out[i++] = (unsigned char)n; memcpy(out + i, name, n); i += n;
    out[i++] = (unsigned char)v; memcpy(out + i, value, v); i += v;
    return i;
}

static uint64_t varint(const unsigned char *p, unsigned len, unsigned *used) {
    uint64_t v = 0;
    unsigned shift = 0, i = 0;
    while (i < len && shift < 64) {
        v |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80)) break;
        shift += 7;
    }
    *used = i;
    return v;
}

/* A whole message's first bytes are in head: count it. */
static void message_done(void) {
    message_bytes += body_len;
    if (head_have == 0) return;
    if (head[0] == 0x0a) {
        received++;
    } else if (head[0] == 0x1a) {      /* lost_events: LostEvent{source 1, num_events_lost 2} */
        unsigned used, i;
        uint64_t sub = varint(head + 1, head_have - 1, &used);
        i = 1 + used;
        uint64_t end = i + sub < head_have ? i + sub : head_have, source = 0, count = 0;
        while (i < end) {
            unsigned char tag = head[i++];
            uint64_t value = varint(head + i, (unsigned)(end - i), &used);
            i += used;
            if (tag == 0x08) source = value;
            else if (tag == 0x10) count = value;
            else break;                       /* only these two varints come first */
        }
        /* The ring overwrote them before this follower read them (HUBBLE_RING_BUFFER);
         * the others were lost before the ring (kernel, observer queue). */
        if (source == 3) lost += count;
        else upstream_lost += count;
    }
}

static void consume(const unsigned char *p, uint32_t len) {
    while (len) {
        if (prefix_have < 5) {
            uint32_t take = 5 - prefix_have < len ? 5 - prefix_have : len;
            memcpy(prefix + prefix_have, p, take);
            prefix_have += take; p += take; len -= take;
            if (prefix_have == 5) {
                body_len = body_left = ((uint32_t)prefix[1] << 24) | ((uint32_t)prefix[2] << 16)
                                       | ((uint32_t)prefix[3] << 8) | prefix[4];
                head_have = 0;
                if (body_left == 0) { message_done(); prefix_have = 0; }
            }
            continue;
        }
        uint32_t take = body_left < len ? body_left : len;
        if (head_have < HEAD_KEPT) {
            uint32_t keep = HEAD_KEPT - head_have < take ? HEAD_KEPT - head_have : take;
            memcpy(head + head_have, p, keep);
            head_have += keep;
        }
        p += take; len -= take; body_left -= take;
        if (body_left == 0) { message_done(); prefix_have = 0; }
    }
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void finish(const char *why) {
    printf("{\"received\": %llu, \"lost\": %llu, \"upstream_lost\": %llu, \"bytes\": %llu, "
           "\"end\": \"%s\"}\n", received, lost, upstream_lost, message_bytes, why);
    fflush(stdout);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc < 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: %s SOCKET [REQUEST_HEX]\n", argv[0]);
        return 2;
    }
    unsigned char request[4096] = {0x18, 0x01};   /* GetFlowsRequest{follow: true} */
    size_t request_len = 2;
    if (argc > 2) {
        size_t n = strlen(argv[2]) / 2;
        if (n > sizeof request) return 2;
        for (size_t i = 0; i < n; i++) {
            int hi = hexval(argv[2][2 * i]), lo = hexval(argv[2][2 * i + 1]);
            if (hi < 0 || lo < 0) return 2;
            request[i] = (unsigned char)(hi << 4 | lo);
        }
        request_len = n;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;          /* no SA_RESTART: read() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, argv[1]);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("connect");
        return 1;
    }
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    send_all(preface, sizeof preface - 1);
    unsigned char settings[9 + 12];
    frame_header(settings, 12, FRAME_SETTINGS, 0, 0);
    unsigned char *s = settings + 9;   /* INITIAL_WINDOW_SIZE (4), MAX_FRAME_SIZE (5) */
    s[0] = 0; s[1] = 4; s[2] = 0x7f; s[3] = 0xff; s[4] = 0xff; s[5] = 0xff;
    s[6] = 0; s[7] = 5; s[8] = 0; s[9] = (unsigned char)(MAX_FRAME >> 16); s[10] = 0; s[11] = 0;
    send_all(settings, sizeof settings);
    window_update(0, WINDOW_MAX - 65535);

    unsigned char block[512];
    size_t b = 0;
    b += literal(block + b, ":method", "POST");
    b += literal(block + b, ":scheme", "http");
    b += literal(block + b, ":path", "/observer.Observer/GetFlows");
    b += literal(block + b, ":authority", "localhost");
    b += literal(block + b, "content-type", "application/grpc");
    b += literal(block + b, "te", "trailers");
    unsigned char headers[9];
    frame_header(headers, (uint32_t)b, FRAME_HEADERS, FLAG_END_HEADERS, 1);
    send_all(headers, 9);
    send_all(block, b);
    unsigned char data[9 + 5];
    frame_header(data, (uint32_t)(5 + request_len), FRAME_DATA, FLAG_END_STREAM, 1);
    data[9] = 0;
    data[10] = (unsigned char)(request_len >> 24); data[11] = (unsigned char)(request_len >> 16);
    data[12] = (unsigned char)(request_len >> 8); data[13] = (unsigned char)request_len;
    send_all(data, sizeof data);
    send_all(request, request_len);
    printf("ready\n");
    fflush(stdout);

    size_t cap = 4 << 20, have = 0;
    unsigned char *buf = malloc(cap);
    uint32_t unacked = 0;
    while (!stopping) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0) {
            if (errno == EINTR) continue;
            finish("read error");
        }
        if (n == 0) finish("closed");
        have += (size_t)n;
        size_t at = 0;
        while (have - at >= 9) {
            unsigned char *h = buf + at;
            uint32_t len = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
            int type = h[3], flags = h[4];
            uint32_t sid = (((uint32_t)h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16)
                           | ((uint32_t)h[7] << 8) | h[8];
            if (have - at < 9 + (size_t)len) break;
            unsigned char *payload = h + 9;
            if (type == FRAME_DATA && sid == 1) {
                uint32_t body = len;
                unsigned char *p = payload;
                if ((flags & FLAG_PADDED) && len > 0) { body = len - 1 - p[0]; p++; }
                consume(p, body);
                unacked += len;
                if (unacked >= UPDATE_EVERY) {
                    window_update(0, unacked);
                    window_update(1, unacked);
                    unacked = 0;
                }
                if (flags & FLAG_END_STREAM) finish("end of stream");
            } else if (type == FRAME_HEADERS && sid == 1 && (flags & FLAG_END_STREAM)) {
                finish("trailers");
            } else if (type == FRAME_SETTINGS && !(flags & FLAG_ACK)) {
                unsigned char ack[9];
                frame_header(ack, 0, FRAME_SETTINGS, FLAG_ACK, 0);
                send_all(ack, 9);
            } else if (type == FRAME_PING && !(flags & FLAG_ACK) && len == 8) {
                unsigned char pong[17];
                frame_header(pong, 8, FRAME_PING, FLAG_ACK, 0);
                memcpy(pong + 9, payload, 8);
                send_all(pong, 17);
            } else if (type == FRAME_RST_STREAM && sid == 1) {
                finish("reset");
            } else if (type == FRAME_GOAWAY) {
                finish("goaway");
            }
            at += 9 + (size_t)len;
        }
        memmove(buf, buf + at, have - at);
        have -= at;
        if (have == cap) finish("frame larger than the buffer");
    }
    finish("stopped");
    return 0;
}
