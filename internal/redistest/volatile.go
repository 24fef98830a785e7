package redistest

import (
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Volatile starts a private redis-server for t alone, without persistence,
// stopped when t ends: a Restart brings it back empty, as a crashed Redis
// that keeps nothing on disk comes back.
func Volatile(t testing.TB) (*Server, *redis.Client) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: %s", installHint)
	}
	s := &Server{Private: true, maxDB: 16}
	if err := s.launch(bin, 0); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	rdb := redis.NewClient(s.Options(0))
	t.Cleanup(func() { _ = rdb.Close() })
	return s, rdb
}
