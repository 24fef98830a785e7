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
	// Subscribe starts delivery of room's frames to Run's Receiver. When it
	// returns nil, frames published after that point are delivered.
	Subscribe(ctx context.Context, room string) error
	// Unsubscribe stops delivery of room's frames.
	Unsubscribe(ctx context.Context, room string) error
	// Run hands r every received message and every re-established
	// subscription, one call at a time, until ctx is done; it then returns
	// nil.
	Run(ctx context.Context, r Receiver) error
	// Close releases the broker's resources; Run returns after it.
	Close() error
}

// Receiver takes what a Broker hands back to its hub. The broker calls it
// from Run's goroutine only, one call at a time, so for one room a
// Resubscribed is ordered with that room's messages.
type Receiver interface {
	// Receive is one broker message for room. It must not retain msg.
	Receive(room string, msg []byte)
	// Resubscribed reports that room's subscription was lost (the
	// connection dropped, Redis restarted or cut a lagging subscriber, the
	// room's cluster slot moved) and is in place again: messages published
	// in between were never received, and the receiver must find out what
	// it missed.
	Resubscribed(room string)
}

// ReceiverFunc adapts a function to Receiver; Resubscribed does nothing.
type ReceiverFunc func(room string, msg []byte)

// Receive implements Receiver.
func (f ReceiverFunc) Receive(room string, msg []byte) { f(room, msg) }

// Resubscribed implements Receiver.
func (ReceiverFunc) Resubscribed(string) {}
