package main

// netProxy stands between a browser and a server in the browser tests: a
// TCP forwarder that reads the requests passing through, as a proxy's access
// log would, and that can drop the network (every connection cut, new ones
// refused) and bring it back. The server under test needs no hook for it.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type netProxy struct {
	t      *testing.T
	URL    string // http://127.0.0.1:port, for the browser
	target string // host:port of the server
	ln     net.Listener
	wg     sync.WaitGroup

	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]struct{}
	requests []*http.Request // heads only, in the order they arrived
}

// newNetProxy forwards a fresh local port to the server at serverURL; it
// stops, and its goroutines end, when the test ends.
func newNetProxy(t *testing.T, serverURL string) *netProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &netProxy{t: t, URL: "http://" + ln.Addr().String(), target: strings.TrimPrefix(serverURL, "http://"),
		ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *netProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close() // the network is down: as good as refused
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers a connection; false while the network is down.
func (p *netProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *netProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(server) {
		client.Close()
		if server != nil {
			server.Close()
		}
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(client, server)
		client.Close()
	}()
	p.readRequests(io.TeeReader(client, server))
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// readRequests records the head of every request on a connection whose bytes
// r forwards as it reads them. After a WebSocket upgrade the rest is frames.
func (p *netProxy) readRequests(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			_, _ = io.Copy(io.Discard, br)
			return
		}
		p.mu.Lock()
		p.requests = append(p.requests, req)
		p.mu.Unlock()
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		if strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
			_, _ = io.Copy(io.Discard, br)
			return
		}
	}
}

// drop cuts every connection and refuses new ones, as a lost network does.
func (p *netProxy) drop() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.cut()
}

// restore lets connections through again.
func (p *netProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *netProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// upgrades returns the WebSocket upgrade requests seen so far.
func (p *netProxy) upgrades() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*http.Request
	for _, r := range p.requests {
		if r.URL.Path == "/ws" {
			out = append(out, r)
		}
	}
	return out
}

// all returns every request head seen so far.
func (p *netProxy) all() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.requests...)
}

var errNoUpgrade = errors.New("no WebSocket upgrade went through the proxy")

// lastUpgrade is the most recent WebSocket upgrade request.
func (p *netProxy) lastUpgrade() (*http.Request, error) {
	ups := p.upgrades()
	if len(ups) == 0 {
		return nil, errNoUpgrade
	}
	return ups[len(ups)-1], nil
}
