package history_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/recorder"
	"github.com/meshbot/meshbot/internal/historytest"
	"github.com/meshbot/meshbot/internal/ircd/ircdtest"
	"github.com/meshbot/meshbot/internal/meshtest"
	"github.com/meshbot/meshbot/mesh"
)

// TestRecorderWithoutKeys: in a signed mesh, a recorder started without
// the mesh's keys records the lines but cannot serve them. Nothing is
// lost silently: the recorder counts the lines it cannot verify
// (Unverified, logged as an error), and readers fail with an error that
// says what is wrong.
//
// ed25519-required: readers refuse the recorder's unsigned heartbeats,
// so it is present but never a verified member; Replay and the
// committed-offset lookup fail with ErrUnverifiedRecorder naming it and
// saying that a recorder needs the mesh's keys. (A server with CHATHISTORY
// serves the replay instead: then every event arrives from there.)
//
// hmac, in a mesh moving to signatures (AllowUnsigned: a signing node
// otherwise requires signatures, as in ed25519-required): readers accept
// the unsigned heartbeats, but the recorder cannot verify their signed
// requests and never answers: the request's timeout says that a recorder
// lacking the mesh's keys is one cause.
func TestRecorderWithoutKeys(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	for _, mode := range []string{meshtest.Ed25519Required, meshtest.HMAC} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			m := historytest.NewMesh(srv, "nk-"+mode, meshtest.NewMode(mode))
			rcfg := m.Config(history.Service)
			rcfg.Instance = m.Instance("keyless")
			rcfg.Signer, rcfg.Keys, rcfg.RequireSigned = nil, nil, false
			rec := historytest.StartRecorder(t, rcfg, t.TempDir()+"/h.db", recorder.Config{})
			pcfg, qcfg := m.Config("orders"), m.Config("reader")
			pcfg.AllowUnsigned = mode == meshtest.HMAC
			qcfg.AllowUnsigned = mode == meshtest.HMAC
			nodes := meshtest.ConnectAll(t, pcfg, qcfg)
			pub, reader := nodes[0], nodes[1]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := pub.Publish(ctx, "orders", []byte("warm-up")); err != nil {
				t.Fatal(err)
			}
			historytest.WaitTopic(t, rec.Recorder, "orders")
			const events = 20
			for i := range events {
				if _, err := pub.Publish(ctx, "orders", fmt.Appendf(nil, "e-%02d", i)); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for rec.Unverified() < events {
				if time.Now().After(deadline) {
					t.Fatalf("the recorder counted %d lines it cannot verify, want at least the %d events", rec.Unverified(), events)
				}
				time.Sleep(50 * time.Millisecond)
			}
			got := 0
			// A deadline of its own: a request waits for its answer until
			// its context's deadline.
			rctx, rcancel := context.WithTimeout(ctx, 8*time.Second)
			defer rcancel()
			_, err := history.Replay(rctx, reader, "orders", history.ReplayOptions{}, func(r history.Replayed) error {
				if r.Envelope.Kind == envelope.KindEvent && strings.HasPrefix(string(r.Envelope.Payload), "e-") {
					got++
				}
				return nil
			})
			t.Logf("replay: %d events, %v", got, err)
			switch {
			case mode == meshtest.HMAC:
				if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "lacks the mesh's keys") {
					t.Errorf("Replay from a recorder that cannot verify requests: %v; want a timeout that names the missing keys", err)
				}
			case err == nil && reader.ChatHistoryLimit() > 0:
				if got != events {
					t.Errorf("the replay from CHATHISTORY gave %d events, want %d", got, events)
				}
			default:
				checkUnverified(t, err, rec.Node.Nick())
			}
			if mode == meshtest.Ed25519Required {
				_, err := history.NewSource().Committed(ctx, reader, "orders", "workers")
				checkUnverified(t, err, rec.Node.Nick())
			}
		})
	}
}

// checkUnverified checks that err is ErrUnverifiedRecorder, names the
// recorder and says what to do.
func checkUnverified(t *testing.T, err error, nick string) {
	t.Helper()
	if !errors.Is(err, history.ErrUnverifiedRecorder) || !errors.Is(err, mesh.ErrNoResponders) {
		t.Fatalf("%v; want ErrUnverifiedRecorder (and ErrNoResponders)", err)
	}
	for _, want := range []string{nick, "a recorder in a signed mesh needs the mesh's keys", "unsigned="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}

// TestReplayReportsRefusedLines: lines the reader's keys refuse are never
// handed on, and never dropped silently: Replay counts them and reports
// each with its reason, and so does the Source that catch-up and resume
// read with. Here a publisher signs with an HMAC key that the mesh
// (ed25519, signatures required) does not trust.
func TestReplayReportsRefusedLines(t *testing.T) {
	t.Parallel()
	m := historytest.NewMesh(ircdtest.Start(t), "rf", meshtest.NewMode(meshtest.Ed25519Required))
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	stranger := m.Config("orders")
	meshtest.NewMode(meshtest.HMAC).Apply(&stranger)
	nodes := meshtest.ConnectAll(t, stranger, m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "orders", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, "orders")
	const events = 30
	for i := range events {
		if _, err := pub.Publish(ctx, "orders", fmt.Appendf(nil, "e-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ch := m.Channel("orders")
	deadline := time.Now().Add(10 * time.Second)
	for rec.Store.Stats().Channels[ch].Records < events {
		if time.Now().After(deadline) {
			t.Fatalf("the recorder holds %d lines, want %d", rec.Store.Stats().Channels[ch].Records, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
	reasons := map[string]int{}
	st, err := history.Replay(ctx, reader, "orders", history.ReplayOptions{OnReject: func(err error) { reasons[envelope.Reason(err)]++ }},
		func(r history.Replayed) error {
			return fmt.Errorf("handed on a refused envelope: %s", r.Envelope.Payload)
		})
	if err != nil {
		t.Fatal(err)
	}
	// Every event (and the warm-up, where the recorder copied it from the
	// server's CHATHISTORY) refused as unknown-key.
	if n := reasons["unknown-key"]; n < events || n > events+1 || len(reasons) != 1 || st.Rejected != uint64(n) || st.Envelopes != 0 {
		t.Errorf("refused %v, %d lines rejected, %d envelopes; want the %d events refused as unknown-key", reasons, st.Rejected, st.Envelopes, events)
	}
	count, err := history.NewSource().Replay(ctx, reader, "orders", time.Time{}, func(mesh.Recorded) error { return errors.New("handed on") })
	if err != nil || count.Rejected["unknown-key"] != uint64(reasons["unknown-key"]) || count.Envelopes != 0 {
		t.Errorf("Source.Replay: %+v, %v; want the %d events refused as unknown-key", count, err, events)
	}
}
