package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"
)

// BulkUp sends n bytes of the deterministic stream from the client
// namespace to the bulk sink at addr and checks the length and SHA-256 the
// server reports.
func (l *Lab) BulkUp(ctx context.Context, addr netip.AddrPort, n int) error {
	c, err := l.bulkDial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	io.WriteString(w, "sink\n")
	if err := writeStream(w, n); err != nil {
		return fmt.Errorf("lab: bulk send: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("lab: bulk send: %w", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("lab: bulk half-close: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("lab: bulk reply: %w (got %q)", err, line)
	}
	want := fmt.Sprintf("%d %x", n, BodySHA256(n))
	if got := strings.TrimSpace(line); got != want {
		return fmt.Errorf("lab: bulk sink got %q, want %q", got, want)
	}
	return nil
}

// BulkDown asks the bulk source at addr for n bytes and checks that the
// client namespace receives exactly the deterministic stream.
func (l *Lab) BulkDown(ctx context.Context, addr netip.AddrPort, n int) error {
	c, err := l.bulkDial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "source %d\n", n); err != nil {
		return fmt.Errorf("lab: bulk request: %w", err)
	}
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		return fmt.Errorf("lab: bulk receive after %d bytes: %w", got, err)
	}
	if got != int64(n) {
		return fmt.Errorf("lab: bulk source sent %d bytes, want %d", got, n)
	}
	if sum := BodySHA256(n); string(h.Sum(nil)) != string(sum[:]) {
		return fmt.Errorf("lab: bulk source: %d bytes arrived altered", n)
	}
	return nil
}

func (l *Lab) bulkDial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := DialIn(dctx, l.Client, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("lab: bulk connect %v: %w", addr, err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(2 * time.Minute)
	}
	c.SetDeadline(dl)
	return c, nil
}
