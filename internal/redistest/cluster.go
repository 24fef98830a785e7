package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterMasters is how many masters the private cluster has.
const ClusterMasters = 3

// Cluster is a Redis Cluster that a test binary shares between its tests:
// the one named by REDIS_CLUSTER_URL, or three private redis-server processes
// on free loopback ports, joined into one cluster of masters without
// replicas. Main stops the private cluster after the tests.
//
// A Redis Cluster has a single database, so a test cannot get a keyspace of
// its own the way New gives one: NewCluster flushes every master instead.
// Tests that call NewCluster therefore must not run in parallel with each
// other (no t.Parallel, no concurrent subtests); NewCluster fails the second
// of two overlapping tests rather than let one wipe the other's keys.
//
// REDIS_CLUSTER_URL is a comma-separated list of seed nodes, each host:port
// or redis://[user:password@]host:port (rediss:// for TLS). Every test
// flushes that cluster: name a throwaway one, and let only one test binary
// use it at a time (go test -p 1 when several packages use it).
type Cluster struct {
	// Addrs are the seed nodes, host:port.
	Addrs []string
	// Private reports whether this process started the cluster.
	Private bool
	// StartupTime is how long starting and forming the private cluster took.
	StartupTime time.Duration

	base  redis.ClusterOptions
	dir   string
	nodes []*clusterNode

	mu     sync.Mutex
	holder string // the test using the cluster now, "" when free
}

type clusterNode struct {
	port, busPort int
	cmd           *exec.Cmd
	exited        chan struct{}
}

func (n *clusterNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

var (
	clusterOnce   sync.Once
	sharedCluster *Cluster
	clusterErr    error
)

// SharedCluster returns the Redis Cluster for this test binary, starting it on
// first use. Main stops it.
func SharedCluster() (*Cluster, error) {
	clusterOnce.Do(func() { sharedCluster, clusterErr = startCluster() })
	return sharedCluster, clusterErr
}

// stopClusters stops the private cluster, if this binary started one. Main
// calls it after the tests.
func stopClusters() {
	if sharedCluster != nil {
		sharedCluster.Stop()
	}
}

// NewCluster gives t a client for the shared Redis Cluster with every master
// flushed; the client is closed and the cluster released when t ends. It fails
// t with install instructions when there is no Redis to be had. See Cluster
// for why tests using it must not run in parallel.
func NewCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c, err := SharedCluster()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c.mu.Lock()
	holder := c.holder
	if holder == "" {
		c.holder = t.Name()
	}
	c.mu.Unlock()
	if holder != "" {
		t.Fatalf("redistest: the Redis Cluster is in use by %s: tests calling NewCluster must not run in parallel or nest", holder)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		c.holder = ""
		c.mu.Unlock()
	})

	opt := c.base
	opt.Addrs = c.Addrs
	rdb := redis.NewClusterClient(&opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		return node.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("redistest: flush cluster %s: %v", strings.Join(c.Addrs, ","), err)
	}
	return rdb
}

func startCluster() (*Cluster, error) {
	if url := os.Getenv("REDIS_CLUSTER_URL"); url != "" {
		return externalCluster(url)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found and REDIS_CLUSTER_URL not set: %s", installHint)
	}
	c := &Cluster{Private: true}
	began := time.Now()
	if err := c.launch(bin); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.form(); err != nil {
		err = fmt.Errorf("%w (node logs in %s)", err, c.dir)
		c.kill() // keep the logs for whoever reads the error
		return nil, err
	}
	c.StartupTime = time.Since(began)
	return c, nil
}

func externalCluster(url string) (*Cluster, error) {
	c := &Cluster{}
	for _, seed := range strings.Split(url, ",") {
		seed = strings.TrimSpace(seed)
		if seed == "" {
			continue
		}
		if !strings.Contains(seed, "://") {
			c.Addrs = append(c.Addrs, seed)
			continue
		}
		o, err := redis.ParseURL(seed)
		if err != nil {
			return nil, fmt.Errorf("REDIS_CLUSTER_URL: %w", err)
		}
		c.Addrs = append(c.Addrs, o.Addr)
		c.base.Username, c.base.Password, c.base.TLSConfig = o.Username, o.Password, o.TLSConfig
	}
	if len(c.Addrs) == 0 {
		return nil, fmt.Errorf("REDIS_CLUSTER_URL names no seed node")
	}
	return c, nil
}

