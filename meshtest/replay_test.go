package meshtest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
	"github.com/meshbot/meshbot/meshtest"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// TestReplayGolden replays the committed log of a live run of the shop
// service and compares what it did with testdata/shop.golden: the output
// format, whole.
func TestReplayGolden(t *testing.T) {
	t.Parallel()
	res := meshtest.Replay(t, meshtest.Load(t, shopLog), mesh.Config{Service: shopService}, shopSetup)
	meshtest.Golden(t, "testdata/shop.golden", res.Text())
}

// eventOf matches the line of the event of topic whose payload is
// payload in log; the test fails when there is none.
func eventOf(t *testing.T, log *recording.Log, topic, payload string) recording.Match {
	t.Helper()
	for _, l := range log.Find(recording.All(recording.Topic(topic), recording.Kind(envelope.KindEvent))) {
		for _, env := range l.Envelopes() {
			if env.Kind == envelope.KindEvent && string(env.Payload) == payload {
				return recording.Event(env.ID.Short())
			}
		}
	}
	t.Fatalf("no event %q on %s in %s", payload, topic, log.Name)
	return nil
}

// lineOf returns the first line of text containing s, and its index.
func lineOf(text, s string) (int, string) {
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i, l
		}
	}
	return -1, ""
}

// TestReplayEditedLogs replays edited versions of the shop log: what the
// service does when it misses an event, receives one twice (soon, or after
// the replay guard's window), receives events late or in another order,
// or sees only part of the log.
func TestReplayEditedLogs(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	order1 := eventOf(t, log, "orders", `{"order":1}`)
	order2 := eventOf(t, log, "orders", `{"order":2}`)
	order3 := eventOf(t, log, "orders", `{"order":3}`)
	for _, tc := range []struct {
		name  string
		edit  func(*recording.Log) *recording.Log
		check func(t *testing.T, res *meshtest.Result, text string)
	}{
		{"missed event", func(l *recording.Log) *recording.Log { return l.Drop(order2) },
			func(t *testing.T, res *meshtest.Result, text string) {
				if strings.Contains(text, `{"seen":2}`) || !strings.Contains(text, `{"seen":3}`) {
					t.Error("order 2 dropped: not seen, the others are")
				}
			}},
		{"event twice", func(l *recording.Log) *recording.Log { return l.Duplicate(order2, 0) },
			func(t *testing.T, res *meshtest.Result, text string) {
				if n := strings.Count(text, `{"seen":2}`); n != 1 {
					t.Errorf("order 2 seen %d times, want once", n)
				}
				if res.Stats.RejectedBy["duplicate"] != 1 {
					t.Errorf("rejected %v, want one duplicate", res.Stats.RejectedBy)
				}
			}},
		{"event twice after the guard's window", func(l *recording.Log) *recording.Log {
			return l.Duplicate(order2, envelope.DefaultGuardWindow+time.Minute)
		},
			func(t *testing.T, res *meshtest.Result, text string) {
				if n := strings.Count(text, `{"seen":2}`); n != 1 || res.Stats.RejectedBy["expired"] != 1 {
					t.Errorf("order 2 seen %d times (want once), rejected %v (want one expired)", n, res.Stats.RejectedBy)
				}
			}},
		{"late event", func(l *recording.Log) *recording.Log { return l.Delay(order1, 500*time.Millisecond) },
			func(t *testing.T, res *meshtest.Result, text string) {
				i1, l1 := lineOf(text, `{"seen":1}`)
				i3, l3 := lineOf(text, `{"seen":3}`)
				if i1 < i3 {
					t.Errorf("order 1, delayed, seen before order 3:\n%s\n%s", l1, l3)
				}
			}},
		{"swapped events", func(l *recording.Log) *recording.Log { return l.Swap(order1, order3) },
			func(t *testing.T, res *meshtest.Result, text string) {
				i1, _ := lineOf(text, `{"seen":1}`)
				i3, _ := lineOf(text, `{"seen":3}`)
				if i1 < i3 {
					t.Error("orders 1 and 3 swapped: 3 seen first")
				}
			}},
		{"one topic", func(l *recording.Log) *recording.Log { return l.Topics("jobs") },
			func(t *testing.T, res *meshtest.Result, text string) {
				if strings.Contains(text, "orders.seen") || !strings.Contains(text, "jobs.done") || res.Count(meshtest.KindRespond) != 3 {
					t.Error("cut to jobs: no orders handled, jobs and requests still are")
				}
			}},
		{"one sender", func(l *recording.Log) *recording.Log { return l.Senders("watch") },
			func(t *testing.T, res *meshtest.Result, text string) {
				if res.Stats.Delivered != 0 || res.Count(meshtest.KindRespond) != 0 {
					t.Errorf("cut to what watch sent: nothing to handle, got %d events", res.Stats.Delivered)
				}
			}},
		{"first half", func(l *recording.Log) *recording.Log {
			return l.Between(time.Time{}, l.Find(order3)[0].Time)
		},
			func(t *testing.T, res *meshtest.Result, text string) {
				if !strings.Contains(text, `{"seen":2}`) || strings.Contains(text, `{"seen":3}`) || strings.Contains(text, "jobs.done") {
					t.Error("cut before order 3: orders 1 and 2 only")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := meshtest.Replay(t, tc.edit(log), mesh.Config{Service: shopService}, shopSetup)
			tc.check(t, res, res.Text())
			if t.Failed() {
				t.Log("\n" + res.Text())
			}
		})
	}
}

// TestReplayTimers: retries follow RetryDelay on the virtual clock, never
// earlier, at the same spacing on every attempt, and the dead letter
// follows the last attempt.
func TestReplayTimers(t *testing.T) {
	t.Parallel()
	res := meshtest.Replay(t, meshtest.Load(t, shopLog), mesh.Config{Service: shopService}, shopSetup)
	var fails []time.Duration
	var dead time.Duration
	for _, e := range res.Entries {
		switch {
		case e.Kind == meshtest.KindHandlerError && strings.Contains(e.Err, "always fails"):
			fails = append(fails, e.At)
		case e.Kind == meshtest.KindDeadLetter:
			dead = e.At
		}
	}
	if len(fails) != shopAttempts {
		t.Fatalf("%d failed attempts, want %d\n%s", len(fails), shopAttempts, res.Text())
	}
	for i := 1; i < len(fails); i++ {
		gap := fails[i] - fails[i-1]
		if gap < shopRetry || gap != fails[1]-fails[0] {
			t.Errorf("attempt %d came %s after the one before (retry delay %s; the first gap was %s)", i+1, gap, shopRetry, fails[1]-fails[0])
		}
	}
	if dead < fails[len(fails)-1] {
		t.Errorf("dead letter at %s, before the last attempt at %s", dead, fails[len(fails)-1])
	}
}

// notifySetup is a service that asks another one: for each order it
// requests mailer.send (with a 2 s deadline) and publishes the answer.
func notifySetup(ctx context.Context, n *mesh.Node) error {
	_, err := n.Subscribe(ctx, "orders", func(ctx context.Context, m *mesh.Message) error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		out, err := n.Request(rctx, "mailer", "send", m.Payload)
		if err != nil {
			return err
		}
		_, err = n.Publish(ctx, "mails", out)
		return err
	})
	return err
}

