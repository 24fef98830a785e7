package hub

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/redistest"
)

// TestPresenceIdleRoomsCommandRate measures the Redis commands per second
// that presence spends on one instance holding presenceMeasureRooms rooms
// of one member each, none of which changes. It is heavy, so it runs only
// with HONGBAO_PRESENCE_MEASURE=1; it logs the figure rather than judge it.
func TestPresenceIdleRoomsCommandRate(t *testing.T) {
	if os.Getenv("HONGBAO_PRESENCE_MEASURE") != "1" {
		t.Skip("set HONGBAO_PRESENCE_MEASURE=1 to measure presence at 100 000 idle rooms")
	}
	const rooms = 100000
	_, rdb := redistest.Durable(t) // private: INFO commandstats counts only us
	ctx := context.Background()
	// The measured Redis runs without AOF fsync so the rate is presence's,
	// not the disk's.
	if err := rdb.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	h := New(Config{
		InstanceID:       "measure",
		PresenceInterval: time.Second,
		Presence:         NewRedisPresence(rdb, RedisPresenceConfig{Prefix: "hb"}),
	}, NewMemoryBroker(), testLogger(), nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for i := range rooms {
		c := newClient(ctx, h, nil, "room-"+strconv.Itoa(i), User{ID: "u" + strconv.Itoa(i)})
		if err := h.join(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Let the joins be published, then count an idle stretch.
	settle := time.Now().Add(30 * time.Second)
	prev := commandCalls(t, rdb)
	for time.Now().Before(settle) {
		time.Sleep(2 * time.Second) // a measurement window, not synchronisation
		cur := commandCalls(t, rdb)
		if cur-prev < 10*rooms/100 { // joins published: the rate fell
			break
		}
		prev = cur
	}
	const window = 10 * time.Second
	before := commandCalls(t, rdb)
	began := time.Now()
	time.Sleep(window) // a measurement window, not synchronisation
	calls := commandCalls(t, rdb) - before
	rate := float64(calls) / time.Since(began).Seconds()
	t.Logf("presence with %d idle rooms on one instance: %.0f Redis commands/s (%d commands in %v)", rooms, rate, calls, time.Since(began).Round(time.Millisecond))
}

// commandCalls sums the calls of every command in INFO commandstats,
// except the INFO and CONFIG calls of the measurement itself.
func commandCalls(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" || strings.HasPrefix(name, "cmdstat_config") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}