// launch starts the nodes, picking new ports for a node whose ports were taken
// between choosing and binding them.
func (c *Cluster) launch(bin string) error {
	var err error
	c.dir, err = os.MkdirTemp("", "hongbao-redis-cluster-")
	if err != nil {
		return err
	}
	for i := 0; i < ClusterMasters; i++ {
		var n *clusterNode
		for attempt := 0; ; attempt++ {
			n, err = c.startNode(bin)
			if err == nil || attempt == 2 {
				break
			}
		}
		if err != nil {
			return err
		}
		c.nodes = append(c.nodes, n)
		c.Addrs = append(c.Addrs, n.addr())
	}
	return nil
}

func (c *Cluster) startNode(bin string) (*clusterNode, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	n := &clusterNode{port: ports[0], busPort: ports[1], exited: make(chan struct{})}
	p := strconv.Itoa(n.port)
	// The bus port is chosen explicitly: the default, port+10000, may be
	// taken or above 65535 for a port from the ephemeral range.
	n.cmd = exec.Command(bin,
		"--port", p, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.busPort),
		"--cluster-config-file", filepath.Join(c.dir, "nodes-"+p+".conf"),
		"--cluster-node-timeout", "5000",
		"--save", "", "--appendonly", "no",
		"--dir", c.dir, "--logfile", filepath.Join(c.dir, "redis-"+p+".log"),
	)
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w (%s)", err, installHint)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	ready := make(chan error, 1)
	go func() { ready <- waitReady(n.addr(), 10*time.Second) }()
	select {
	case err := <-ready:
		if err != nil {
			n.stop()
			return nil, err
		}
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("redis-server on port %s exited at startup (is it built with cluster support? see %s)",
			p, filepath.Join(c.dir, "redis-"+p+".log"))
	}
}

// form joins the nodes into one cluster, as redis-cli --cluster create does:
// each node takes its own config epoch and an even share of the 16384 slots,
// the first node meets the others, and gossip does the rest.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, rc := range clients {
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := rc.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("cluster set-config-epoch on %s: %w", c.nodes[i].addr(), err)
		}
		if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("cluster addslotsrange %d %d on %s: %w", lo, hi, c.nodes[i].addr(), err)
		}
	}
	for _, n := range c.nodes[1:] {
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort).Err(); err != nil {
			return fmt.Errorf("cluster meet %s: %w", n.addr(), err)
		}
	}
	// Ready when every node says ok and maps all slots to all masters, so a
	// client may load the slot map from any of them.
	var last string
	for {
		last = ""
		for i, rc := range clients {
			if why := nodeNotReady(ctx, rc, len(clients)); why != "" {
				last = c.nodes[i].addr() + ": " + why
				break
			}
		}
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster not ready after 20s: %s", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nodeNotReady says why a node is not ready yet, or "" when it is.
func nodeNotReady(ctx context.Context, rc *redis.Client, masters int) string {
	info, err := rc.ClusterInfo(ctx).Result()
	if err != nil {
		return err.Error()
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return "cluster_state is not ok"
	}
	if !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r\n") {
		return "does not know every node yet"
	}
	ranges, err := rc.ClusterSlots(ctx).Result()
	if err != nil {
		return err.Error()
	}
	if len(ranges) != masters {
		return fmt.Sprintf("maps slots to %d nodes", len(ranges))
	}
	return ""
}

// Stop ends a private cluster and removes its directory.
func (c *Cluster) Stop() {
	if !c.Private {
		return
	}
	c.kill()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *Cluster) kill() {
	for _, n := range c.nodes {
		n.stop()
	}
	c.nodes = nil
}

func (n *clusterNode) stop() {
	if n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
	}
	<-n.exited
}

// freePorts returns k distinct free loopback ports, holding each until all
// are chosen so that the kernel cannot hand out the same one twice.
func freePorts(k int) ([]int, error) {
	ports := make([]int, 0, k)
	var errs []error
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			errs = append(errs, err)
			break
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, errors.Join(errs...)
}

