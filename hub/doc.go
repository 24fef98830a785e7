// Package hub moves JSON frames between rooms and WebSocket connections,
// across server instances.
//
// The hub knows nothing about red packets or money: callers hand it opaque
// frames ([]byte, one JSON document each) and a room name, and it delivers
// them to every connection in that room on every instance; or a user id,
// and it delivers them to every connection of that user.
//
// # Shape
//
// The package follows the gorilla/websocket chat example (the Hub owns room
// state, a Client owns its connection's I/O) and centrifugal/centrifuge (one
// file per concept, a Broker interface with Redis and in-memory
// implementations beside it).
//
//   - hub.go: Hub, Publish, the broker delivery path and fan-out.
//   - publish.go: publishes to a busy room batched into one broker message.
//   - room.go: sharded room membership and the broker subscription lifecycle.
//   - users.go: frames for every connection of one user, in any room, on
//     any instance (PublishUser), over one broker channel all hubs share.
//   - client.go: one connection and its on-demand writer.
//   - reader.go, inframe.go, poller_*.go: its on-demand reader, which
//     parses inbound frames itself, and the poller that waits for input on
//     idle connections.
//   - drain.go: stopping: frames in hand answered, then 1001.
//   - recover.go: a panic serving one connection closes it with 1011.
//   - ping.go: the hub's timekeeper: keepalive pings and write timeouts.
//   - throttle.go: the application's hook to thin out a big room's frames.
//   - presence*.go: online counts shared across instances.
//   - broker*.go: how frames travel between instances;
//     broker_*_history.go and lua/: durable frames, numbered (seq, epoch)
//     and kept in each room's history by the broker.
//   - position.go: Position, and reading it from since= and from frames.
//   - recovery.go: a joiner's catch-up, and repair of a room whose
//     subscription broke or whose seqs jumped.
//   - metrics.go: Prometheus instrumentation.
//
// # Concurrency invariants
//
// Who owns what:
//
//   - A connection's reader is a goroutine that runs while the connection
//     has input, and the only goroutine that calls the Handler for it after
//     OnOpen, one message at a time, so Handler.HandleMessage is never
//     called concurrently for one client. Between frames an idle
//     connection is parked in the hub's poller and has no reader; the
//     poller or the timekeeper starts one by swapping readState.state from
//     parked to reading, so there is never more than one.
//   - A connection's writer is a goroutine started when something is queued
//     for it (a frame, a ping or the close frame) and no writer is running;
//     it writes until nothing is left and exits. Client.writing, under
//     Client.mu, is true exactly while a writer exists, so there is never
//     more than one, and it is the only goroutine that writes data, ping and
//     close frames, in queue order. The exceptions are the close frames
//     gorilla itself writes from the read goroutine (read limit, close
//     handshake reply), which gorilla serialises with its own write lock.
//   - Client.mu guards the queue and the writer's state; it is held only
//     for slice and flag operations, never across I/O, so the timekeeper can
//     take it under a shard read lock.
//   - One timekeeper goroutine per hub (pingLoop, running while the hub has
//     connections) owns Client.nextPing: it asks writers for pings every
//     PingInterval and cuts the socket under a data frame write that has
//     taken longer than WriteTimeout (data frames carry no socket deadline),
//     and of a peer silent for longer than PingInterval+PongTimeout (reads
//     carry none either).
//   - Fan-out never blocks: a frame is offered to each member's bounded queue
//     (Config.SendQueue, a slice that grows on demand, so an idle connection
//     holds no buffer), and a member whose queue is full is evicted instead
//     of slowing the room down.
//   - A frame published to a room is delivered to local members only when the
//     broker hands it back, so every instance (including the publisher)
//     delivers each frame once. A durable frame reaches a connection at most
//     once: each Client remembers the newest seq it was sent (Client.last,
//     under Client.mu) and drops older copies from a catch-up or a repair.
//   - One broker message of a room is fanned out under the room's dmu, as
//     is a repair's catch-up, so a room's frames reach its members in
//     order; while a repair reads the history the room's frames wait in
//     room.held, and other rooms are not held up.
//   - Room membership is guarded by a per-shard lock that is never held across
//     network I/O, nor across a fan-out: a broadcast holds it only to copy
//     the member list. A broker (un)subscription is serialised per room by
//     the room's own lock so joins in other rooms never wait on Redis.
//
// # Encode once, write in batches
//
// A frame received from the broker is framed once (wire.go: the WebSocket
// header and the payload, as they go on the socket) and that one immutable
// copy is shared by every local member's queue.
//
// # Cost per delivery
//
// Most of a delivery's CPU is the write syscall (TestIdleConnectionsLoad
// measures it; BENCHMARKS.md has the figures), so a writer writes every
// frame waiting for its connection in one writev instead of one write per
// frame: frames that reach a connection while its writer is busy (its own
// answer and a room's events, say) go out together in the writer's next
// syscall. gorilla has no such call, so
// the writer writes the ready-made frames to the socket itself (see Client
// for why that cannot tear a frame). A fixed pool of GOMAXPROCS goroutines
// writing for every member in turn was measured and dropped as within
// noise (it saves starting a goroutine per member, but a member whose
// socket buffer is full would stall the pool). Fan-out yields every
// fanoutBatch members so the writers it starts run as it goes: that bounds
// how many writer goroutines exist at once, and so the dead goroutines a big
// room leaves behind after a broadcast.
//
// # Memory per connection
//
// An idle connection costs the Client (with a one-slot queue once a frame
// has been sent), gorilla's Conn (which the hub writes through but never
// reads through, so its read buffer can be the smallest gorilla allows),
// the socket and its entry in the poller: no goroutine, no stack, no read
// buffer. A goroutine's stack only shrinks by half at a GC, and only while
// the goroutine uses under a quarter of it, so a reader blocked in gorilla's
// read path kept the 4 or 8 KiB it grew to while the connection was set up
// (history read, OnOpen) for as long as the connection lived. Whatever
// upgrades a connection in an HTTP handler should call Start there and
// return, with a context that is not the request's: as long as the handler
// runs, net/http pins the hijacked connection's bufio reader and writer, its
// request and its goroutine, and the request's context holds net/http's
// per-connection state. TestIdleConnectionsLoad measures it and fails if an
// idle connection costs a goroutine again or its memory grows far past
// what it is now; BENCHMARKS.md has the figures.
package hub
