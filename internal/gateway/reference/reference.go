package reference

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/synwall/synwall/internal/cookies"
	"github.com/synwall/synwall/internal/policy"
)

// ErrNotSyn is returned for a packet that is not a TCP SYN over IPv4/IPv6.
var ErrNotSyn = errors.New("reference: not a TCP SYN")

// SynAck returns the SYN-ACK the engine sends for a SYN: as the server,
// sequence number the cookie, options as negotiated with adv (RFC 7323
// §2.2, RFC 2018, RFC 3168 §6.1.1), TTL/hop limit 64, IPv4 ID 0 and DF.
func SynAck(pkt []byte, jar *cookies.Jar, adv policy.Advertise, now time.Time) ([]byte, error) {
	if len(pkt) == 0 {
		return nil, ErrNotSyn
	}
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok || !tcp.SYN || tcp.ACK {
		return nil, ErrNotSyn
	}
	var tup cookies.Tuple
	var srcIP, dstIP net.IP
	v6 := false
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		srcIP, dstIP = ip.SrcIP.To4(), ip.DstIP.To4()
	} else if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		srcIP, dstIP, v6 = ip.SrcIP, ip.DstIP, true
	} else {
		return nil, ErrNotSyn
	}
	copy(tup.Src[:], srcIP)
	copy(tup.Dst[:], dstIP)
	tup.SrcPort, tup.DstPort, tup.V6 = uint16(tcp.SrcPort), uint16(tcp.DstPort), v6

	var mss uint16
	ws := -1
	var sackPerm, hasTS bool
	var tsVal uint32
	for _, o := range tcp.Options {
		switch o.OptionType {
		case layers.TCPOptionKindMSS:
			if len(o.OptionData) == 2 {
				mss = binary.BigEndian.Uint16(o.OptionData)
			}
		case layers.TCPOptionKindWindowScale:
			if len(o.OptionData) == 1 {
				ws = int(min(o.OptionData[0], 14))
			}
		case layers.TCPOptionKindSACKPermitted:
			sackPerm = true
		case layers.TCPOptionKindTimestamps:
			if len(o.OptionData) == 8 {
				hasTS, tsVal = true, binary.BigEndian.Uint32(o.OptionData)
			}
		}
	}
	wsOK := ws >= 0 && adv.WScale >= 0
	sackOK := sackPerm && adv.SACK
	tsOK := hasTS && adv.Timestamps
	ecnOK := tcp.ECE && tcp.CWR && adv.ECN

	cookie := jar.ISN(&tup, tcp.Seq, mss, now)
	out := &layers.TCP{
		SrcPort: tcp.DstPort, DstPort: tcp.SrcPort,
		Seq: cookie, Ack: tcp.Seq + 1, SYN: true, ACK: true, ECE: ecnOK,
		Window: adv.Window,
	}
	advMSS := adv.MSS4
	if v6 {
		advMSS = adv.MSS6
	}
	if advMSS != 0 {
		b := make([]byte, 2)
		binary.BigEndian.PutUint16(b, advMSS)
		out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: b})
	}
	if tsOK {
		o := cookies.TSOptions{WScale: cookies.NoWScale, SACK: sackOK, ECN: ecnOK}
		if wsOK {
			o.WScale = uint8(ws)
		}
		b := make([]byte, 8)
		binary.BigEndian.PutUint32(b, cookies.EncodeTS(uint32(now.UnixMilli()), o))
		binary.BigEndian.PutUint32(b[4:], tsVal)
		if sackOK {
			out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
		} else {
			out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop}, layers.TCPOption{OptionType: layers.TCPOptionKindNop})
		}
		out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: b})
	} else if sackOK {
		out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop}, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2})
	}
	if wsOK {
		out.Options = append(out.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(min(adv.WScale, 14))}})
	}
	var ip gopacket.SerializableLayer
	if v6 {
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: dstIP, DstIP: srcIP}
		out.SetNetworkLayerForChecksum(l)
		ip = l
	} else {
		l := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: dstIP, DstIP: srcIP}
		out.SetNetworkLayerForChecksum(l)
		ip = l
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
