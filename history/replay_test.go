package history_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// TestReplay records events and replays them, in each trust mode, with a
// recorder and a reader that have the mode's keys: all of them, once, in
// publish order, with no line refused; then from an offset in the middle:
// the rest, and nothing before it. The count matters in one mode only: the
// HMAC mode replays 20,000 (signed, verified, about 5 s); the others 2,000,
// enough for several pages and batched lines (20,000 ed25519 signatures,
// made and checked three times under the race detector, take a minute).
func TestReplay(t *testing.T) {
	t.Parallel()
	srv := ircdtest.Start(t)
	historytest.ForEachMode(t, srv, "rp", func(t *testing.T, m *historytest.Mesh) {
		events := 2000
		if m.Mode.Name == meshtest.HMAC {
			events = 20000
		}
		testReplay(t, m, events)
	})
}

func testReplay(t *testing.T, m *historytest.Mesh, events int) {
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	nodes := meshtest.ConnectAll(t, m.Config("orders"), m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	// The recorder finds the topic once its channel exists: publish a
	// first event (before the recorder joins: not recorded), wait until
	// the recorder is in the channel, then the events.
	const topic = "orders.created"
	if _, err := pub.Publish(ctx, topic, []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, topic)
	var last *mesh.PubFuture
	for i := range events {
		f, err := pub.PublishAsync(ctx, topic, []byte(fmt.Sprintf("order-%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = f
	}
	if _, err := last.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// Replay from the start until all are there (the recorder commits
	// every 100 ms).
	var got []string
	var offsets []envelope.Offset
	var refused []error
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, offsets, refused = got[:0], offsets[:0], refused[:0]
		o := history.ReplayOptions{OnReject: func(err error) { refused = append(refused, err) }}
		stats, err := history.Replay(ctx, reader, topic, o, func(r history.Replayed) error {
			if r.Envelope.Kind == envelope.KindEvent && string(r.Envelope.Payload) != "warm-up" {
				got = append(got, string(r.Envelope.Payload))
				offsets = append(offsets, r.Offset)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= events || time.Now().After(deadline) {
			t.Logf("replayed %d envelopes in %d lines, %d pages", stats.Envelopes, stats.Lines, stats.Pages)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(refused) > 0 {
		t.Fatalf("%d lines refused by the reader's keys, the first: %v", len(refused), refused[0])
	}
	if len(got) != events {
		t.Fatalf("replayed %d events, want %d", len(got), events)
	}
	for i, p := range got {
		if want := fmt.Sprintf("order-%05d", i); p != want {
			t.Fatalf("event %d is %s, want %s", i, p, want)
		}
	}

	// From an offset: strictly after its line. Events of the same line (a
	// batch) share its offset; start after the line of event mid.
	mid := events*5/8 + 3
	after := offsets[mid]
	first := -1
	n := 0
	_, err := history.Replay(ctx, reader, topic, history.ReplayOptions{After: &after}, func(r history.Replayed) error {
		if r.Envelope.Kind != envelope.KindEvent {
			return nil
		}
		var i int
		fmt.Sscanf(string(r.Envelope.Payload), "order-%05d", &i)
		if first < 0 {
			first = i
		}
		if i != first+n {
			return fmt.Errorf("event %d after %d", i, first+n-1)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if first <= mid || first > mid+256 || first+n != events {
		t.Fatalf("replay after the line of event %d gave events %d..%d", mid, first, first+n-1)
	}
	if offsets[first-1] != after || offsets[first] == after {
		t.Errorf("the replay after %s started at event %d, whose line is %s", after, first, offsets[first])
	}
}

// TestReplayCutPages: records of very different sizes (runs of small
// events, runs of large ones, and events too large for one line, which
// span several records) make the reader's ranges, sized for the lines seen
// so far, too large for the 32 KiB byte bound; the rest of each cut page
// is asked for at once, before the ranges already in flight. Every event
// arrives once, in publish order, with several pages in flight.
func TestReplayCutPages(t *testing.T) {
	t.Parallel()
	m := historytest.NewMesh(ircdtest.Start(t), "h", nil)
	rec := m.StartRecorderIn(t, t.TempDir(), "", "r", recorder.Config{})
	nodes := meshtest.ConnectAll(t, m.Config("orders"), m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	const topic = "orders.sized"
	if _, err := pub.Publish(ctx, topic, []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	historytest.WaitTopic(t, rec.Recorder, topic)
	size := func(i int) int {
		switch r := i % 90; {
		case r < 40:
			return 50 // batched several to a line
		case r < 80:
			return 2500 // a line each
		default:
			return 9000 // several lines each
		}
	}
	const events = 900
	var last *mesh.PubFuture
	for i := range events {
		p := fmt.Appendf(nil, "sized-%04d-", i)
		p = append(p, strings.Repeat("y", size(i))...)
		f, err := pub.PublishAsync(ctx, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last = f
	}
	if _, err := last.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var stats history.ReplayStats
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = 0
		var err error
		stats, err = history.Replay(ctx, reader, topic, history.ReplayOptions{PageRecords: history.MaxPageRecords, Window: 4}, func(r history.Replayed) error {
			if r.Envelope.Kind != envelope.KindEvent || string(r.Envelope.Payload) == "warm-up" {
				return nil
			}
			p := string(r.Envelope.Payload)
			if want := fmt.Sprintf("sized-%04d-", got); !strings.HasPrefix(p, want) || len(p) != len(want)+size(got) {
				return fmt.Errorf("event %d is %.11s (%d bytes)", got, p, len(p))
			}
			got++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got >= events || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d lines in %d pages, %d cut short", stats.Lines, stats.Pages, stats.Cut)
	if got != events {
		t.Fatalf("replayed %d events, want %d", got, events)
	}
	if stats.Cut == 0 {
		t.Errorf("no page was cut short by the byte bound: the test did not exercise the rest requests")
	}
}

// TestReplayRecorderSwitch: two recorders hold the same lines; the one
// serving a replay stops mid-way. The replay goes on with the other one
// (from the overlap, in its order) and delivers every event exactly once,
// in order.
func TestReplayRecorderSwitch(t *testing.T) {
	t.Parallel()
	m := historytest.NewMesh(ircdtest.Start(t), "h", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := func(name string) *historytest.Recorder {
		return m.StartRecorderIn(t, dir, "", name, recorder.Config{SkipHeartbeats: true})
	}
	nodes := meshtest.ConnectAll(t, m.Config("orders"), m.Config("reader"))
	pub, reader := nodes[0], nodes[1]
	const topic, events = "orders.switch", 6000
	if _, err := pub.Publish(ctx, topic, []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	recs := map[string]*historytest.Recorder{"history/a": start("a"), "history/b": start("b")}
	for _, r := range recs {
		historytest.WaitTopic(t, r.Recorder, topic)
	}
	var last *mesh.PubFuture
	for i := range events {
		f, err := pub.PublishAsync(ctx, topic, fmt.Appendf(nil, "sw-%05d-%s", i, strings.Repeat("z", 150)))
		if err != nil {
			t.Fatal(err)
		}
		last = f
	}
	if _, err := last.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	// Both stores complete (the same lines); which recorder serves the
	// topic?
	ch := m.Channel(topic)
	deadline := time.Now().Add(30 * time.Second)
	var lines []int64
	for {
		lines = lines[:0]
		for _, r := range recs {
			lines = append(lines, r.Store.Stats().Channels[ch].Records)
		}
		if lines[0] > 0 && lines[0] == lines[1] && complete(ctx, reader, topic, events) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorders did not record every event in 30 s (records %v)", lines)
		}
		time.Sleep(200 * time.Millisecond)
	}
	first, err := history.Replay(ctx, reader, topic, history.ReplayOptions{}, func(history.Replayed) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	serving := recs[first.Recorder]
	if serving == nil {
		t.Fatalf("the replay was served by %q, not a recorder of this test", first.Recorder)
	}
	t.Logf("records per store %v; %s serves %s", lines, first.Recorder, topic)

	got := 0
	stats, err := history.Replay(ctx, reader, topic, history.ReplayOptions{PageRecords: 100, Window: 4}, func(r history.Replayed) error {
		if r.Envelope.Kind != envelope.KindEvent || string(r.Envelope.Payload) == "warm-up" {
			return nil
		}
		if want := fmt.Sprintf("sw-%05d-", got); !strings.HasPrefix(string(r.Envelope.Payload), want) {
			return fmt.Errorf("event %d is %.9s", got, r.Envelope.Payload)
		}
		got++
		if got == events/3 {
			serving.Stop() // mid-way, with pages in flight
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d envelopes in %d lines, %d pages, %d switches; last page from %s", stats.Envelopes, stats.Lines, stats.Pages, stats.Switches, stats.Recorder)
	if got != events {
		t.Fatalf("replayed %d events, want %d", got, events)
	}
	if stats.Switches == 0 || stats.Recorder == first.Recorder {
		t.Errorf("the replay did not switch recorders (%d switches, last page from %s)", stats.Switches, stats.Recorder)
	}
}

// complete reports whether a replay of topic holds n events past the
// warm-up.
func complete(ctx context.Context, n *mesh.Node, topic string, events int) bool {
	got := 0
	_, err := history.Replay(ctx, n, topic, history.ReplayOptions{}, func(r history.Replayed) error {
		if r.Envelope.Kind == envelope.KindEvent && string(r.Envelope.Payload) != "warm-up" {
			got++
		}
		return nil
	})
	return err == nil && got >= events
}

// fakeRecorder answers history.read on a node of the history service with
// serve, which tests swap.
type fakeRecorder struct {
	mu    sync.Mutex
	serve func(history.ReadRequest) ([]byte, error)
}

func (f *fakeRecorder) set(serve func(history.ReadRequest) ([]byte, error)) {
	f.mu.Lock()
	f.serve = serve
	f.mu.Unlock()
}

func (f *fakeRecorder) handle(_ context.Context, q *mesh.Request) ([]byte, error) {
	req, err := history.DecodeReadRequest(q.Payload)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	serve := f.serve
	f.mu.Unlock()
	return serve(req)
}

// fakeLines returns n recorded lines, each carrying one event whose
// payload is its index.
func fakeLines(t *testing.T, n int) []history.PageRecord {
	t.Helper()
	base := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	out := make([]history.PageRecord, n)
	for i := range out {
		at := base.Add(time.Duration(i) * time.Millisecond)
		env := envelope.New(envelope.KindEvent, envelope.Sender{Service: "fake", Instance: "1"}, "fake", fmt.Appendf(nil, "line-%05d", i), at)
		sealed, err := envelope.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := envelope.EncodeLines(env, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: 4094, BodyBytes: 400})
		if err != nil || len(ls) != 1 {
			t.Fatalf("%d lines, %v", len(ls), err)
		}
		out[i] = history.PageRecord{Time: at.UnixNano(), MsgID: fmt.Sprintf("m%05d", i), Nick: "fake-1", Tags: ls[0].Tags, Body: ls[0].Body}
	}
	return out
}

// fakePages serves lines the way a recorder named self does (sequence
// number i+1 for lines[i]), with at most cut lines a page; legacy leaves
// out the sequence numbers and ignores FromSeq, as recorders before them
// did.
func fakePages(lines []history.PageRecord, self string, cut int, legacy bool) func(history.ReadRequest) ([]byte, error) {
	return func(req history.ReadRequest) ([]byte, error) {
		p := history.Page{Recorder: self}
		limit := req.Max
		if limit <= 0 || limit > history.MaxPageRecords {
			limit = history.DefaultPageRecords
		}
		from, to := uint64(1), ^uint64(0)
		switch {
		case !legacy && (req.Recorder != "" || req.FromSeq != 0):
			if req.Recorder != self {
				p.Moved = true
				return p.Encode()
			}
			from, to = req.FromSeq, req.FromSeq+uint64(limit)-1
		case req.AfterMsgID != "":
			for i, l := range lines {
				if l.MsgID == req.AfterMsgID {
					from = uint64(i) + 2
				}
			}
		}
		through := from - 1
		for seq := from; seq <= uint64(len(lines)) && seq <= to && len(p.Records) < min(limit, cut); seq++ {
			p.Records = append(p.Records, lines[seq-1])
			through = seq
		}
		if len(p.Records) < min(limit, cut) {
			through = max(through, min(to, uint64(len(lines))))
		}
		last := uint64(len(lines))
		p.End = through >= last
		if !p.End {
			p.Remaining = last - through
		}
		if !legacy {
			p.Through, p.Last = through, last
		}
		return p.Encode()
	}
}

// TestReplayPipeline runs replays against a fake recorder: pages cut
// short and answered out of order, a recorder that predates sequence
// numbers, broken pages, recorders that keep changing, and a replay
// stopped by its callback or its context.
func TestReplayPipeline(t *testing.T) {
	t.Parallel()
	m := historytest.NewMesh(ircdtest.Start(t), "h", nil)
	fake := &fakeRecorder{}
	nodes := meshtest.ConnectAll(t, m.Config(history.Service), m.Config("reader"))
	if err := nodes[0].Handle(history.MethodRead, fake.handle); err != nil {
		t.Fatal(err)
	}
	self := history.Service + "/" + nodes[0].Instance()
	reader := nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := reader.WaitFor(ctx, history.Service); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	lines := fakeLines(t, n)
	// replay checks that the events come in order, each once.
	replay := func(t *testing.T, o history.ReplayOptions) (history.ReplayStats, int, error) {
		next := 0
		st, err := history.Replay(ctx, reader, "fake", o, func(r history.Replayed) error {
			if want := fmt.Sprintf("line-%05d", next); string(r.Envelope.Payload) != want {
				return fmt.Errorf("got %s, want %s", r.Envelope.Payload, want)
			}
			if want := fmt.Sprintf("m%05d", next); r.Offset.MsgID != want {
				return fmt.Errorf("offset %s, want %s", r.Offset, want)
			}
			next++
			return nil
		})
		return st, next, err
	}

	t.Run("cut and out of order", func(t *testing.T) {
		serve := fakePages(lines, self, 7, false)
		var calls atomic.Int64
		fake.set(func(req history.ReadRequest) ([]byte, error) {
			// Later requests are often answered first.
			time.Sleep(time.Duration(calls.Add(1)%4) * time.Millisecond)
			return serve(req)
		})
		st, got, err := replay(t, history.ReplayOptions{PageRecords: 40, Window: 6})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d pages, %d cut", st.Pages, st.Cut)
		if got != n || st.Lines != n || st.Last.MsgID != lines[n-1].MsgID {
			t.Fatalf("%d events in %d lines up to %s, want %d", got, st.Lines, st.Last, n)
		}
		if st.Cut == 0 || st.Pages < n/7 {
			t.Errorf("%d pages, %d cut short: want pages of 7 lines, cut", st.Pages, st.Cut)
		}
		// From an offset.
		after := envelope.Offset{Time: lines[999].Time, MsgID: lines[999].MsgID}
		st, err = history.Replay(ctx, reader, "fake", history.ReplayOptions{After: &after, PageRecords: 40}, func(r history.Replayed) error { return nil })
		if err != nil || st.Lines != n-1000 {
			t.Fatalf("after line 999: %d lines, %v", st.Lines, err)
		}
	})

	t.Run("legacy recorder", func(t *testing.T) {
		fake.set(fakePages(lines, self, 1000, true))
		st, got, err := replay(t, history.ReplayOptions{PageRecords: 100, Window: 4})
		if err != nil {
			t.Fatal(err)
		}
		if got != n || st.Pages != n/100 {
			t.Fatalf("%d events in %d pages, want %d in %d", got, st.Pages, n, n/100)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		good := fakePages(lines, self, 1000, false)
		for name, bad := range map[string]func(history.ReadRequest) ([]byte, error){
			"garbage": func(history.ReadRequest) ([]byte, error) { return []byte{0xff, 0x00}, nil },
			"beyond the range": func(history.ReadRequest) ([]byte, error) {
				return (&history.Page{Recorder: self, Records: lines[:1], Through: 1 << 40, Last: 1 << 41}).Encode()
			},
			"no progress": func(req history.ReadRequest) ([]byte, error) {
				return (&history.Page{Recorder: self, Through: req.FromSeq - 1, Last: n}).Encode()
			},
			"data for fewer lines": func(req history.ReadRequest) ([]byte, error) {
				return (&history.Page{Recorder: self, Records: lines[:2], Data: [][]byte{{0xa0}}, Through: req.FromSeq + 1, Last: n}).Encode()
			},
			"more lines than covered": func(req history.ReadRequest) ([]byte, error) {
				return (&history.Page{Recorder: self, Records: lines[:3], Through: req.FromSeq, Last: n}).Encode()
			},
		} {
			fake.set(func(req history.ReadRequest) ([]byte, error) {
				if req.Recorder == "" {
					return good(req)
				}
				return bad(req)
			})
			st, got, err := replay(t, history.ReplayOptions{PageRecords: 100})
			if !errors.Is(err, history.ErrMalformedPage) {
				t.Errorf("%s: %d events, %v; want ErrMalformedPage", name, got, err)
			}
			if got != 100 || st.Lines != 100 {
				t.Errorf("%s: %d events in %d lines before the error, want the first page's 100", name, got, st.Lines)
			}
		}
	})

	t.Run("recorders keep changing", func(t *testing.T) {
		good := fakePages(lines, self, 1000, false)
		fake.set(func(req history.ReadRequest) ([]byte, error) {
			if req.Recorder != "" {
				return (&history.Page{Recorder: self, Moved: true}).Encode()
			}
			return good(req)
		})
		st, err := history.Replay(ctx, reader, "fake", history.ReplayOptions{PageRecords: 100}, func(history.Replayed) error { return nil })
		if !errors.Is(err, history.ErrRecordersChanging) {
			t.Fatalf("%v; want ErrRecordersChanging", err)
		}
		// The first switch follows new envelopes, the next 8 none.
		if st.Switches != 9 || st.Envelopes != 100 {
			t.Errorf("%d switches, %d envelopes; want 9 switches and the first page's 100 envelopes once", st.Switches, st.Envelopes)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		fake.set(fakePages(lines, self, 50, false))
		stop := errors.New("enough")
		_, got, err := replay(t, history.ReplayOptions{PageRecords: 50, Window: 8})
		if err != nil || got != n {
			t.Fatalf("%d events, %v", got, err)
		}
		k := 0
		_, err = history.Replay(ctx, reader, "fake", history.ReplayOptions{PageRecords: 50, Window: 8}, func(history.Replayed) error {
			if k++; k == 777 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || k != 777 {
			t.Errorf("stopped at %d: %v", k, err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		k = 0
		_, err = history.Replay(cctx, reader, "fake", history.ReplayOptions{PageRecords: 50, Window: 8}, func(history.Replayed) error {
			if k++; k == 333 {
				ccancel()
			}
			return nil
		})
		ccancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled at %d: %v", k, err)
		}
	})
}
