package web

import (
	"context"
	"time"

	"github.com/hongbao-dev/hongbao/hub"
)

// republishFor bounds how long a durable event whose publish failed (Redis
// unreachable) is retried in the background. Late, the event still reaches
// every member once, numbered after what came before it; dropped, it would
// be a hole no client could see, since it never got a seq.
const republishFor = time.Minute

// republish retries a durable event in the background, with backoff, until
// it is published, republishFor passes or the App closes.
func (a *App) republish(room string, frame []byte, opts hub.DurableOptions) {
	a.retries.Add(1)
	go func() {
		defer a.retries.Done()
		ctx, cancel := context.WithTimeout(a.bg, republishFor)
		defer cancel()
		wait := 100 * time.Millisecond
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				a.log.Error("durable event dropped: it could not be published", "room", room, "for", republishFor)
				return
			case <-t.C:
			}
			if _, err := a.hub.PublishDurable(ctx, room, frame, opts); err == nil {
				a.log.Info("durable event published late", "room", room)
				return
			}
			wait = min(2*wait, 5*time.Second)
		}
	}()
}
