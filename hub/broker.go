package hub

import (
	"context"
	"errors"
)

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
	// PublishUser sends frame to every running instance, for the
	// connections of user user (see users.go: one channel shared by every
	// user, which each instance subscribes to while Run runs). The broker
	// must not retain frame after PublishUser returns.
	PublishUser(ctx context.Context, user string, frame []byte) error
	// Run hands r every received message and every re-established
	// subscription, one call at a time, until ctx is done; it then returns
	// nil. While it runs it also receives the user channel, whose frames
	// go to r.ReceiveUser.
	Run(ctx context.Context, r Receiver) error
	// Close releases the broker's resources; Run returns after it.
	Close() error

	// PublishFrames sends frames to room as one message, in order, like
	// Publish with the frames joined by newlines. Each durable frame (a JSON
	// object) is numbered with the room's next seq, written as
	// {"seq":N,"epoch":"E", followed by the rest of the object, and
	// appended to the room's history (and, with Keep, to its recent frames)
	// in the same atomic step as the publish, so history and delivery can
	// never disagree. It returns the position of the last durable frame;
	// the others are numbered consecutively before it.
	PublishFrames(ctx context.Context, room string, frames []Frame) (Position, error)
	// Recover returns room's durable frames after since, oldest first, and
	// room's current position, read atomically. When the history cannot
	// cover since (trimmed by length or age, expired, another epoch, since
	// ahead of the room, or more than limit frames missed) it returns
	// ErrHistoryGone with the current position and no frames.
	Recover(ctx context.Context, room string, since Position, limit int) ([][]byte, Position, error)
	// Recent returns room's kept frames (see Frame.Keep), oldest first, and
	// room's current position, read atomically.
	Recent(ctx context.Context, room string) ([][]byte, Position, error)
	// Position returns room's current position.
	//
	// Recover, Recent and Position give a room without an epoch a fresh one
	// at seq 0, so every position a client is told has an epoch.
	Position(ctx context.Context, room string) (Position, error)
}

// Frame is one frame of a PublishFrames call.
type Frame struct {
	// Data is one JSON document; a durable frame's must be a JSON object.
	Data []byte
	// Durable frames get a seq and go into the room's history.
	Durable bool
	// Keep, for a durable frame, also puts it into the room's list of
	// recent frames that every joiner who did not recover receives.
	Keep bool
}

// ErrHistoryGone is returned by Broker.Recover when the room's history no
// longer covers the position asked for: the client must resync.
var ErrHistoryGone = errors.New("hub: recovery failed: history does not cover the position")

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
	// ReceiveUser is one frame published with PublishUser for user. It
	// must not retain frame.
	ReceiveUser(user string, frame []byte)
}

// ReceiverFunc adapts a function to Receiver; Resubscribed and ReceiveUser
// do nothing.
type ReceiverFunc func(room string, msg []byte)

// Receive implements Receiver.
func (f ReceiverFunc) Receive(room string, msg []byte) { f(room, msg) }

// Resubscribed implements Receiver.
func (ReceiverFunc) Resubscribed(string) {}

// ReceiveUser implements Receiver.
func (ReceiverFunc) ReceiveUser(string, []byte) {}
