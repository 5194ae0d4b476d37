package recorder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/claims"
	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
)

// The recorder's answers, from a store, without a connection
// (docs/PROTOCOL.md §7.3, §7.5).

const (
	testNS   = "h"
	testSelf = "history/r1"
)

var testBase = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// meshLine returns the tags and body of one whole tag-carrier line
// carrying env, signed with s (nil: unsigned).
func meshLine(t testing.TB, env *envelope.Envelope, s envelope.Signer) (map[string]string, string) {
	t.Helper()
	var sealed []byte
	var err error
	if s != nil {
		sealed, err = envelope.Seal(env, s)
	} else {
		sealed, err = envelope.Marshal(env)
	}
	if err != nil {
		t.Fatal(err)
	}
	ls, err := envelope.EncodeLines(env, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: 4094, BodyBytes: 400})
	if err != nil || len(ls) != 1 {
		t.Fatalf("%d lines, %v", len(ls), err)
	}
	return ls[0].Tags, ls[0].Body
}

// eventRecord is line i of topic: an event whose payload names it.
func eventRecord(t testing.TB, topic string, i int) store.Record {
	at := testBase.Add(time.Duration(i) * time.Millisecond)
	env := envelope.New(envelope.KindEvent, envelope.Sender{Service: "orders", Instance: "1"}, topic, fmt.Appendf(nil, "e-%04d", i), at)
	tags, body := meshLine(t, env, nil)
	tags["msgid"] = fmt.Sprintf("m%04d", i)
	return store.Record{Channel: "#" + testNS + "." + topic, Time: at, MsgID: tags["msgid"], Nick: "orders-1", Tags: tags, Body: body}
}

// claimRecord is line i of topic: a HistoryClaim of group whose committed
// offset is committed, signed with s.
func claimRecord(t testing.TB, topic, group string, i int, committed envelope.Offset, s envelope.Signer) store.Record {
	at := testBase.Add(time.Duration(i) * time.Millisecond)
	payload, err := claims.EncodeHistoryClaim(envelope.OffsetAt(at, ""), committed)
	if err != nil {
		t.Fatal(err)
	}
	env := envelope.New(envelope.KindHistoryClaim, envelope.Sender{Service: "workers", Instance: "1"}, group, payload, at)
	tags, body := meshLine(t, env, s)
	return store.Record{Channel: "#" + testNS + "." + topic, Time: at, MsgID: fmt.Sprintf("m%04d", i), Nick: "workers-1", Tags: tags, Body: body}
}

// openStore opens a store in a temporary directory holding recs, committed.
func openStore(t testing.TB, recs ...store.Record) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "h.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Append(recs...); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	return st
}