// TestReplayRequestsOut: the service's own requests are in the output;
// a stubbed method answers them (its errors with their codes), an absent
// service fails them at once, and an unanswered one times out on the
// virtual clock at the request's deadline.
func TestReplayRequestsOut(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	cfg := mesh.Config{Service: "notify"}
	send := func(_ context.Context, r *mesh.Request) ([]byte, error) {
		if strings.Contains(string(r.Payload), `"order":3`) {
			return nil, &mesh.RemoteError{Code: 429, Message: "slow down"}
		}
		return append([]byte("sent "), r.Payload...), nil
	}

	res := meshtest.Replay(t, log, cfg, notifySetup, meshtest.Answer("mailer", "send", send))
	text := res.Text()
	for _, want := range []string{
		`request mailer.send to mailer-stub {"order":1}`,
		`publish mails sent {"order":1}`,
		`handler-error orders event`, // order 3: the stub's error
		`answered 429: slow down`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("stubbed: no %q in\n%s", want, text)
		}
	}

	res = meshtest.Replay(t, log, cfg, notifySetup)
	if n := strings.Count(res.Text(), "no live instance"); n != 4 || res.Count(meshtest.KindRequest) != 0 {
		t.Errorf("no mailer: each of the 4 orders fails at once with no responders\n%s", res.Text())
	}

	res = meshtest.Replay(t, log, cfg, notifySetup, meshtest.Answer("mailer", "other", send))
	var sent, failed []time.Duration
	for _, e := range res.Entries {
		switch e.Kind {
		case meshtest.KindRequest:
			sent = append(sent, e.At)
		case meshtest.KindHandlerError:
			failed = append(failed, e.At)
		}
	}
	if len(sent) != 4 || len(failed) != 4 {
		t.Fatalf("unanswered: want 4 requests and 4 timeouts\n%s", res.Text())
	}
	for i := range sent {
		if d := failed[i] - sent[i]; d != 2*time.Second {
			t.Errorf("request %d failed %s after it was sent, want its 2s deadline\n%s", i+1, d, res.Text())
		}
	}
	if !strings.Contains(res.Text(), context.DeadlineExceeded.Error()) {
		t.Errorf("the timeouts say so:\n%s", res.Text())
	}
}

