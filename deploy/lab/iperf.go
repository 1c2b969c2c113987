package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// IperfPort is where StartIperf's server listens.
const IperfPort = 5201

// StartIperf runs `iperf3 -s` in the server namespace until Down, and waits
// until it accepts connections.
func (l *Lab) StartIperf(ctx context.Context) error {
	if err := Require("iperf3"); err != nil {
		return err
	}
	cmd := l.Cmd(context.Background(), l.Server, "iperf3", "-s", "-p", strconv.Itoa(IperfPort))
	cmd.Cancel, cmd.WaitDelay = nil, 0
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: iperf3 -s: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	stop := func() error {
		select {
		case <-done:
			return nil
		default:
		}
		cmd.Process.Kill() // by its PID: `ip netns exec` exec'd iperf3
		<-done
		return nil
	}
	if _, err := l.onDown(stop); err != nil {
		stop()
		return err
	}
	// Ready when it accepts on the server's own loopback view.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := InNetns(l.Server, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ServerV4, IperfPort).String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("lab: iperf3 -s exited: %s", out.String())
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("lab: iperf3 -s not accepting after 10 s: %v: %s", err, out.String())
		}
	}
}

// Iperf runs an iperf3 client in the client namespace against server for
// d, and returns the received throughput in bit/s.
func (l *Lab) Iperf(ctx context.Context, server netip.Addr, d time.Duration) (float64, error) {
	if d <= 0 || d > MaxFloodDuration {
		return 0, fmt.Errorf("lab: iperf duration %v not in (0, %v]", d, MaxFloodDuration)
	}
	ctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	cmd := l.Cmd(ctx, l.Client, "iperf3", "-J", "-c", server.String(), "-p", strconv.Itoa(IperfPort),
		"-t", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return 0, fmt.Errorf("lab: iperf3 -c %v: %v; %v: %s", server, err, jerr, stderr.String())
	}
	if rep.Error != "" || err != nil {
		return 0, fmt.Errorf("lab: iperf3 -c %v: %v %s", server, err, rep.Error)
	}
	return rep.End.SumReceived.BitsPerSecond, nil
}
