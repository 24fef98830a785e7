package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
)

// An instance is killed (SIGKILL) while a hundred clients race for a hot
// packet through it. The other instance's sweeper pays every claim the dead
// one left uncredited; nothing is paid twice; the audit is clean. With
// wallets in Redis and in the ledger.
func TestInstanceKilledMidRace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	bin := serverBinary(t)
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) { killMidRace(t, bin, mode.config) })
	}
}

func killMidRace(t *testing.T, bin string, config func(testing.TB, string) Config) {
	db, _ := redistest.New(t)
	cfgB := config(t, db.URL())
	cfgB.SettleGrace = 200 * time.Millisecond
	b := startServer(t, cfgB)

	// Instance A is a real process, so it can die without a goodbye.
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HONGBAO_ADDR="+addr, "REDIS_URL="+db.URL(), "HONGBAO_SECRET="+testSecret,
		"HONGBAO_KEY_PREFIX="+cfgB.KeyPrefix, "HONGBAO_DATABASE_URL="+cfgB.DatabaseURL, "HONGBAO_SESSION_RATE=10000", "HONGBAO_SESSION_BURST=10000",
		"HONGBAO_SETTLE_GRACE=200ms", "HONGBAO_SWEEP_LEASE=1s", "HONGBAO_GRAB_RATE=10000", "HONGBAO_GRAB_BURST=10000", "HONGBAO_LOG_LEVEL=error",
		"HONGBAO_MAX_CONNS_PER_IP=10000", "HONGBAO_NEW_ROOMS_PER_IP=10000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	a := &server{URL: "http://" + addr}
	waitListening(t, addr)

	sender, senderTok := session(t, b, "Sender")
	if st := call(t, b, "POST", "/api/v1/admin/credit", testAdmin, map[string]any{"user_id": sender.ID, "amount": 2000000}, nil); st != 200 {
		t.Fatalf("credit: %d", st)
	}
	var packets []packet.State
	for i := 0; i < 20; i++ {
		packets = append(packets, newPacket(t, b, senderTok, "crash", map[string]any{"kind": "lucky", "total": 100000, "count": 1000}))
	}

	const clients = 100
	type racer struct {
		c   *wsClient
		id  string
		tok string
	}
	racers := make([]racer, clients)
	for i := range racers {
		u, tok := session(t, a, fmt.Sprint("r", i))
		racers[i] = racer{c: mustDial(t, a, "crash", tok), id: u.ID, tok: tok}
	}
	// Every racer grabs the packets one after another, 5 ms apart; A dies
	// when about half have been sent, with grabs in flight. A racer stops at
	// its first failed send (A is gone) and every racer ends before the test.
	var sending sync.WaitGroup
	for _, r := range racers {
		sending.Add(1)
		go func(r racer) {
			defer sending.Done()
			for _, p := range packets {
				if r.c.trySend(map[string]any{"type": "grab", "ref": p.ID, "packet_id": p.ID}) != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(r)
	}
	time.Sleep(50 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	sending.Wait()
	won := map[string]int64{} // packet id + user id -> amount the client was told
	for _, r := range racers {
		<-r.c.closed
		for _, f := range r.c.all("result") {
			if f.OK {
				won[f.Ref+r.id] = f.Amount
			}
		}
	}

	// B's sweeper pays what A left unpaid. Until it is done the books are
	// in motion, and a Redis-only audit is exact only at rest; so wait for
	// a clean audit with nothing left uncredited, and fail with the last
	// report if that never comes.
	rep := awaitSettled(t, b, 15*time.Second)
	claims := 0
	balances := map[string]int64{}
	for _, p := range packets {
		d, err := b.store.Detail(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Claims {
			claims++
			balances[c.User.ID] += c.Amount
			if amount, ok := won[p.ID+c.User.ID]; ok && amount != c.Amount {
				t.Fatalf("%s was told %d, claim says %d", c.User.ID, amount, c.Amount)
			}
			delete(won, p.ID+c.User.ID)
		}
	}
	if len(won) != 0 {
		t.Fatalf("%d grabs were answered ok but left no claim", len(won))
	}
	for _, r := range racers {
		if got := meBalance(t, b, r.tok); got != 10000+balances[r.id] {
			t.Fatalf("%s claimed %d in all, balance %d", r.id, balances[r.id], got)
		}
	}
	if claims == 0 || claims == len(packets)*clients {
		t.Fatalf("%d claims: the kill did not land mid-race", claims)
	}
	t.Logf("%d claims when A died: %s", claims, rep)
}

// awaitSettled polls the audit until it is clean with no claim left
// uncredited, and fails the test with the last report if that does not
// happen within timeout.
func awaitSettled(t *testing.T, s *server, timeout time.Duration) packet.AuditReport {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep, err := s.store.Audit(context.Background())
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		if rep.OK() && rep.Uncredited == 0 {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %v: %s", timeout, rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}