// TestReplayState: writes of the service's own domain are in the output.
func TestReplayState(t *testing.T) {
	t.Parallel()
	cfg := mesh.Config{Service: "stock", Owns: []string{"stock"}}
	setup := func(ctx context.Context, n *mesh.Node) error {
		d, err := n.Domain("stock")
		if err != nil {
			return err
		}
		_, err = n.Subscribe(ctx, "orders", func(ctx context.Context, m *mesh.Message) error {
			if !strings.HasPrefix(string(m.Payload), "{") {
				_, err := d.Delete(ctx, "last")
				return err
			}
			_, err := d.Put(ctx, "last", m.Payload)
			return err
		})
		return err
	}
	res := meshtest.Replay(t, meshtest.Load(t, shopLog), cfg, setup)
	text := res.Text()
	for _, want := range []string{`state-put stock last = {"order":1} (v1)`, `state-delete stock last (v3)`, `state-put stock last = {"order":3} (v4)`} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}

// TestReplayOptions: ShowProtocol adds the anycast lines, one per event;
// FormatPayload shows payloads its way; Logs adds the node's log records;
// KeepOwnService replays the recorded instance of the service too.
func TestReplayOptions(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	cfg := mesh.Config{Service: shopService}
	plain := meshtest.Replay(t, log, cfg, shopSetup)

	res := meshtest.Replay(t, log, cfg, shopSetup, meshtest.ShowProtocol(),
		meshtest.FormatPayload(func(topic string, p []byte) string { return fmt.Sprintf("<%d bytes on %s>", len(p), topic) }))
	text := res.Text()
	for _, want := range []string{"protocol jobs claim ", "protocol jobs ack ", "protocol jobs nack ", "<10 bytes on orders.seen>"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if res.Count(meshtest.KindPublish) != plain.Count(meshtest.KindPublish) {
		t.Error("options changed what the service did")
	}

	res = meshtest.Replay(t, log, cfg, shopSetup, meshtest.Logs(-4)) // slog.LevelDebug
	if res.Count(meshtest.KindLog) == 0 {
		t.Errorf("Logs(debug): no log entries\n%s", res.Text())
	}

	res = meshtest.Replay(t, log, cfg, shopSetup, meshtest.KeepOwnService())
	if res.Delivered <= plain.Delivered {
		t.Errorf("KeepOwnService delivered %d lines, no more than the %d without it", res.Delivered, plain.Delivered)
	}
}

// TestReplayTrust: the node under test trusts the log as it would trust
// the lines live. A log signed with the mesh's key replays like the
// unsigned one for a node that holds the key and requires signatures; a
// node without the key rejects every signed line, one that requires
// signatures every unsigned one.
func TestReplayTrust(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	key := []byte("0123456789abcdef0123456789abcdef")
	signed, err := log.Reseal(envelope.NewHMACSigner("mesh", key))
	if err != nil {
		t.Fatal(err)
	}
	keys := envelope.NewKeyring()
	keys.AddHMAC("mesh", key)
	trusting := mesh.Config{Service: shopService, Signer: envelope.NewHMACSigner("mesh", key), Keys: keys, RequireSigned: true}

	plain := meshtest.Replay(t, log, mesh.Config{Service: shopService}, shopSetup)
	res := meshtest.Replay(t, signed, trusting, shopSetup)
	if a, b := outputsOf(plain), outputsOf(res); !slices.Equal(a, b) || res.Stats.Rejected != 0 {
		t.Errorf("signed log, trusted: did\n  %s\nunsigned log:\n  %s\nrejected %v", strings.Join(b, "\n  "), strings.Join(a, "\n  "), res.Stats.RejectedBy)
	}
	res = meshtest.Replay(t, signed, mesh.Config{Service: shopService}, shopSetup)
	if res.Stats.Delivered != 0 || res.Stats.RejectedBy["unknown-key"] == 0 {
		t.Errorf("signed log, no keys: delivered %d, rejected %v", res.Stats.Delivered, res.Stats.RejectedBy)
	}
	res = meshtest.Replay(t, log, trusting, shopSetup)
	if res.Stats.Delivered != 0 || res.Stats.RejectedBy["unsigned"] == 0 {
		t.Errorf("unsigned log, signatures required: delivered %d, rejected %v", res.Stats.Delivered, res.Stats.RejectedBy)
	}
}

// TestReplaySetupWaits: a setup that waits for a recorded member before it
// subscribes (WaitFor) returns once the member's recorded heartbeat
// arrives, and the service then handles the log as without the wait.
func TestReplaySetupWaits(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	waiting := func(ctx context.Context, n *mesh.Node) error {
		if err := n.WaitFor(ctx, "client"); err != nil {
			return err
		}
		return shopSetup(ctx, n)
	}
	plain := meshtest.Replay(t, log, mesh.Config{Service: shopService}, shopSetup)
	res := meshtest.Replay(t, log, mesh.Config{Service: shopService}, waiting)
	if a, b := outputsOf(plain), outputsOf(res); !slices.Equal(a, b) {
		t.Errorf("waiting for the client first, the service did\n  %s\nnot waiting:\n  %s", strings.Join(b, "\n  "), strings.Join(a, "\n  "))
	}
}

// TestReplayClosedMesh: a closed mesh's node replays like an open one —
// its channels keyed (the replay server keeps the modes it sets) and its
// service bound to an account (its echoed lines carry the account tag).
func TestReplayClosedMesh(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	plain := meshtest.Replay(t, log, mesh.Config{Service: shopService}, shopSetup)
	closed := mesh.Config{Service: shopService, ChannelKey: "sesame",
		Accounts: &envelope.AccountBinding{Accounts: map[string]string{shopService: "shop-account"}}}
	res := meshtest.Replay(t, log, closed, shopSetup)
	if a, b := outputsOf(plain), outputsOf(res); !slices.Equal(a, b) || res.Stats.Rejected != 0 {
		t.Errorf("closed mesh: did\n  %s\nopen:\n  %s\nrejected %v", strings.Join(b, "\n  "), strings.Join(a, "\n  "), res.Stats.RejectedBy)
	}
}

// TestReplayEncrypted: a node that encrypts what it sends (Config.Crypter)
// replays like one that does not, and the output shows its payloads in
// clear, the same on every run (the nonces differ, the output does not).
func TestReplayEncrypted(t *testing.T) {
	t.Parallel()
	log := meshtest.Load(t, shopLog)
	keys := envelope.NewKeyring()
	if err := keys.AddPayloadKey("mesh-payload", []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	crypter := envelope.NewCrypter(shopService, keys)
	if err := crypter.UseMeshKey("mesh-payload"); err != nil {
		t.Fatal(err)
	}
	cfg := mesh.Config{Service: shopService, Keys: keys, Crypter: crypter}
	plain := meshtest.Replay(t, log, mesh.Config{Service: shopService}, shopSetup)
	res := meshtest.Replay(t, log, cfg, shopSetup)
	if a, b := outputsOf(plain), outputsOf(res); !slices.Equal(a, b) {
		t.Errorf("encrypting: did\n  %s\nin clear:\n  %s", strings.Join(b, "\n  "), strings.Join(a, "\n  "))
	}
	if again := meshtest.Replay(t, log, cfg, shopSetup); again.Text() != res.Text() {
		t.Errorf("two replays differ:\n%s", meshtest.Diff(res.Text(), again.Text()))
	}
}
