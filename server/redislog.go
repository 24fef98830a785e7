package main

import (
	"context"
	"fmt"
	"log/slog"
)

// redisLog routes go-redis's own log lines (failed dials, dropped pub/sub
// messages) into the server's slog logger, so they carry its level and
// format instead of going to stderr as plain text.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
