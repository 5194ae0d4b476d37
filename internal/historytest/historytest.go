// Package historytest runs history recorders against real servers for the
// tests of history, history/recorder and the end-to-end tests: test meshes
// in each trust mode, recorders on stores of their own, and a proxy that
// cuts one node's connection while the rest of the mesh stays up.
package historytest

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/internal/ircd"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// Mesh is one test mesh: a namespace on a server, in one trust mode.
type Mesh struct {
	Srv  *ircd.Server
	NS   string
	Mode *meshtest.Mode
}

// NewMesh returns the mesh ns on srv in mode m (nil: unsigned).
func NewMesh(srv *ircd.Server, ns string, m *meshtest.Mode) *Mesh {
	if m == nil {
		m = meshtest.NewMode(meshtest.Unsigned)
	}
	return &Mesh{Srv: srv, NS: ns, Mode: m}
}

// Instance returns an instance id for name, unique to the mesh's mode:
// nicks are global to a server, so meshes of different modes sharing one
// would otherwise collide (and a node whose nick collides picks another,
// random instance id).
func (m *Mesh) Instance(name string) string {
	switch m.Mode.Name {
	case meshtest.HMAC:
		return name + "h"
	case meshtest.Ed25519Required:
		return name + "e"
	case meshtest.Encrypted:
		return name + "c"
	}
	return name
}

// Config returns the config of a node of service on the mesh, with the
// mode's keys for that service.
func (m *Mesh) Config(service string) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.Server = m.Srv.Addr()
	cfg.Namespace = m.NS
	cfg.Service = service
	m.Mode.Apply(&cfg)
	return cfg
}

// Channel returns topic's channel on the mesh, lower case (as stores
// keep it).
func (m *Mesh) Channel(topic string) string { return mesh.Channel(m.NS, topic) }

// ForEachMode runs fn as a parallel subtest per trust mode
// (meshtest.ForEachMode), all on srv, each on a namespace of its own
// (prefix-MODE) so that the modes do not see each other's lines. The
// server, started by the caller's test, outlives the subtests.
func ForEachMode(t *testing.T, srv *ircd.Server, prefix string, fn func(t *testing.T, m *Mesh)) {
	t.Helper()
	meshtest.ForEachMode(t, func(t *testing.T, mode *meshtest.Mode) {
		t.Parallel()
		fn(t, NewMesh(srv, prefix+"-"+mode.Name, mode))
	})
}

// Recorder is a recorder run by a test on a store of its own.
type Recorder struct {
	*recorder.Recorder
	Store *store.Store
	Node  *mesh.Node
	stop  func()
}

// StartRecorder connects a node with cfg (its service should be
// history.Service) and runs a recorder with rcfg (Rescan 200 ms unless
// set) on the store at path, created if missing. Stop, or the end of the
// test, stops the recorder and closes its node and store.
func StartRecorder(t testing.TB, cfg mesh.Config, path string, rcfg recorder.Config) *Recorder {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), meshtest.ConnectTimeout)
	n, err := mesh.Connect(ctx, cfg)
	cancel()
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if rcfg.Rescan == 0 {
		rcfg.Rescan = 200 * time.Millisecond
	}
	rec := recorder.New(n, st, rcfg)
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Run(rctx) }()
	r := &Recorder{Recorder: rec, Store: st, Node: n}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			rcancel()
			<-done
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			_ = n.Close(cctx)
			_ = st.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// Stop stops the recorder and closes its node and store (once).
func (r *Recorder) Stop() { r.stop() }

// StartRecorderIn runs recorder name of m (instance m.Instance(name)),
// with the mode's keys, on the store name.db in dir, connected to addr
// ("": the mesh's server) and reconnecting fast.
func (m *Mesh) StartRecorderIn(t testing.TB, dir, addr, name string, rcfg recorder.Config) *Recorder {
	t.Helper()
	cfg := m.Config(history.Service)
	cfg.Instance = m.Instance(name)
	if addr != "" {
		cfg.Server = addr
	}
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	return StartRecorder(t, cfg, filepath.Join(dir, name+".db"), rcfg)
}

// WaitTopic waits until rec is in topic's channel (20 s at most).
func WaitTopic(t testing.TB, rec *recorder.Recorder, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(rec.Topics(), topic) {
		if time.Now().After(deadline) {
			t.Fatalf("the recorder did not find %s in 20 s (it records %v)", topic, rec.Topics())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitConnected waits until n's connection is up (or down, with !up).
func WaitConnected(t testing.TB, n *mesh.Node, up bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n.Connected() != up {
		if time.Now().After(deadline) {
			t.Fatalf("the node's connection is not up=%v after 20 s", up)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StoredIDs lists the msgids of channel's lines in st, in the store's
// order.
func StoredIDs(t testing.TB, st *store.Store, channel string) []string {
	t.Helper()
	var out []string
	if err := st.Scan(channel, 1, func(r store.Record) bool { out = append(out, r.MsgID); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}
