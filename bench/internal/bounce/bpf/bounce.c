// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The floor of a kernel SYN stage, for the benchmarks only: turns every
 * TCP SYN (IPv4 without options, IPv6 without extension headers) into a
 * SYN-ACK in place (swapped addresses and ports, the SYN's sequence
 * number + 1 acknowledged, a fixed sequence number, incremental checksum,
 * options left as they are) and hands it back the way synwall's stage does
 * on a lab veth (bpf_redirect_peer). No cookie, no policy, no state. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ISN 0x12345678


SEC("tc")
int bounce(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *e = data;
	__u32 l3;
	if (data + 14 + 20 + 20 > end)
		return TC_ACT_OK;
	if (e[12] == 0x08 && e[13] == 0x00) {
		if (e[14] != 0x45 || e[14 + 9] != 6)
			return TC_ACT_OK;
		l3 = 20;
	} else if (e[12] == 0x86 && e[13] == 0xdd) {
		if (data + 14 + 40 + 20 > end || e[14 + 6] != 6)
			return TC_ACT_OK;
		l3 = 40;
	} else {
		return TC_ACT_OK;
	}
	__u8 *t = e + 14 + l3;
	if (t[13] != 0x02) /* SYN alone */
		return TC_ACT_OK;
	__u8 mac[6];
	__builtin_memcpy(mac, e, 6);
	__builtin_memcpy(e, e + 6, 6);
	__builtin_memcpy(e + 6, mac, 6);
	if (l3 == 20) {
		__u32 a;
		__builtin_memcpy(&a, e + 26, 4);
		__builtin_memcpy(e + 26, e + 30, 4);
		__builtin_memcpy(e + 30, &a, 4);
	} else {
		__u8 a[16];
		__builtin_memcpy(a, e + 22, 16);
		__builtin_memcpy(e + 22, e + 38, 16);
		__builtin_memcpy(e + 38, a, 16);
	}
	__u16 p;
	__builtin_memcpy(&p, t, 2);
	__builtin_memcpy(t, t + 2, 2);
	__builtin_memcpy(t + 2, &p, 2);
	/* Addresses and ports swapped leave the checksum as it is. */
	__u32 seq, ack, isn = bpf_htonl(ISN), nack;
	__builtin_memcpy(&seq, t + 4, 4);
	__builtin_memcpy(&ack, t + 8, 4);
	nack = bpf_htonl(bpf_ntohl(seq) + 1);
	__builtin_memcpy(t + 4, &isn, 4);
	__builtin_memcpy(t + 8, &nack, 4);
	__u16 of, nf;
	__builtin_memcpy(&of, t + 12, 2);
	t[13] = 0x12; /* SYN, ACK */
	__builtin_memcpy(&nf, t + 12, 2);
	__u32 off = 14 + l3 + 16;
	bpf_l4_csum_replace(skb, off, seq, isn, 4);
	bpf_l4_csum_replace(skb, off, ack, nack, 4);
	bpf_l4_csum_replace(skb, off, of, nf, 2);
	return bpf_redirect_peer(skb->ifindex, 0);
}
