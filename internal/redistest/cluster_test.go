package redistest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

// privateCluster gives a test of this package the private cluster. A cluster
// named by REDIS_CLUSTER_URL is left to the packages that need one: under go
// test ./... these tests would flush it while theirs run.
func privateCluster(t *testing.T) *redis.ClusterClient {
	if os.Getenv("REDIS_CLUSTER_URL") != "" {
		t.Skip("tests the private cluster; REDIS_CLUSTER_URL is set")
	}
	return NewCluster(t)
}

// The shared cluster has every slot served, a clean keyspace per test, and
// keys that land on different masters.
func TestNewCluster(t *testing.T) {
	rdb := privateCluster(t)
	c, _ := SharedCluster()
	t.Logf("private cluster %v started in %v", c.Addrs, c.StartupTime.Round(time.Millisecond))
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sizes []int64
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != ClusterMasters {
		t.Fatalf("%d masters, want %d", len(sizes), ClusterMasters)
	}
	var total int64
	for _, n := range sizes {
		if n == 0 {
			t.Fatalf("a master holds no keys: %v", sizes)
		}
		total += n
	}
	if total != 100 {
		t.Fatalf("masters hold %v keys, want 100 in all", sizes)
	}

	// A subtest cannot take the cluster (and flush it) while its parent holds it.
	t.Run("nested use refused", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		func() {
			defer func() { _ = recover() }()
			NewCluster(ft)
		}()
		if !ft.fatal {
			t.Fatal("nested NewCluster was not refused")
		}
	})
}

func TestNewClusterIsClean(t *testing.T) {
	rdb := privateCluster(t)
	ctx := context.Background()
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		if n, err := node.DBSize(ctx).Result(); err != nil || n != 0 {
			return fmt.Errorf("%s holds %d keys (%v)", node.Options().Addr, n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal bool
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = true
	panic("fatal")
}

func (f *fakeTB) Helper() {}

// MoveSlot hands a slot and its keys to another master; clients follow.
func TestMoveSlot(t *testing.T) {
	rdb := privateCluster(t)
	ctx := context.Background()
	for i := range 150 {
		if err := rdb.Set(ctx, fmt.Sprintf("{moving}:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot := int(rdb.ClusterKeySlot(ctx, "{moving}").Val())
	before, err := rdb.MasterForKey(ctx, "{moving}")
	if err != nil {
		t.Fatal(err)
	}
	from, to, err := MoveSlot(ctx, rdb, slot)
	if err != nil {
		t.Fatal(err)
	}
	if from != before.Options().Addr || to == from {
		t.Fatalf("moved from %s to %s; the slot was on %s", from, to, before.Options().Addr)
	}
	n, err := before.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := before.ClusterCountKeysInSlot(ctx, slot).Result(); keys != 0 {
		t.Fatalf("%d keys left in slot %d on the old owner (dbsize %d)", keys, slot, n)
	}
	for i := range 150 {
		v, err := rdb.Get(ctx, fmt.Sprintf("{moving}:%d", i)).Int()
		if err != nil || v != i {
			t.Fatalf("key %d after the move: %v %v", i, v, err)
		}
	}
}
