package ircd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Names of the two servers of a linked pair.
const (
	LinkedNameA = "one.meshbot.test"
	LinkedNameB = "two.meshbot.test"
)

// LinkSpec returns the spec StartLinked should use given the MESH_IRCD
// spec: that spec when it names InspIRCd (keeping its path), else InspIRCd
// found as usual. Only InspIRCd can be linked by the harness.
func LinkSpec(env Spec) Spec {
	if env.Kind == InspIRCd {
		return env
	}
	return DefaultSpec
}

// StartLinked starts two InspIRCd servers linked with m_spanningtree over
// loopback (a autoconnects to b; each also accepts the link from the other)
// and returns once a client on each server sees the other in LINKS. spec
// must name InspIRCd (see LinkSpec); opts.Port must be 0 and
// opts.ServerName empty (the names are LinkedNameA and LinkedNameB). Stop
// both servers when done. After one restarts, a retries the link on
// InspIRCd's 5-second background timer; WaitLinked tells when it is back.
func StartLinked(ctx context.Context, spec Spec, opts Options) (a, b *Server, err error) {
	if spec.Kind != InspIRCd {
		return nil, nil, fmt.Errorf("linked servers need InspIRCd, not %s", spec.Kind)
	}
	if opts.Port != 0 || opts.ServerName != "" {
		return nil, nil, errors.New("StartLinked picks the ports and server names itself")
	}
	for attempt := 1; ; attempt++ {
		a, b, err = startLinkedOnce(ctx, spec, opts)
		if err == nil || attempt == 3 || !errors.Is(err, errExited) || ctx.Err() != nil {
			return a, b, err
		}
		// A server exited while starting: most likely a port was taken
		// between picking and binding it. Try again with new ports.
	}
}

func startLinkedOnce(ctx context.Context, spec Spec, opts Options) (a, b *Server, err error) {
	ports, err := freePorts(4) // client A, client B, link A, link B
	if err != nil {
		return nil, nil, err
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	dataA := templateData{
		ServerName: LinkedNameA, ServerID: "1MB",
		Link: &linkData{Port: ports[2], PeerName: LinkedNameB, PeerPort: ports[3], Password: password, AutoConnect: true},
	}
	dataB := templateData{
		ServerName: LinkedNameB, ServerID: "2MB",
		Link: &linkData{Port: ports[3], PeerName: LinkedNameA, PeerPort: ports[2], Password: password},
	}
	optsA, optsB := opts, opts
	optsA.Port, optsB.Port = ports[0], ports[1]

	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); a, errA = startServer(ctx, spec, optsA, dataA) }()
	go func() { defer wg.Done(); b, errB = startServer(ctx, spec, optsB, dataB) }()
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		for _, s := range []*Server{a, b} {
			if s != nil {
				_ = s.Stop()
			}
		}
		return nil, nil, err
	}
	if err := WaitLinked(ctx, a, b); err != nil {
		err = fmt.Errorf("%w\n[%s]\n%s\n[%s]\n%s", err, a.Name(), a.logTail(), b.Name(), b.logTail())
		_ = a.Stop()
		_ = b.Stop()
		return nil, nil, err
	}
	return a, b, nil
}

// WaitLinked returns once a client on each server sees every other server
// in LINKS (each wait bounded by the servers' Options.ReadyTimeout and ctx).
func WaitLinked(ctx context.Context, servers ...*Server) error {
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, s := range servers {
		var want []string
		for _, o := range servers {
			if o != s {
				want = append(want, o.Name())
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.waitSees(ctx, want)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitSees polls LINKS on s until it lists every server in want.
func (s *Server) waitSees(ctx context.Context, want []string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	rc, err := dialRaw(ctx, s.Addr())
	if err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	defer rc.quit(ctx)
	if _, err := rc.register(ctx, "links", nil); err != nil {
		return fmt.Errorf("%s: register: %w", s, err)
	}
	var seen []string
	for {
		if err := rc.send(ctx, "LINKS"); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		seen = seen[:0]
		for {
			msg, err := rc.read(ctx)
			if err != nil {
				return fmt.Errorf("%s: waiting for the link to %v (LINKS shows %v): %w", s, want, seen, err)
			}
			if msg.Command == "364" && len(msg.Params) >= 2 { // RPL_LINKS: me server hub :hops info
				seen = append(seen, msg.Params[1])
			}
			if msg.Command == "365" { // RPL_ENDOFLINKS
				break
			}
		}
		missing := false
		for _, w := range want {
			if !slices.Contains(seen, w) {
				missing = true
			}
		}
		if !missing {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: link to %v not up (LINKS shows %v): %w", s, want, seen, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
