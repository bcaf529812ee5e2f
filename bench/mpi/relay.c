/* SPDX-License-Identifier: MIT */
/*
 * relay.c - a user-space Ethernet switch that delays every frame: the link
 * between the namespace "hosts" of bench/mpi/hosts.sh, which needs a
 * round trip of tens of milliseconds on a kernel without netem.
 *
 *   relay DELAY_MS IFACE IFACE...
 *
 * Reads every frame that arrives on the IFACEs (AF_PACKET, so it needs
 * CAP_NET_RAW; run it in the namespace that holds the switch's ends of
 * the links) and sends it out DELAY_MS milliseconds later (one way; a
 * round trip takes twice that; 0 forwards at once), on the port that the
 * destination address was last seen on, or on every other port for
 * broadcasts and addresses not seen yet: a learning switch. Frames keep
 * their order. At most 64 MiB wait at a time; past that a frame is
 * dropped, as a full link would. The links must not use offloads (no
 * segmentation or checksum offload: ethtool -K IF tx off tso off gso off),
 * since whole frames are copied. Runs until killed; on SIGTERM or SIGINT
 * it prints how many frames it forwarded and dropped.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_PORTS = 32, MAX_MACS = 256, FRAME_MAX = 65536 };
#define QUEUE_CAP (64u << 20)

typedef struct frame {
    struct frame *next;
    uint64_t due_ns;
    int from;
    size_t len;
    unsigned char data[];
} frame;

static int socks[MAX_PORTS];
static int nports;
static unsigned char macs[MAX_MACS][ETH_ALEN];
static int mac_port[MAX_MACS];
static int nmacs;
static frame *head, *tail;
static size_t queued;
static unsigned long long forwarded, dropped;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int open_port(const char *name)
{
    int ifindex = (int)if_nametoindex(name);
    if (!ifindex) {
        fprintf(stderr, "relay: no interface %s\n", name);
        return -1;
    }
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (s < 0) {
        perror("relay: socket(AF_PACKET)");
        return -1;
    }
    struct sockaddr_ll sa = { .sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = ifindex };
    struct packet_mreq mr = { .mr_ifindex = ifindex,
                              .mr_type = PACKET_MR_PROMISC };
    int one = 1;
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) ||
        setsockopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr)) {
        fprintf(stderr, "relay: %s: %s\n", name, strerror(errno));
        close(s);
        return -1;
    }
    /* Bursts of a whole congestion window arrive faster than this loop
     * reads them: the default receive buffer (about 200 KiB, 90 frames at
     * their kernel size) overflows and the kernel drops frames, which
     * TCP takes for congestion. Room for QUEUE_CAP. */
    int big = (int)QUEUE_CAP;
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big))
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big))
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
#ifdef PACKET_IGNORE_OUTGOING
    setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
#endif
    (void)one;
    return s;
}

/* The port the address was last seen on as a source, or -1. */
static int port_of(const unsigned char *mac)
{
    for (int i = 0; i < nmacs; i++)
        if (memcmp(macs[i], mac, ETH_ALEN) == 0)
            return mac_port[i];
    return -1;
}

static void learn(const unsigned char *mac, int port)
{
    if (mac[0] & 1)
        return; /* a group address is never a source */
    for (int i = 0; i < nmacs; i++)
        if (memcmp(macs[i], mac, ETH_ALEN) == 0) {
            mac_port[i] = port;
            return;
        }
    if (nmacs < MAX_MACS) {
        memcpy(macs[nmacs], mac, ETH_ALEN);
        mac_port[nmacs++] = port;
    }
}

/* Reads what port p has ready into the queue. */
static void receive(int p, unsigned char *buf)
{
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(socks[p], buf, FRAME_MAX, 0,
                             (struct sockaddr *)&from, &fl);
        if (n < 0)
            return; /* EAGAIN: drained */
        if (from.sll_pkttype == PACKET_OUTGOING || n < ETH_HLEN)
            continue; /* what this relay sent */
        if (queued + (size_t)n > QUEUE_CAP) {
            dropped++;
            continue;
        }
        frame *f = malloc(sizeof *f + (size_t)n);
        if (!f) {
            dropped++;
            continue;
        }
        f->next = NULL;
        f->from = p;
        f->len = (size_t)n;
        memcpy(f->data, buf, (size_t)n);
        queued += (size_t)n;
        learn(f->data + ETH_ALEN, p);
        f->due_ns = now_ns();
        if (tail)
            tail->next = f;
        else
            head = f;
        tail = f;
    }
}

static void send_frame(const frame *f)
{
    int to = f->data[0] & 1 ? -1 : port_of(f->data);
    for (int p = 0; p < nports; p++) {
        if (p == f->from || (to >= 0 && p != to))
            continue;
        if (send(socks[p], f->data, f->len, 0) == (ssize_t)f->len)
            forwarded++;
        else
            dropped++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc - 2 > MAX_PORTS) {
        fprintf(stderr, "usage: relay DELAY_MS IFACE IFACE... (at most %d)\n",
                MAX_PORTS);
        return 2;
    }
    uint64_t delay_ns = (uint64_t)(atof(argv[1]) * 1e6);
    for (int i = 2; i < argc; i++) {
        socks[nports] = open_port(argv[i]);
        if (socks[nports++] < 0)
            return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    unsigned char *buf = malloc(FRAME_MAX);
    if (!buf)
        return 1;
    struct pollfd pfd[MAX_PORTS];
    for (int p = 0; p < nports; p++)
        pfd[p] = (struct pollfd){ .fd = socks[p], .events = POLLIN };
    printf("relay: %d ports, %.3f ms each way\n", nports,
           (double)delay_ns / 1e6);
    fflush(stdout);
    while (!stop) {
        uint64_t now = now_ns();
        while (head && head->due_ns + delay_ns <= now) {
            frame *f = head;
            head = f->next;
            if (!head)
                tail = NULL;
            send_frame(f);
            queued -= f->len;
            free(f);
        }
        struct timespec ts, *wait = NULL;
        if (head) {
            uint64_t left = head->due_ns + delay_ns - now;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            wait = &ts;
        }
        if (ppoll(pfd, (nfds_t)nports, wait, NULL) < 0 && errno != EINTR) {
            perror("relay: ppoll");
            return 1;
        }
        for (int p = 0; p < nports; p++)
            if (pfd[p].revents & POLLIN)
                receive(p, buf);
    }
    unsigned long long kdrops = 0;
    for (int p = 0; p < nports; p++) {
        struct tpacket_stats st;
        socklen_t sl = sizeof st;
        if (getsockopt(socks[p], SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0)
            kdrops += st.tp_drops;
    }
    printf("relay: %llu frames forwarded, %llu dropped, %llu dropped by the "
           "kernel\n",
           forwarded, dropped, kdrops);
    return 0;
}
