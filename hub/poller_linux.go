//go:build linux

package hub

import (
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// The poller waits for input on parked connections (reader.go) with one
// epoll instance and one goroutine per hub, instead of one goroutine per
// connection. A socket is registered level-triggered and one-shot: parking
// arms it, and the first readiness disarms it and starts a reader, so a
// parked connection gets one reader however much arrives. Input that came
// before the arming is reported at once. An event carries the client's
// seq, never its file descriptor, so a descriptor number reused by a newer
// socket cannot wake the wrong client. The runtime's own poller keeps its
// registration of the same sockets; the two do not interfere.
//
// The poller runs while it has clients, and closes its epoll instance
// after pollIdle without any.
type poller struct {
	log *slog.Logger

	mu      sync.RWMutex
	epfd    int  // -1 while not running
	broken  bool // epoll failed: nothing parks any more
	clients map[uint64]*Client
}

// pollIdle is how long the poller waits for an event before it checks
// whether it still has clients.
const pollIdle = time.Second

func newPoller(log *slog.Logger) *poller {
	return &poller{log: log, epfd: -1, clients: make(map[uint64]*Client)}
}

// add registers c, whose connection may then park, and reports whether it
// did. Only plain sockets park: a connection that buffers input above the
// socket (TLS) must be read whenever it has input, ready or not.
func (p *poller) add(c *Client) bool {
	switch c.conn.NetConn().(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken {
		return false
	}
	if p.epfd < 0 {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			p.log.Warn("hub: epoll_create1 failed; this connection is read by a goroutine of its own", "err", err)
			return false
		}
		p.epfd = fd
		go p.run(fd)
	}
	p.clients[c.seq] = c
	return true
}

// remove forgets c once its connection has ended. Its socket leaves the
// epoll set by itself when it is closed.
func (p *poller) remove(c *Client) {
	p.mu.Lock()
	delete(p.clients, c.seq)
	p.mu.Unlock()
}

// arm makes the poller wake c's reader when its socket is readable or
// hung up, and reports whether it did (not if the socket is closed).
func (p *poller) arm(c *Client) bool {
	rc, err := c.conn.NetConn().(syscall.Conn).SyscallConn()
	if err != nil {
		return false
	}
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(c.seq)),
		Pad:    int32(uint32(c.seq >> 32)),
	}
	// The read lock keeps epfd open and unchanged, and Control keeps the
	// socket's descriptor from closing, while they are in use.
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.epfd < 0 {
		return false
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if cerr == syscall.ENOENT {
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	return err == nil && cerr == nil
}

// run waits for events on epfd and wakes their clients, until the poller
// has had no clients for pollIdle. If epoll fails, every client is woken
// and reads with a goroutine of its own from then on.
func (p *poller) run(epfd int) {
	var evs [128]syscall.EpollEvent
	var wake []*Client
	for {
		n, err := syscall.EpollWait(epfd, evs[:], int(pollIdle/time.Millisecond))
		if err == syscall.EINTR {
			continue
		}
		p.mu.Lock()
		switch {
		case err != nil:
			p.log.Error("hub: epoll_wait failed; every connection is read by a goroutine of its own from now on", "err", err)
			p.broken = true
			for _, c := range p.clients {
				wake = append(wake, c)
			}
			fallthrough
		case n == 0 && len(p.clients) == 0:
			_ = syscall.Close(epfd)
			p.epfd = -1
			p.mu.Unlock()
			for _, c := range wake {
				c.wake()
			}
			return
		}
		for _, ev := range evs[:n] {
			if c := p.clients[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]; c != nil {
				wake = append(wake, c)
			}
		}
		p.mu.Unlock()
		for _, c := range wake {
			c.wake()
		}
		clear(wake)
		wake = wake[:0]
	}
}
