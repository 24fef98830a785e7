package ledger

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/hongbao-dev/hongbao/internal/pgtest"
)

var wantMigrations = []string{"0001_init", "0002_packets", "0003_idempotency", "0004_refused_claims", "0005_packet_kinds", "0006_webhooks", "0007_packets_refunded"}

func TestMigrateAppliesOnce(t *testing.T) {
	l := openLedger(t, pgtest.New(t))
	ctx := context.Background()
	applied, err := l.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, wantMigrations) {
		t.Fatalf("first Migrate applied %v, want %v", applied, wantMigrations)
	}
	again, err := l.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %v, err %v; want nothing", again, err)
	}
	if n := count(t, l, "select count(*) from schema_migrations"); n != len(wantMigrations) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(wantMigrations))
	}
	if n := count(t, l, "select count(*) from accounts where id = 'funding'"); n != 1 {
		t.Fatalf("%d funding accounts, want 1", n)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.New(t)
	ledgers := []*Ledger{openLedger(t, url), openLedger(t, url), openLedger(t, url)}
	var wg sync.WaitGroup
	results := make([][]string, len(ledgers))
	errs := make([]error, len(ledgers))
	for i, l := range ledgers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = l.Migrate(context.Background())
		}()
	}
	wg.Wait()
	var all []string
	for i := range ledgers {
		if errs[i] != nil {
			t.Fatalf("Migrate %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	sort.Strings(all)
	if !slices.Equal(all, wantMigrations) {
		t.Fatalf("together the Migrates applied %v, want each of %v once", all, wantMigrations)
	}
}

func TestMigrationsAreOrdered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Fatalf("migration %d is %s: versions must run 1, 2, 3...", i, m.name)
		}
	}
}
