package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hongbao-dev/hongbao/internal/redistest"
	"github.com/hongbao-dev/hongbao/packet"
)

// The server binary, run as a real process: settings that must stop it
// before it starts, and SIGTERM in the middle of a race.
func TestServerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server process")
	}
	bin := serverBinary(t)
	t.Run("bad settings exit 2", func(t *testing.T) { badSettingsExit2(t, bin) })
	for _, mode := range modes {
		t.Run("SIGTERM during a race/"+mode.name, func(t *testing.T) { sigtermMidRace(t, bin, mode.config) })
	}
}

func badSettingsExit2(t *testing.T, bin string) {
	short := strings.Repeat("s", 16)
	for _, tc := range []struct{ env, value, says string }{
		{"HONGBAO_SECRET", short, "HONGBAO_SECRET=<16 bytes>"},
		{"HONGBAO_ADMIN_TOKEN", short, "HONGBAO_ADMIN_TOKEN=<16 bytes>"},
		{"HONGBAO_GRAB_RATE", "ten", `HONGBAO_GRAB_RATE="ten"`},
		{"HONGBAO_SEND_QUEUE", "0", "HONGBAO_SEND_QUEUE=0"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			// The listen address is never reached: a bad setting stops it first.
			cmd.Env = append(os.Environ(), tc.env+"="+tc.value, "HONGBAO_ADDR=127.0.0.1:0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%s=%s: %v, want exit status 2; stderr:\n%s", tc.env, tc.value, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.says) {
				t.Fatalf("stderr does not say %q:\n%s", tc.says, stderr.String())
			}
			if tc.value == short && strings.Contains(stderr.String(), short) {
				t.Fatalf("stderr shows the secret:\n%s", stderr.String())
			}
		})
	}
}

// Clients race for packets on instance A, a real process, which gets SIGTERM
// mid-race. Every ref a client sent before the signal gets its result
// before the 1001 close; a ref sent later either gets its result before the
// 1001 or was never acted on (no claim); every ok is paid; the audit is
// clean.
func sigtermMidRace(t *testing.T, bin string, config func(testing.TB, string) Config) {
	db, _ := redistest.New(t)
	cfgB := config(t, db.URL())
	b := startServer(t, cfgB)

	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HONGBAO_ADDR="+addr, "REDIS_URL="+db.URL(), "HONGBAO_SECRET="+testSecret,
		"HONGBAO_KEY_PREFIX="+cfgB.KeyPrefix, "HONGBAO_DATABASE_URL="+cfgB.DatabaseURL,
		"HONGBAO_GRAB_RATE=100000", "HONGBAO_GRAB_BURST=100000", "HONGBAO_LOG_LEVEL=warn",
		"HONGBAO_DRAIN_DELAY=2s", "HONGBAO_SHUTDOWN_TIMEOUT=10s", "HONGBAO_CLOSE_TIMEOUT=5s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	a := &server{URL: "http://" + addr}
	waitListening(t, addr)

	sender, senderTok := session(t, b, "Sender")
	if st := call(t, b, "POST", "/api/v1/admin/credit", testAdmin, map[string]any{"user_id": sender.ID, "amount": 1000000}, nil); st != 200 {
		t.Fatalf("credit: %d", st)
	}
	// Enough packets that grabs still win money when the drain ends.
	var packets []packet.State
	for range 200 {
		packets = append(packets, newPacket(t, b, senderTok, "drain", map[string]any{"kind": "lucky", "total": 3000, "count": 30}))
	}

	// Each racer grabs the packets one after another, every 20 ms, then
	// round again (a packet it already holds answers already_grabbed, a
	// result too), until its connection ends, with at most 5 refs
	// unanswered, so a slow machine cannot pile up more than the drain
	// delay can answer. sentBy records when each ref's send was complete.
	type racer struct {
		c      *wsClient
		id     string
		sentBy map[string]time.Time
		packet map[string]string // ref -> packet id
	}
	racers := make([]*racer, 30)
	for i := range racers {
		u, tok := session(t, b, fmt.Sprint("r", i))
		racers[i] = &racer{c: mustDial(t, a, "drain", tok), id: u.ID, sentBy: map[string]time.Time{}, packet: map[string]string{}}
	}
	var sending sync.WaitGroup
	for _, r := range racers {
		sending.Go(func() {
			for i := 0; ; i++ {
				for len(r.c.all("result")) < i-5 {
					select {
					case <-r.c.notify:
					case <-r.c.closed:
						return
					}
				}
				ref, p := fmt.Sprint("g", i), packets[i%len(packets)].ID
				if r.c.trySend(map[string]any{"type": "grab", "ref": ref, "packet_id": p}) != nil {
					return
				}
				r.sentBy[ref], r.packet[ref] = time.Now(), p
				select {
				case <-r.c.closed:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
	waitUntil(t, 30*time.Second, "every racer to have 5 results", func() bool {
		for _, r := range racers {
			if len(r.c.all("result")) < 5 {
				return false
			}
		}
		return true
	})
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("A exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("A did not exit within 30s of SIGTERM")
	}
	sending.Wait()
	if strings.Contains(stderr.String(), "panic") {
		t.Fatalf("A panicked:\n%s", stderr.String())
	}

	won := map[string]int64{} // packet id + user id -> amount the client was told
	var before, after, answeredAfter, wonAfter int
	for _, r := range racers {
		<-r.c.closed
		var ce *websocket.CloseError
		if !errors.As(r.c.closeErr, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("%s: connection ended with %v, want 1001", r.id, r.c.closeErr)
		}
		results := map[string]frame{}
		for _, f := range r.c.all("result") {
			results[f.Ref] = f
			if f.OK {
				won[r.packet[f.Ref]+r.id] = f.Amount
				if r.sentBy[f.Ref].After(signalled) {
					wonAfter++
				}
			}
		}
		for ref, at := range r.sentBy {
			_, answered := results[ref]
			switch {
			case at.Before(signalled):
				before++
				if !answered {
					t.Fatalf("%s: %s was sent before SIGTERM and got no result before 1001", r.id, ref)
				}
			case answered:
				after++
				answeredAfter++
			default:
				after++
			}
		}
	}

	// A claim nobody was told about would be a ref acted on but unanswered.
	rep := awaitSettled(t, b, 30*time.Second)
	balances := map[string]int64{}
	claims := 0
	for _, p := range packets {
		d, err := b.store.Detail(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Claims {
			claims++
			balances[c.User.ID] += c.Amount
			amount, told := won[p.ID+c.User.ID]
			if !told {
				t.Fatalf("%s has a claim on %s but was never told so", c.User.ID, p.ID)
			}
			if amount != c.Amount {
				t.Fatalf("%s was told %d, claim says %d", c.User.ID, amount, c.Amount)
			}
			delete(won, p.ID+c.User.ID)
		}
	}
	if len(won) != 0 {
		t.Fatalf("%d grabs were answered ok but left no claim", len(won))
	}
	for _, r := range racers {
		if got := meMoney(t, b, sessionToken(t, r.id)); got != 10000+balances[r.id] {
			t.Fatalf("%s claimed %d in all, holds %d", r.id, balances[r.id], got)
		}
	}
	t.Logf("%d refs sent before SIGTERM, all answered; %d after it, %d of them answered before 1001 (%d won); %d claims; %s",
		before, after, answeredAfter, wonAfter, claims, rep)
}

// sessionToken mints a token for user id, as the instance that created the
// session would.
func sessionToken(t *testing.T, id string) string {
	return mintToken(t, id, time.Hour)
}
