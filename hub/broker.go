package hub

import "context"

// Broker carries frames between the hub instances that serve one room.
//
// The hub subscribes a room when its first local member joins and
// unsubscribes it when the last one leaves, and it never calls Subscribe and
// Unsubscribe concurrently for the same room. Publish, Subscribe and
// Unsubscribe may be called concurrently for different rooms, and
// concurrently with Run.
//
// A Broker must hand every frame published to a room back to each instance
// subscribed to that room, including the publisher itself: the hub relies on
// that echo for its own local delivery so no instance delivers a frame twice.
type Broker interface {
	// Publish sends frame to every instance subscribed to room. The broker
	// must not retain frame after Publish returns.
	Publish(ctx context.Context, room string, frame []byte) error
	// Subscribe starts delivery of room's frames to Run's deliver. When it
	// returns nil, frames published after that point are delivered.
	Subscribe(ctx context.Context, room string) error
	// Unsubscribe stops delivery of room's frames.
	Unsubscribe(ctx context.Context, room string) error
	// Run calls deliver for each received frame, one at a time, until ctx is
	// done; it then returns nil. deliver must not retain frame.
	Run(ctx context.Context, deliver func(room string, frame []byte)) error
	// Close releases the broker's resources; Run returns after it.
	Close() error
}
