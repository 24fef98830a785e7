// Package hub moves JSON frames between rooms and WebSocket connections,
// across server instances.
//
// The hub knows nothing about red packets or money: callers hand it opaque
// frames ([]byte, one JSON document each) and a room name, and it delivers
// them to every connection in that room on every instance.
//
// # Shape
//
// The package follows the gorilla/websocket chat example (the Hub owns room
// state, a Client owns its connection's I/O) and centrifugal/centrifuge (one
// file per concept, a Broker interface with Redis and in-memory
// implementations beside it).
//
//   - hub.go: Hub, Publish, the broker delivery path and fan-out.
//   - room.go: sharded room membership and the broker subscription lifecycle.
//   - client.go: one connection: the read loop and its single writer goroutine.
//   - coalesce.go: throttling of "grabbed" frames in very large rooms.
//   - presence*.go: online counts shared across instances.
//   - broker*.go: how frames travel between instances.
//   - metrics.go: Prometheus instrumentation.
//
// # Concurrency invariants
//
//   - Each connection has exactly one writer goroutine; nothing else writes
//     data frames to it. Close and ping frames go through that goroutine too,
//     except the close frames gorilla itself writes (read limit, close
//     handshake reply), which gorilla documents as safe concurrently.
//   - Reads happen on the goroutine that called Serve, one message at a time,
//     so Handler.HandleMessage is never called concurrently for one client.
//   - Fan-out never blocks: a frame is offered to each member's bounded queue
//     with a non-blocking send, and a member whose queue is full is evicted
//     instead of slowing the room down.
//   - A frame published to a room is delivered to local members only when the
//     broker hands it back, so every instance (including the publisher)
//     delivers each frame exactly once.
//   - Room membership is guarded by a per-shard lock that is never held across
//     network I/O; a broker (un)subscription is serialised per room by the
//     room's own lock so joins in other rooms never wait on Redis.
//
// # Encode once
//
// A frame received from the broker becomes a single websocket.PreparedMessage
// shared by every local member's queue, so the frame header is built once per
// room rather than once per connection.
//
// Per-connection buffers are the caller's business: the HTTP layer that
// upgrades connections should set websocket.Upgrader.WriteBufferPool (for
// example a sync.Pool) so idle connections do not each pin a write buffer;
// prepared messages bypass that buffer, the rest of the writes use it.
package hub
