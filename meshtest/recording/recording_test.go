package recording_test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/meshtest/recording"
)

// The tests use the log of a live run of a service (meshtest's shop.log):
// lines as InspIRCd sent them.
const shopLog = "../testdata/shop.log"

func load(t *testing.T) *recording.Log {
	t.Helper()
	l, err := recording.Load(shopLog)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// events returns the payloads of the events the log's lines carry, in
// order, as "topic payload".
func events(l *recording.Log) []string {
	var out []string
	dec := envelope.NewDecoder(envelope.DecoderConfig{AcceptUnchecked: true})
	for _, line := range l.Lines() {
		if line.Command() != "PRIVMSG" {
			continue
		}
		envs, _, _ := dec.Decode(line.Nick, line.Tags(), line.Text(), line.Time)
		for _, env := range envs {
			if env.Kind == envelope.KindEvent {
				out = append(out, line.Topic()+" "+string(env.Payload))
			}
		}
	}
	return out
}

func TestLoad(t *testing.T) {
	l := load(t)
	if l.Name != "shop.log" || l.Namespace() != "t" || l.Owner() != "shop-live" || l.Start().IsZero() {
		t.Errorf("name %q, namespace %q, owner %q, start %s", l.Name, l.Namespace(), l.Owner(), l.Start())
	}
	raw, err := os.ReadFile(shopLog)
	if err != nil {
		t.Fatal(err)
	}
	if l.Text() != string(raw) {
		t.Error("an unedited log is written back as it was read")
	}
	var buf bytes.Buffer
	if _, err := l.WriteTo(&buf); err != nil || buf.String() != string(raw) {
		t.Errorf("WriteTo: %v", err)
	}
	if _, err := recording.Parse("@time=2026-01-01T00:00:00.000Z :a!b@c PRIVMSG #t.x :hi\n@time=nope :a PRIVMSG #t.x :x\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad line is an error naming it: %v", err)
	}
}

func TestCuts(t *testing.T) {
	l := load(t)
	t.Run("topics", func(t *testing.T) {
		cut := l.Topics("jobs")
		for _, line := range cut.Lines() {
			if tp := line.Topic(); tp != "" && tp != "jobs" && tp != "_hb" {
				t.Errorf("line %d of topic %s kept: %s", line.N, tp, line.String())
			}
		}
		if got := events(cut); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "jobs ") }) ||
			slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "orders ") }) {
			t.Errorf("events after the cut: %v", got)
		}
		if len(cut.Find(recording.Command("001"))) != 1 {
			t.Error("server lines stay")
		}
	})
	t.Run("senders", func(t *testing.T) {
		cut := l.Senders("client")
		for _, line := range cut.Lines() {
			if line.Nick != "" && line.Service() != "client" {
				t.Errorf("line %d from %s kept", line.N, line.Nick)
			}
		}
		if len(events(cut)) != 8 {
			t.Errorf("client published 8 events; %v kept", events(cut))
		}
	})
	t.Run("heartbeats", func(t *testing.T) {
		cut := l.WithoutHeartbeats()
		if len(cut.Find(recording.Heartbeats())) != 0 || len(l.Find(recording.Heartbeats())) == 0 {
			t.Error("heartbeats are dropped (and the log had some)")
		}
		if cut.Len() != l.Len()-len(l.Find(recording.Heartbeats())) {
			t.Error("only heartbeats are dropped")
		}
	})
	t.Run("time", func(t *testing.T) {
		jobs := l.Find(recording.All(recording.Topic("jobs"), recording.Kind(envelope.KindEvent)))
		from := jobs[0].Time
		cut := l.Between(from, time.Time{})
		if !cut.Start().Equal(from) {
			t.Errorf("the cut starts at %s, want %s", cut.Start(), from)
		}
		got := events(cut)
		if slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "orders ") }) || len(cut.Find(recording.Topic("jobs"))) == 0 {
			t.Errorf("events after %s: %v", from, got)
		}
		for _, line := range cut.Lines() {
			if !line.Time.IsZero() && line.Time.Before(from) {
				t.Errorf("line %d at %s, before the cut", line.N, line.Time)
			}
		}
		// Presence before the cut stays (retimed): the NAMES of the
		// channels and the registration.
		if len(cut.Find(recording.Command("353"))) == 0 || len(cut.Find(recording.Command("001"))) == 0 {
			t.Error("presence and registration before the cut are kept")
		}
		w := l.Window(0, from.Sub(l.Start()))
		got = events(w)
		n := 0
		for _, e := range got {
			if strings.HasPrefix(e, "orders ") {
				n++
			}
		}
		if slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "jobs ") }) || n != 4 {
			t.Errorf("window before the first job: %v", got)
		}
	})
}

