package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The control socket speaks HTTP/1.1 over a unix socket. Versioned paths:
//
//	GET /v1/status   the status document (Status, "version": 1) as JSON
//
// Anyone who can connect (the socket is 0660: root and the socket's group)
// can read the status; nothing on it changes the gateway.
const statusPath = "/v1/status"

// errSocketBusy: another process answers on the control socket.
var errSocketBusy = errors.New("another synwall is serving it")

// listenControl creates the socket's directory (0750) and listens on path
// (0660). A socket left by a synwall that died is replaced; one that
// answers belongs to a running synwall and is an error.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, errSocketBusy)
		}
		os.Remove(path) // stale
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveControl answers on ln until ctx ends; it closes ln, which removes
// the socket.
func serveControl(ctx context.Context, ln net.Listener, d *Daemon) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(d.status(time.Now()))
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	d.log.Info("serving status", "socket", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("control socket: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

// ErrNotRunning is returned by FetchStatus when no daemon answers.
var ErrNotRunning = errors.New("the daemon is not running")

// FetchStatus asks the daemon at socket for its status (the client side of
// the control socket, for synwall status). A daemon that is not running (no
// socket, nobody listening) is ErrNotRunning.
func FetchStatus(ctx context.Context, socket string) (*Status, error) {
	c := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", socket)
		}},
		Timeout: 5 * time.Second,
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://synwall"+statusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, socket)
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", socket, resp.Status, b)
	}
	var doc Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: bad status document: %w", socket, err)
	}
	if doc.Version != StatusVersion {
		return nil, fmt.Errorf("%s: status version %d, this synwall reads %d", socket, doc.Version, StatusVersion)
	}
	return &doc, nil
}
