package hub

import (
	"context"
	"testing"
	"time"
)

func TestMemoryBrokerLifecycle(t *testing.T) {
	br := NewMemoryBroker()
	ts := startHub(t, quiet(), br)
	if br.Subscribed("room") {
		t.Fatal("subscribed before any member")
	}
	c := ts.dial(t, "room", "u1")
	waitConns(t, ts.hub, 1)
	if !br.Subscribed("room") {
		t.Fatal("not subscribed with a member")
	}
	ctx := context.Background()
	for i := range 3 {
		if err := ts.hub.Publish(ctx, "room", seqFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if f := c.next(t, 2*time.Second); f.Seq != i {
			t.Fatalf("got %s, want seq %d", f.Raw, i)
		}
	}
	if f, ok := c.tryNext(200 * time.Millisecond); ok {
		t.Fatalf("duplicate delivery: %s", f.Raw)
	}
	_ = c.conn.Close()
	waitConns(t, ts.hub, 0)
	waitFor(t, 2*time.Second, "unsubscribe", func() bool { return !br.Subscribed("room") })
}

func TestClientSendAndClose(t *testing.T) {
	ts := startHub(t, quiet(), NewMemoryBroker())
	ts.handler.welcome = true
	c := ts.dial(t, "room", "u1")
	if f := c.next(t, 2*time.Second); f.Type != "welcome" {
		t.Fatalf("got %s, want welcome", f.Raw)
	}
	waitConns(t, ts.hub, 1)
	var cl *Client
	ts.hub.eachClient(func(x *Client) { cl = x })
	if cl.User().ID != "u1" || cl.Room() != "room" {
		t.Fatalf("client %+v in %q", cl.User(), cl.Room())
	}
	cl.Close(4000, "bye")
	if code := c.closeCode(t, 2*time.Second); code != 4000 {
		t.Fatalf("close code %d, want 4000", code)
	}
	waitConns(t, ts.hub, 0)
	select {
	case <-cl.Context().Done():
	case <-time.After(time.Second):
		t.Fatal("client context not cancelled after close")
	}
	if cl.Send([]byte(`{}`)) {
		t.Fatal("Send on a closed client reported success")
	}
	waitFor(t, 2*time.Second, "OnClose", func() bool { return ts.handler.closed.Load() == 1 })
}

func TestNilMetricsAreSafe(t *testing.T) {
	var m *Metrics
	m.connAdd(1)
	m.roomAdd(1)
	m.in()
	m.out(3, 1)
	m.published()
	m.received()
	m.evicted()
	m.fanout(time.Now())
}

func TestTruncateReason(t *testing.T) {
	long := ""
	for range 100 {
		long += "红"
	}
	got := truncateReason(long)
	if len(got) > maxCloseReason || len(got)%3 != 0 {
		t.Fatalf("truncated to %d bytes: not whole runes within limit", len(got))
	}
}
