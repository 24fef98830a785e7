package redistest

import (
	"context"
	"testing"
	"time"
)

// A Debug server takes DEBUG SLEEP and is unresponsive meanwhile; a plain
// private server refuses DEBUG on Redis 7 (accepts it on older versions).
func TestStartDebug(t *testing.T) {
	_, rdb := Start(t, Options{Debug: true})
	ctx := context.Background()
	start := time.Now()
	if err := rdb.Do(ctx, "DEBUG", "SLEEP", "0.2").Err(); err != nil {
		t.Fatalf("DEBUG SLEEP on a Debug server: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("DEBUG SLEEP 0.2 returned after %v", d)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}
