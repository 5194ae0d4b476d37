package bench

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/meshbot/meshbot/mesh"
)

// IOTimeout bounds connecting, registering, joining and forming a group,
// and how long a measurement waits for what was sent to arrive after its
// sender stopped.
const IOTimeout = 30 * time.Second

// Limits of a workload.
const (
	MaxSize = 256 << 10 // bytes of one payload
	// RawText is the most text a raw line carries: a larger payload is sent
	// raw as several lines (what meshbot does with fragments).
	RawText = 400
)

// ErrInvalid is wrapped by the errors of a workload that cannot run.
var ErrInvalid = errors.New("bench: invalid workload")

// Fanout is a publish/subscribe workload: Pubs publishers send Msgs
// messages of Size bytes between them (as many each, give or take one) to
// Subs subscribers. Multicast: every subscriber gets every message.
// Anycast: the subscribers are workers of one group and each message is
// handled by one of them. A measurement stops once every message arrived,
// or Duration (when set) after it started, whichever comes first.
type Fanout struct {
	Pubs, Subs, Size, Msgs int
	Anycast                bool
	Duration               time.Duration
}

// Name says what the workload is, e.g. "pub/sub 1→3 multicast, 200 B".
func (f Fanout) Name() string {
	mode := "multicast"
	if f.Anycast {
		mode = "anycast"
	}
	return fmt.Sprintf("pub/sub %d→%d %s, %s", f.Pubs, f.Subs, mode, sizeName(f.Size))
}

// Validate reports what is wrong with f, wrapping ErrInvalid.
func (f Fanout) Validate() error {
	switch {
	case f.Pubs < 1 || f.Subs < 1:
		return fmt.Errorf("%w: %d publishers and %d subscribers: at least one each", ErrInvalid, f.Pubs, f.Subs)
	case f.Size < 1 || f.Size > MaxSize:
		return fmt.Errorf("%w: size %d: 1 to %d bytes", ErrInvalid, f.Size, MaxSize)
	case f.Msgs < f.Pubs:
		return fmt.Errorf("%w: %d messages for %d publishers: at least one each", ErrInvalid, f.Msgs, f.Pubs)
	case f.Duration < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalid)
	}
	return nil
}

// share is how many of the Msgs messages publisher i sends.
func (f Fanout) share(i int) int {
	n := f.Msgs / f.Pubs
	if i < f.Msgs%f.Pubs {
		n++
	}
	return n
}

// Requests is a request/response workload: one client keeps Outstanding
// requests of Size bytes in flight to one server that echoes them, Count
// requests in all, or for Duration (when set), whichever ends first.
type Requests struct {
	Outstanding, Size, Count int
	Duration                 time.Duration
}

// Name says what the workload is, e.g. "req/resp, 16 outstanding, 200 B".
func (r Requests) Name() string {
	return fmt.Sprintf("req/resp, %d outstanding, %s", r.Outstanding, sizeName(r.Size))
}

// Validate reports what is wrong with r, wrapping ErrInvalid.
func (r Requests) Validate() error {
	switch {
	case r.Outstanding < 1:
		return fmt.Errorf("%w: %d outstanding: at least 1", ErrInvalid, r.Outstanding)
	case r.Size < 1 || r.Size > MaxSize:
		return fmt.Errorf("%w: size %d: 1 to %d bytes", ErrInvalid, r.Size, MaxSize)
	case r.Count < r.Outstanding:
		return fmt.Errorf("%w: %d requests with %d outstanding: at least one each", ErrInvalid, r.Count, r.Outstanding)
	case r.Duration < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalid)
	}
	return nil
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// Env is the IRC server a run measures and how to reach it.
type Env struct {
	// Server is host:port; TLS, when set, is used by the raw clients (a
	// node gets its own from Node).
	Server string
	TLS    *tls.Config
	// Node returns the configuration of a node of service (Server,
	// Namespace, TLS, SASL, logger set): the bench sets only Service and
	// queue bounds. nil: mesh.DefaultConfig with Server and the namespace
	// "bench".
	Node func(service string) mesh.Config
}

func (e Env) node(service string) mesh.Config {
	if e.Node != nil {
		cfg := e.Node(service)
		cfg.Service = service
		return cfg
	}
	cfg := mesh.DefaultConfig()
	cfg.Server = e.Server
	cfg.Namespace = "bench"
	cfg.Service = service
	cfg.AllowUnsigned = true
	return cfg
}

// runID is a short random id that keeps the channels, topics and services
// of one run apart from another's on the same server.
func runID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