// MoveSlot migrates slot, keys and all, from the master that serves it to
// another master, the way redis-cli --cluster reshard does: IMPORTING on the
// target, MIGRATING on the source, MIGRATE of the slot's keys in batches,
// then SETSLOT NODE on the target, the source and every other master. It
// returns once every master maps the slot to its new owner, and reports the
// source and target addresses (host:port).
func MoveSlot(ctx context.Context, rdb *redis.ClusterClient, slot int) (from, to string, err error) {
	masters, err := clusterMasters(ctx, rdb)
	if err != nil {
		return "", "", err
	}
	var src, dst *slotOwner
	for _, m := range masters {
		if m.serves(slot) {
			src = m
		}
	}
	if src == nil {
		return "", "", fmt.Errorf("move slot %d: no master serves it", slot)
	}
	for _, m := range masters {
		if m != src {
			dst = m
			break
		}
	}
	if dst == nil {
		return "", "", fmt.Errorf("move slot %d: no other master", slot)
	}
	if err := src.migrate(ctx, dst, slot); err != nil {
		return "", "", fmt.Errorf("move slot %d from %s to %s: %w", slot, src.addr, dst.addr, err)
	}
	for _, m := range append([]*slotOwner{dst, src}, others(masters, src, dst)...) {
		if err := m.rc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dst.id).Err(); err != nil {
			return "", "", fmt.Errorf("move slot %d: setslot node on %s: %w", slot, m.addr, err)
		}
	}
	for {
		agreed := true
		for _, m := range masters {
			owner, err := slotOwnerAddr(ctx, m.rc, slot)
			if err != nil {
				return "", "", err
			}
			agreed = agreed && owner == dst.addr
		}
		if agreed {
			return src.addr, dst.addr, nil
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("move slot %d: masters do not agree on its owner: %w", slot, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// slotOwner is one master as MoveSlot sees it.
type slotOwner struct {
	addr, id string
	rc       *redis.Client
	ranges   [][2]int64
}

func (m *slotOwner) serves(slot int) bool {
	for _, r := range m.ranges {
		if int64(slot) >= r[0] && int64(slot) <= r[1] {
			return true
		}
	}
	return false
}

// migrate moves slot's keys from m to dst, leaving both nodes in the
// MIGRATING/IMPORTING state that SETSLOT NODE then ends.
func (m *slotOwner) migrate(ctx context.Context, dst *slotOwner, slot int) error {
	if err := dst.rc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", m.id).Err(); err != nil {
		return fmt.Errorf("setslot importing: %w", err)
	}
	if err := m.rc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id).Err(); err != nil {
		return fmt.Errorf("setslot migrating: %w", err)
	}
	host, port, err := net.SplitHostPort(dst.addr)
	if err != nil {
		return err
	}
	for {
		keys, err := m.rc.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			return fmt.Errorf("getkeysinslot: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := m.rc.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("migrate %d keys: %w", len(keys), err)
		}
	}
}

// clusterMasters lists the masters with their ids and slot ranges. The
// clients come from rdb and must not be closed.
func clusterMasters(ctx context.Context, rdb *redis.ClusterClient) ([]*slotOwner, error) {
	var mu sync.Mutex
	var out []*slotOwner
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, rc *redis.Client) error {
		id, err := rc.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("cluster myid on %s: %w", rc.Options().Addr, err)
		}
		mu.Lock()
		out = append(out, &slotOwner{addr: rc.Options().Addr, id: id, rc: rc})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slots, err := out[0].rc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	for _, s := range slots {
		for _, m := range out {
			if len(s.Nodes) > 0 && s.Nodes[0].ID == m.id {
				m.ranges = append(m.ranges, [2]int64{int64(s.Start), int64(s.End)})
			}
		}
	}
	slices.SortFunc(out, func(a, b *slotOwner) int { return strings.Compare(a.addr, b.addr) })
	return out, nil
}

func others(all []*slotOwner, not ...*slotOwner) []*slotOwner {
	var out []*slotOwner
	for _, m := range all {
		if !slices.Contains(not, m) {
			out = append(out, m)
		}
	}
	return out
}

// slotOwnerAddr is the address of the master that rc maps slot to.
func slotOwnerAddr(ctx context.Context, rc *redis.Client, slot int) (string, error) {
	slots, err := rc.ClusterSlots(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("cluster slots on %s: %w", rc.Options().Addr, err)
	}
	for _, s := range slots {
		if slot >= s.Start && slot <= s.End && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", nil
}
