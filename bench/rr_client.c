/* SPDX-License-Identifier: Apache-2.0 */
/* Interleaved request/response (RR) and connect/request/response (CRR) client for
 * bench/interleaved.py: the same alternation as its Python loops, without an
 * interpreter between the packets (a Python round trip spent ~40 us of its ~80 us in
 * the client; a p99 ratio then measured the interpreter as much as the datapath).
 *
 *   rr_client rr|crr COUNT WARMUP PORT  NETNS_PATH ADDR  [NETNS_PATH ADDR ...]
 *
 * One target per mode, in the order given: a socket made inside that mode's client
 * pod's network namespace (setns around socket(); a socket keeps the namespace it was
 * made in) to ADDR:PORT (IPv4 or IPv6 literal). rr: one connection per mode, COUNT
 * 64-byte round trips per mode after WARMUP cycles, the modes in turn, the order
 * rotated every cycle. crr: per sample a new connection (socket made before the clock
 * starts), connect, 64 bytes each way, close with RST (SO_LINGER 0: no TIME_WAIT).
 * Output: one line per mode, its samples in microseconds (3 decimals), space-separated.
 * Exit 1 with a message on stderr on any error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MODES 16
#define REQUEST 64

struct target {
	int netns;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int fd;         /* rr: the mode's connection */
	double *samples;
};

static int home_ns;

static void die(const char *what)
{
	fprintf(stderr, "rr_client: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int socket_in(const struct target *t)
{
	int one = 1, fd;

	if (setns(t->netns, CLONE_NEWNET) < 0)
		die("setns into the pod");
	fd = socket(t->addr.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (setns(home_ns, CLONE_NEWNET) < 0)
		die("setns home");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		buf += w;
		n -= (size_t)w;
	}
}

static void read_exact(int fd, char *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, buf, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			die("read");
		}
		n -= (size_t)r;
	}
}

static void close_rst(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void parse_target(struct target *t, const char *ns, const char *ip, int port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&t->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t->addr;

	memset(t, 0, sizeof(*t));
	t->netns = open(ns, O_RDONLY | O_CLOEXEC);
	if (t->netns < 0)
		die(ns);
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		t->addrlen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		t->addrlen = sizeof(*a6);
	} else {
		errno = EINVAL;
		die(ip);
	}
}

int main(int argc, char **argv)
{
	struct target t[MAX_MODES];
	char buf[REQUEST];
	long count, warmup, i;
	int n, port, crr, k, j;

	if (argc < 7 || (argc - 5) % 2 || (argc - 5) / 2 > MAX_MODES) {
		fprintf(stderr, "usage: rr_client rr|crr COUNT WARMUP PORT NETNS ADDR...\n");
		return 2;
	}
	crr = strcmp(argv[1], "crr") == 0;
	count = atol(argv[2]);
	warmup = atol(argv[3]);
	port = atoi(argv[4]);
	n = (argc - 5) / 2;
	home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home_ns < 0)
		die("/proc/self/ns/net");
	memset(buf, 'x', sizeof(buf));
	for (k = 0; k < n; k++) {
		parse_target(&t[k], argv[5 + 2 * k], argv[6 + 2 * k], port);
		t[k].samples = calloc((size_t)count, sizeof(double));
		if (!t[k].samples)
			die("calloc");
		if (!crr) {
			t[k].fd = socket_in(&t[k]);
			if (connect(t[k].fd, (struct sockaddr *)&t[k].addr, t[k].addrlen) < 0)
				die("connect");
		}
	}
	for (i = 0; i < count + warmup; i++) {
		for (j = 0; j < n; j++) {
			struct target *m = &t[(i + j) % n];   /* rotated every cycle */
			double t0;
			int fd;

			if (crr) {
				fd = socket_in(m);
				t0 = now_us();
				if (connect(fd, (struct sockaddr *)&m->addr, m->addrlen) < 0)
					die("connect");
			} else {
				fd = m->fd;
				t0 = now_us();
			}
			write_all(fd, buf, REQUEST);
			read_exact(fd, buf, REQUEST);
			if (i >= warmup)
				m->samples[i - warmup] = now_us() - t0;
			if (crr)
				close_rst(fd);
		}
	}
	for (k = 0; k < n; k++) {
		if (!crr)
			close_rst(t[k].fd);
		for (i = 0; i < count; i++)
			printf(i ? " %.3f" : "%.3f", t[k].samples[i]);
		printf("\n");
	}
	return 0;
}
