// Command synflood is the lab's bounded generator of spoofed TCP SYNs
// (package github.com/synwall/synwall/deploy/lab/synflood, where the packet
// builder, the sender, the bounds and their tests live), as a binary of the
// bench module for the harnesses that run it in the attacker namespace.
// `synwall-lab synflood` is the same command with the same flags.
//
//	cd bench && ip netns exec <attacker> go run ./synflood -dst 198.18.3.2:80 -rate 100000 -duration 10s [-count N] [-sources 198.19.0.0/16] [-distinct N] [-seed S]
//
//	cd bench && ip netns exec <attacker> go run ./synflood -dst '[2001:db8:3::2]:80' -rate 100000 -duration 10s [-sources 2001:db8:ff::/48]
//
// Sources and destination must lie inside 198.18.0.0/15 (RFC 2544) or
// 2001:db8::/32 (RFC 3849), both of the same family; anything else is
// refused. Every run is bounded in time (-duration, at most 60 s) and in
// packets (-count, at most 10^8; by default rate × duration). At the end it
// prints the packets sent and the achieved rate:
//
//	synflood: sent 1000000 packets in 10.000s: 100000 pps (rate 100000, send errors 0)
package main
