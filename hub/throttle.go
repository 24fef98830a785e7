package hub

// Throttle thins out one room's frames before they reach its local members:
// the application's way to send fewer frames to a big room than it
// publishes (web sends a packet's latest remaining count a few times a
// second instead of every grab). The hub never looks inside a frame; a
// Throttle may, since it belongs to whoever defines the frames.
//
// The hub makes one Throttle per local room (Config.NewThrottle) and calls
// Take from the broker's delivery goroutine, one frame at a time, in the
// order the room's frames arrive.
type Throttle interface {
	// Take is offered each frame delivered to the room, with the room's
	// local member count, before fan-out. It reports whether it took the
	// frame over, in which case the hub does not deliver it. A Throttle
	// delivers frames of its own, now or later, through the send function
	// it was made with; frames it sends before Take returns reach the
	// members before the frame being offered.
	Take(frame []byte, members int) bool
}

// NewThrottleFunc makes the Throttle of one local room; send fans a frame out
// to that room's local members at once.
type NewThrottleFunc func(room string, send func(frame []byte)) Throttle
