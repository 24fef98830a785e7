package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// barrier is the directory the processes of one scale run meet in. Files
// appear whole (written aside, then renamed), so a reader never sees half.
type barrier string

func (b barrier) put(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := filepath.Join(string(b), "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(string(b), name))
}

func (b barrier) get(name string, v any) error {
	data, err := os.ReadFile(filepath.Join(string(b), name))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func (b barrier) has(name string) bool {
	_, err := os.Stat(filepath.Join(string(b), name))
	return err == nil
}

// all reads every file whose name starts with prefix.
func (b barrier) all(prefix string) ([]scaleReady, error) {
	ents, err := os.ReadDir(string(b))
	if err != nil {
		return nil, err
	}
	var out []scaleReady
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		var r scaleReady
		if err := b.get(e.Name(), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// fresh makes sure the directory exists and holds nothing from an earlier
// run, whose "go" would start this run's viewers on the wrong room.
func (b barrier) fresh() error {
	if err := os.MkdirAll(string(b), 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(string(b))
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("barrier directory %s is not empty: use a fresh one per run", b)
	}
	return nil
}

// await polls cond until it holds, ctx ends or limit passes.
func await(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