// page asks st for a page with req.
func page(t *testing.T, st *store.Store, req history.ReadRequest) *history.Page {
	t.Helper()
	b, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := servePageBytes(st, testNS, testSelf, b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := history.DecodePage(out)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// payloads returns the event payloads of a page's lines, decoding the
// lines' data where the page gives it as bytes.
func payloads(t *testing.T, p *history.Page) []string {
	t.Helper()
	dec := envelope.NewDecoder(envelope.DecoderConfig{})
	var out []string
	for i, r := range p.Records {
		if len(p.Data) > 0 && p.Data[i] != nil {
			env, err := dec.Open(p.Data[i], time.Unix(0, r.Time))
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			out = append(out, string(env.Payload))
			continue
		}
		envs, _, err := dec.Decode(r.Nick, r.Tags, r.Body, time.Unix(0, r.Time))
		if err != nil || len(envs) != 1 {
			t.Fatalf("line %d: %d envelopes, %v", i, len(envs), err)
		}
		out = append(out, string(envs[0].Payload))
	}
	return out
}

func eventNames(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("e-%04d", from+i)
	}
	return out
}

func TestServePage(t *testing.T) {
	var recs []store.Record
	for i := 1; i <= 50; i++ {
		recs = append(recs, eventRecord(t, "t", i))
	}
	big := strings.Repeat("x", 5000)
	for i := 1; i <= 20; i++ {
		recs = append(recs, store.Record{Channel: "#h.big", Time: testBase.Add(time.Duration(i)), MsgID: fmt.Sprint(i), Nick: "n", Body: big})
	}
	st := openStore(t, recs...)
	check := func(what string, p *history.Page, from, n int, through uint64, end bool) {
		t.Helper()
		got := payloads(t, p)
		if strings.Join(got, ",") != strings.Join(eventNames(from, n), ",") || p.Through != through || p.Last != 50 ||
			p.End != end || p.Remaining != 50-through || p.Recorder != testSelf || p.Moved {
			t.Errorf("%s: %v through %d of %d, end %v, remaining %d, recorder %q, moved %v; want %d lines from %d through %d",
				what, got, p.Through, p.Last, p.End, p.Remaining, p.Recorder, p.Moved, n, from, through)
		}
	}
	check("the start", page(t, st, history.ReadRequest{Topic: "t", Max: 10}), 1, 10, 10, false)
	check("by sequence numbers", page(t, st, history.ReadRequest{Topic: "t", FromSeq: 11, Max: 10, Recorder: testSelf}), 11, 10, 20, false)
	check("to the end", page(t, st, history.ReadRequest{Topic: "t", FromSeq: 45, Max: 10, Recorder: testSelf}), 45, 6, 50, true)
	r20 := recs[19]
	check("after an offset", page(t, st, history.ReadRequest{Topic: "t", AfterTime: r20.Time.UnixNano(), AfterMsgID: r20.MsgID, Max: 5}), 21, 5, 25, false)
	check("since a time", page(t, st, history.ReadRequest{Topic: "t", Since: recs[29].Time.UnixNano(), Max: 5}), 30, 5, 34, false)
	check("no Max: the default", page(t, st, history.ReadRequest{Topic: "t"}), 1, 50, 50, true)

	if p := page(t, st, history.ReadRequest{Topic: "t", FromSeq: 11, Recorder: "history/other"}); !p.Moved || len(p.Records) != 0 || p.Recorder != testSelf {
		t.Errorf("another recorder's numbers: %+v; want moved, no lines", p)
	}
	// As bytes: one datum per line, taken out of the line's tags.
	p := page(t, st, history.ReadRequest{Topic: "t", Max: 10, Binary: true})
	check("as bytes", p, 1, 10, 10, false)
	if len(p.Data) != 10 {
		t.Fatalf("%d data for 10 lines", len(p.Data))
	}
	for i, r := range p.Records {
		if _, ok := r.Tags[envelope.TagData]; ok || p.Data[i] == nil {
			t.Errorf("line %d keeps its data tag, or has no data", i)
		}
	}
	// The byte bound: 5,000-byte lines, at most MaxPageBytes a page.
	p = page(t, st, history.ReadRequest{Topic: "big", Max: 100})
	if want := history.MaxPageBytes / (5000 + 64); len(p.Records) != want || p.Through != uint64(want) || p.End {
		t.Errorf("big lines: %d in a page through %d (end %v), want %d", len(p.Records), p.Through, p.End, want)
	}
	// A topic never recorded: the end, nothing.
	if p := page(t, st, history.ReadRequest{Topic: "none"}); !p.End || len(p.Records) != 0 || p.Last != 0 {
		t.Errorf("an unknown topic: %+v", p)
	}
	// Refused: what does not decode, and topics that are not valid.
	for name, b := range map[string][]byte{
		"garbage":   {0xff, 0x00},
		"bad topic": mustEncode(t, &history.ReadRequest{Topic: "Bad Topic"}),
		"no topic":  mustEncode(t, &history.ReadRequest{}),
	} {
		if _, err := servePageBytes(st, testNS, testSelf, b); !errors.Is(err, errBadRequest) && !errors.Is(err, history.ErrMalformedPage) {
			t.Errorf("%s: %v; want a bad request", name, err)
		}
	}
}

// servePageBytes decodes b as the read handler does and serves the page.
func servePageBytes(st *store.Store, ns, self string, b []byte) ([]byte, error) {
	req, err := history.DecodeReadRequest(b)
	if err != nil {
		return nil, err
	}
	return servePage(st, ns, self, req)
}

// serveCommittedBytes decodes b as the committed handler does and serves
// the lookup (with the recorder's candidate decoder).
func serveCommittedBytes(st *store.Store, ns, self string, scan int, b []byte) ([]byte, error) {
	req, err := history.DecodeCommitRequest(b)
	if err != nil {
		return nil, err
	}
	return serveCommitted(context.Background(), st, ns, self, scan, candidates(), req)
}

func mustEncode(t testing.TB, v interface{ Encode() ([]byte, error) }) []byte {
	t.Helper()
	b, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeCommitted: the lookup finds the group's last HistoryClaim that
// carries a committed offset, looking back at most the lines it may per
// request, and finds signed claims without checking their signatures:
// the asking member verifies them.
func TestServeCommitted(t *testing.T) {
	key := envelope.NewHMACSigner("mesh", []byte("0123456789abcdef0123456789abcdef"))
	c10 := envelope.OffsetAt(testBase.Add(10*time.Millisecond), "m0010")
	c30 := envelope.OffsetAt(testBase.Add(30*time.Millisecond), "m0030")
	var recs []store.Record
	for i := 1; i <= 100; i++ {
		switch i {
		case 20:
			recs = append(recs, claimRecord(t, "jobs", "workers", i, c10, nil))
		case 40:
			recs = append(recs, claimRecord(t, "jobs", "workers", i, c30, key)) // signed
		case 50:
			recs = append(recs, claimRecord(t, "jobs", "others", i, c30, nil)) // another group
		case 60:
			recs = append(recs, claimRecord(t, "jobs", "workers", i, envelope.Offset{}, nil)) // no committed offset
		default:
			recs = append(recs, eventRecord(t, "jobs", i))
		}
	}
	st := openStore(t, recs...)
	ask := func(req history.CommitRequest, scan int) *history.CommitAnswer {
		t.Helper()
		out, err := serveCommittedBytes(st, testNS, testSelf, scan, mustEncode(t, &req))
		if err != nil {
			t.Fatal(err)
		}
		a, err := history.DecodeCommitAnswer(out)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	found := func(a *history.CommitAnswer) envelope.Offset {
		if a.Found == nil {
			return envelope.Offset{}
		}
		c, _ := history.ClaimedOffset(candidates(), a.Found, "workers")
		return c
	}
	a := ask(history.CommitRequest{Topic: "jobs", Group: "workers"}, 1000)
	if found(a) != c30 || a.Seq != 40 || a.Recorder != testSelf {
		t.Errorf("from the end: %v at %d by %q; want the signed claim of line 40", found(a), a.Seq, a.Recorder)
	}
	// The asker refuses the signed line (it has no key): it looks before.
	a = ask(history.CommitRequest{Topic: "jobs", Group: "workers", Before: 40}, 1000)
	if found(a) != c10 || a.Seq != 20 {
		t.Errorf("before 40: %v at %d; want line 20's", found(a), a.Seq)
	}
	// 15 lines a request: from the end, where to go on.
	a = ask(history.CommitRequest{Topic: "jobs", Group: "workers"}, 15)
	if a.Found != nil || a.Seq != 86 {
		t.Errorf("15 lines from the end: found %v, go on from %d; want nothing, from 86", a.Found, a.Seq)
	}
	// Before the first claim: the start of the record.
	a = ask(history.CommitRequest{Topic: "jobs", Group: "workers", Before: 20}, 1000)
	if a.Found != nil || a.Seq != 0 {
		t.Errorf("before 20: found %v, seq %d; want nothing, the start", a.Found, a.Seq)
	}
	for name, b := range map[string][]byte{
		"garbage":   {0x1f},
		"bad group": mustEncode(t, &history.CommitRequest{Topic: "jobs", Group: "Bad Group"}),
		"bad topic": mustEncode(t, &history.CommitRequest{Topic: "_hb", Group: "workers"}),
	} {
		if _, err := serveCommittedBytes(st, testNS, testSelf, 10, b); !errors.Is(err, errBadRequest) && !errors.Is(err, history.ErrMalformedPage) {
			t.Errorf("%s: %v; want a bad request", name, err)
		}
	}
}
