package lab

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ports of the servers in the server namespace.
const (
	HTTPPort = 80   // GET /small, /big, /bytes/N
	BulkPort = 9000 // "sink\n" + data → "<n> <sha256 hex>\n"; "source N\n" → N bytes of Body
)

// BigSize is the length of /big.
const BigSize = 20 << 20

// SmallBody is the page served at /small.
const SmallBody = "<!doctype html><title>synwall lab</title><p>small page from the server namespace.</p>\n"

var (
	bodyOnce sync.Once
	body     []byte
)

// Body returns the deterministic BigSize-byte body behind /big; /bytes/N
// serves its first N bytes and the bulk source repeats it. The slice is
// shared: do not modify it.
func Body() []byte {
	bodyOnce.Do(func() {
		body = make([]byte, BigSize)
		// splitmix64: cheap, deterministic, and not compressible.
		var x uint64 = 0x5359_4e57_414c_4c21
		for i := 0; i < BigSize; i += 8 {
			x += 0x9e3779b97f4a7c15
			z := x
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			binary.LittleEndian.PutUint64(body[i:], z^(z>>31))
		}
	})
	return body
}

// BodySHA256 returns the SHA-256 of the first n bytes of the bulk stream
// (Body repeated).
func BodySHA256(n int) [32]byte {
	h := sha256.New()
	writeStream(h, n)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// writeStream writes the first n bytes of Body repeated.
func writeStream(w io.Writer, n int) error {
	b := Body()
	for n > 0 {
		k := min(n, len(b))
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// ServerConfig configures StartServers.
type ServerConfig struct {
	// Backlog, when positive, sets the listen queue of the HTTP listeners
	// (capped by the namespace's net.core.somaxconn).
	Backlog int
}

// Servers are the in-process servers of the server namespace.
type Servers struct {
	lns   []net.Listener
	https []*http.Server
	wg    sync.WaitGroup

	mu       sync.Mutex
	seen     map[netip.Addr]int
	requests int
	bulk     map[net.Conn]struct{}
	closed   bool
}

// StartServers starts HTTP on port 80 and the bulk server on port 9000, on
// the server's IPv4 and IPv6 addresses. Down stops them.
func (l *Lab) StartServers(cfg ServerConfig) (*Servers, error) {
	s := &Servers{seen: make(map[netip.Addr]int), bulk: make(map[net.Conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, SmallBody)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, BigSize)
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > BigSize {
			http.Error(w, fmt.Sprintf("n must be 0..%d", BigSize), http.StatusBadRequest)
			return
		}
		serveBytes(w, n)
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			s.mu.Lock()
			s.seen[ap.Addr().Unmap()]++
			s.requests++
			s.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	})
	fail := func(err error) (*Servers, error) {
		s.Close()
		return nil, err
	}
	for _, a := range []netip.Addr{ServerV4, ServerV6} {
		ln, err := ListenIn(l.Server, "tcp", netip.AddrPortFrom(a, HTTPPort).String())
		if err != nil {
			return fail(err)
		}
		s.lns = append(s.lns, ln)
		if cfg.Backlog > 0 {
			if err := SetBacklog(ln, cfg.Backlog); err != nil {
				return fail(err)
			}
		}
		hs := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       30 * time.Second,
			ErrorLog:          nil,
		}
		s.https = append(s.https, hs)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			hs.Serve(ln)
		}()

		bl, err := ListenIn(l.Server, "tcp", netip.AddrPortFrom(a, BulkPort).String())
		if err != nil {
			return fail(err)
		}
		s.lns = append(s.lns, bl)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveBulk(bl)
		}()
	}
	if _, err := l.onDown(s.Close); err != nil {
		return fail(err)
	}
	return s, nil
}

func serveBytes(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Write(Body()[:n])
}

func (s *Servers) serveBulk(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.bulk[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.bulk, c)
				s.mu.Unlock()
				c.Close()
			}()
			c.SetDeadline(time.Now().Add(5 * time.Minute))
			handleBulk(c)
		}()
	}
}

// handleBulk speaks the bulk protocol on one connection.
func handleBulk(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "sink":
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
		return err
	case len(f) == 2 && f[0] == "source":
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > 1<<34 {
			fmt.Fprintf(c, "error: bad length %q\n", f[1])
			return errors.New("bad length")
		}
		return writeStream(c, n)
	default:
		fmt.Fprintf(c, "error: want \"sink\" or \"source N\"\n")
		return errors.New("bad command")
	}
}

// Seen returns how many HTTP requests came from addr (as the server saw
// it: the real client address when the gateway is transparent).
func (s *Servers) Seen(addr netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[addr.Unmap()]
}

// Remotes returns every remote address the HTTP server has seen, with its
// request count.
func (s *Servers) Remotes() map[netip.Addr]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[netip.Addr]int, len(s.seen))
	for k, v := range s.seen {
		m[k] = v
	}
	return m
}

// Requests returns the number of HTTP requests served.
func (s *Servers) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Close stops the servers and waits for their goroutines. It is idempotent.
func (s *Servers) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.bulk {
		c.Close()
	}
	s.mu.Unlock()
	for _, hs := range s.https {
		hs.Close()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
	return nil
}