func TestEdits(t *testing.T) {
	l := load(t)
	orders := l.Find(recording.All(recording.Topic("orders"), recording.Kind(envelope.KindEvent)))
	if len(orders) != 4 {
		t.Fatalf("%d order lines", len(orders))
	}
	first := recording.Numbers(orders[0].N)
	t.Run("drop", func(t *testing.T) {
		got := events(l.Drop(first))
		if slices.Contains(got, `orders {"order":1}`) || len(got) != len(events(l))-1 {
			t.Errorf("after dropping order 1: %v", got)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		d := l.Duplicate(first, 0)
		copies := d.Find(first)
		if len(copies) != 2 || copies[0].String() != copies[1].String() {
			t.Fatalf("a copy of the line follows it: %v", copies)
		}
		later := l.Duplicate(first, time.Minute).Find(first)
		if len(later) != 2 || later[1].Time.Sub(later[0].Time) != time.Minute || !strings.Contains(later[1].String(), "time="+later[1].Time.Format("2006-01-02T15:04:05.000Z")) {
			t.Errorf("a copy a minute later, its time tag too: %v", later)
		}
		lines := l.Duplicate(first, time.Minute).Lines()
		if lines[len(lines)-1].N != orders[0].N {
			t.Error("the late copy is the log's last line (the log ends within a minute)")
		}
	})
	t.Run("delay", func(t *testing.T) {
		got := events(l.Delay(first, orders[2].Time.Sub(orders[0].Time)+time.Millisecond))
		i1, i3 := slices.Index(got, `orders {"order":1}`), slices.Index(got, `orders {"order":3}`)
		if i1 < 0 || i3 < 0 || i1 < slices.Index(got, `orders not json`) {
			t.Errorf("order 1 delayed past the third order line: %v", got)
		}
	})
	t.Run("swap", func(t *testing.T) {
		s := l.Swap(first, recording.Numbers(orders[3].N))
		got := events(s)
		if got[0] != `orders {"order":3}` || slices.Index(got, `orders {"order":1}`) < slices.Index(got, `orders not json`) {
			t.Errorf("orders 1 and 3 swapped: %v", got)
		}
		if a, b := s.Find(recording.Numbers(orders[3].N))[0].Time, orders[0].Time; !a.Equal(b) {
			t.Errorf("the swapped line takes the other's time: %s, want %s", a, b)
		}
		if l.Swap(recording.Numbers(99999), first).Text() != l.Text() {
			t.Error("a swap with nothing matched changes nothing")
		}
	})
	t.Run("immutable", func(t *testing.T) {
		before := l.Text()
		l.Drop(first)
		l.Delay(first, time.Second)
		if l.Text() != before {
			t.Error("edits changed the log they started from")
		}
	})
}

func TestAnonymize(t *testing.T) {
	l := load(t)
	red, err := l.Anonymize(recording.RedactJSON("order", "item"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := events(red)
	want := []string{`orders {"order":"` + recording.Redacted("1") + `"}`, `orders not json`}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no %s in %v", w, got)
		}
	}
	if red.Len() != l.Len() {
		t.Errorf("%d lines, want %d", red.Len(), l.Len())
	}
	for _, line := range red.Lines() {
		if strings.Contains(line.String(), "tea") && line.Command() == "PRIVMSG" {
			// Requests' payloads are redacted too (the item).
			for _, env := range line.Envelopes() {
				if strings.Contains(string(env.Payload), "tea") {
					t.Errorf("line %d still names the item: %s", line.N, env.Payload)
				}
			}
		}
	}
	beats := func(l *recording.Log) []string {
		var out []string
		for _, b := range l.Find(recording.Heartbeats()) {
			out = append(out, b.String())
		}
		return out
	}
	if !slices.Equal(beats(red), beats(l)) {
		t.Error("heartbeat lines are kept as recorded")
	}

	// Signed again with a key: the lines verify with it.
	keys := envelope.NewKeyring()
	keys.AddHMAC("test", []byte("0123456789abcdef0123456789abcdef"))
	signed, err := l.Anonymize(recording.RedactAll(), envelope.NewHMACSigner("test", []byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: &envelope.Verifier{Keys: keys, RequireSigned: true}})
	n := 0
	for _, line := range signed.Find(recording.All(recording.Topic("orders"), recording.Command("PRIVMSG"))) {
		envs, _, err := dec.Decode(line.Nick, line.Tags(), line.Text(), line.Time)
		if err != nil {
			t.Errorf("line %d: %v", line.N, err)
		}
		for _, env := range envs {
			if env.Kind == envelope.KindEvent {
				n++
				if !strings.HasPrefix(string(env.Payload), "redacted-") {
					t.Errorf("payload %q", env.Payload)
				}
			}
		}
	}
	if n != 4 {
		t.Errorf("%d signed orders, want 4", n)
	}
}

// TestAnonymizeFragments: a payload that no longer fits one line is cut
// in fragments, and fragments are joined again when the payload shrinks.
func TestAnonymizeFragments(t *testing.T) {
	l := load(t)
	big := strings.Repeat("x", 9000)
	grown, err := l.Anonymize(func(topic string, _ envelope.Kind, p []byte) []byte {
		if topic == "orders" && string(p) == `{"order":2}` {
			return []byte(big)
		}
		return p
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if grown.Len() <= l.Len()+1 || !slices.Contains(events(grown), "orders "+big) {
		t.Fatalf("the big payload takes fragment lines: %d lines (was %d)", grown.Len(), l.Len())
	}
	shrunk, err := grown.Anonymize(func(_ string, _ envelope.Kind, p []byte) []byte {
		if string(p) == big {
			return []byte("small")
		}
		return p
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if shrunk.Len() != l.Len() || !slices.Contains(events(shrunk), "orders small") {
		t.Errorf("joined again: %d lines (want %d), events %v", shrunk.Len(), l.Len(), events(shrunk))
	}
}

func TestFormatLine(t *testing.T) {
	line, err := recording.ParseLine(`@b=2;+z=1;a=x\sy :n!u@h PRIVMSG #t.x :hello world`)
	if err != nil {
		t.Fatal(err)
	}
	msg := line.Message()
	for range 20 { // map order varies; the text does not
		if got := recording.FormatLine(&msg); got != `@a=x\sy;b=2;+z=1 :n!u@h PRIVMSG #t.x :hello world` {
			t.Fatalf("FormatLine: %s", got)
		}
	}
}

// TestReseal signs every envelope of a log with a key, then strips the
// signatures again: each time every mesh line decodes under the trust
// asked for, heartbeats and claims included.
func TestReseal(t *testing.T) {
	l := load(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	keys := envelope.NewKeyring()
	keys.AddHMAC("test", key)
	signed, err := l.Reseal(envelope.NewHMACSigner("test", key))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := signed.Reseal(nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, l *recording.Log, v *envelope.Verifier) {
		dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: v})
		kinds := map[envelope.Kind]int{}
		for _, line := range l.Find(recording.Command("PRIVMSG")) {
			envs, _, err := dec.Decode(line.Nick, line.Tags(), line.Text(), line.Time)
			if err != nil {
				t.Errorf("%s: line %d: %v", name, line.N, err)
			}
			for _, env := range envs {
				kinds[env.Kind]++
			}
		}
		if kinds[envelope.KindHeartbeat] == 0 || kinds[envelope.KindClaim] == 0 || kinds[envelope.KindEvent] != len(events(l)) {
			t.Errorf("%s: envelopes by kind %v", name, kinds)
		}
	}
	check("signed", signed, &envelope.Verifier{Keys: keys, RequireSigned: true})
	check("unsigned again", unsigned, nil)
	if !slices.Equal(events(unsigned), events(l)) {
		t.Error("resealing changed the events")
	}
	if _, err := signed.Reseal(envelope.NewHMACSigner("test", key)); err != nil {
		t.Fatal(err)
	}
}
