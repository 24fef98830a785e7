package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connectTo(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func tables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"select table_name from information_schema.tables where table_schema not in ('pg_catalog', 'information_schema') order by 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestNewDatabasesAreDistinctAndEmpty(t *testing.T) {
	urlA, urlB := New(t), New(t)
	if urlA == urlB {
		t.Fatalf("New returned %s twice", urlA)
	}
	a, b := connectTo(t, urlA), connectTo(t, urlB)
	ctx := context.Background()
	var nameA, nameB string
	if err := a.QueryRow(ctx, "select current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "select current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both URLs reach database %s", nameA)
	}
	for _, c := range []*pgx.Conn{a, b} {
		if got := tables(t, c); len(got) != 0 {
			t.Fatalf("fresh database has tables %v", got)
		}
	}

	if _, err := a.Exec(ctx, "create table only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, a); len(got) != 1 || got[0] != "only_in_a" {
		t.Fatalf("database A tables = %v, want [only_in_a]", got)
	}
	if got := tables(t, b); len(got) != 0 {
		t.Fatalf("table created in A shows in B: %v", got)
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	var conn *pgx.Conn
	t.Run("user", func(t *testing.T) {
		url := New(t)
		var err error
		if conn, err = pgx.Connect(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		// conn stays open past this test's end: the drop must close it.
		if err := conn.QueryRow(context.Background(), "select current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	if conn != nil {
		defer conn.Close(context.Background())
	}
	s, err := sharedServer()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.admin.QueryRow(context.Background(), "select count(*) from pg_database where datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestVersionOrder(t *testing.T) {
	dirs := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/10/bin", "/usr/lib/postgresql/15/bin"}
	for i := 0; i+1 < len(dirs); i++ {
		if !versionLess(dirs[i], dirs[i+1]) || versionLess(dirs[i+1], dirs[i]) {
			t.Fatalf("want %s < %s", dirs[i], dirs[i+1])
		}
	}
}
