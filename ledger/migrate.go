package ledger

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLock is the pg_advisory_xact_lock key that serialises Migrate
// across every process sharing the database.
const migrateLock int64 = 0x68_6f_6e_67_62_61_6f // "hongbao"

type migration struct {
	version int
	name    string // file name without .sql, e.g. 0001_init
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are <version>_<name>.sql; versions are unique.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, file := range names {
		base := strings.TrimSuffix(path.Base(file), ".sql")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("ledger: migration %s: name must start with a positive version", file)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("ledger: migrations %s and %s share version %d", other, base, v)
		}
		seen[v] = base
		sql, err := migrationFiles.ReadFile(file)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(sql)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies the migrations this database lacks, in version order, each
// in its own transaction, and returns the names of those it applied (none
// when the schema is current). Every transaction first takes one advisory
// lock, so instances starting together apply each migration exactly once:
// the others wait, then find it applied.
func (l *Ledger) Migrate(ctx context.Context) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		did, err := l.apply(ctx, m)
		if err != nil {
			return applied, fmt.Errorf("ledger: migration %s: %w", m.name, err)
		}
		if did {
			l.log.Info("ledger: migration applied", "migration", m.name)
			applied = append(applied, m.name)
		}
	}
	return applied, nil
}

// apply runs m unless schema_migrations already records it.
func (l *Ledger) apply(ctx context.Context, m migration) (did bool, err error) {
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `create table if not exists schema_migrations (
			version int primary key, name text not null, applied_at timestamptz not null default now())`); err != nil {
			return err
		}
		var done bool
		if err := tx.QueryRow(ctx, "select exists (select 1 from schema_migrations where version = $1)", m.version).Scan(&done); err != nil || done {
			return err
		}
		// No arguments: the simple protocol, which runs a file of statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "insert into schema_migrations (version, name) values ($1, $2)", m.version, m.name); err != nil {
			return err
		}
		did = true
		return nil
	})
	return did, err
}
