package recorder

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
	"github.com/meshbot/meshbot/state"
)

// stateRecords makes the record lines of state updates of domain: each
// call writes keys at the next domain version, from nick.
type stateWriter struct {
	t      *testing.T
	domain string
	nick   string
	sender envelope.Sender
	v      uint64
	i      int
}

func (w *stateWriter) update(puts map[string]uint64, dels map[string]uint64, value string) *state.Update {
	w.v++
	u := &state.Update{ID: envelope.NewID(), Domain: w.domain, Writer: w.sender, SentAt: testBase.UnixNano(), Version: w.v}
	for _, k := range sortedKeys(puts) {
		u.Puts = append(u.Puts, state.KeyPut{Key: k, Version: puts[k], Value: []byte(value)})
	}
	for _, k := range sortedKeys(dels) {
		u.Deletes = append(u.Deletes, state.KeyDelete{Key: k, Version: dels[k]})
	}
	return u
}

func sortedKeys(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// records returns the lines that carry u (several for a large update).
func (w *stateWriter) records(u *state.Update) []store.Record {
	env, err := u.Envelope()
	if err != nil {
		w.t.Fatal(err)
	}
	sealed, err := envelope.Marshal(env)
	if err != nil {
		w.t.Fatal(err)
	}
	ls, err := envelope.EncodeLines(env, sealed, envelope.CarrierTag, envelope.Limits{TagBytes: 4094, BodyBytes: 400})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []store.Record
	for _, l := range ls {
		w.i++
		at := testBase.Add(time.Duration(w.i) * time.Millisecond)
		out = append(out, store.Record{Channel: "#" + testNS + "." + state.Topic(w.domain), Time: at, MsgID: fmt.Sprintf("m%05d", w.i), Nick: w.nick, Tags: l.Tags, Body: l.Body})
	}
	return out
}

// TestStateIndex: a recorder's index answers the latest update of every
// key (and the domain's top update), and a key's last versions, bounded;
// fragmented updates come with all their lines; updates not of the owner
// are not indexed; an index rebuilt from the store answers the same
// (§8.10).
func TestStateIndex(t *testing.T) {
	w := &stateWriter{t: t, domain: "cfg.app", nick: "cfg-a1", sender: envelope.Sender{Service: "cfg", Instance: "a1", Incarnation: 1}}
	var recs []store.Record
	latest := map[string]string{}
	for round := 1; round <= 12; round++ {
		for k := range 30 {
			key := fmt.Sprintf("k%02d", k)
			value := fmt.Sprintf("r%d", round)
			recs = append(recs, w.records(w.update(map[string]uint64{key: uint64(round)}, nil, value))...)
			latest[key] = value
		}
	}
	// A large update (fragmented) of one key, a delete, and a forgery.
	big := strings.Repeat("B", 9000)
	recs = append(recs, w.records(w.update(map[string]uint64{"big": 1}, nil, big))...)
	latest["big"] = big
	recs = append(recs, w.records(w.update(nil, map[string]uint64{"k00": 13}, ""))...)
	delete(latest, "k00")
	forger := &stateWriter{t: t, domain: "cfg.app", nick: "billing-x", sender: envelope.Sender{Service: "cfg", Instance: "evil"}, v: 1000, i: w.i}
	recs = append(recs, forger.records(forger.update(map[string]uint64{"k01": 99}, nil, "forged"))...)

	st := openStore(t)
	x := newStateIndex(st, testNS, 0, func() *envelope.Decoder { return envelope.NewDecoder(envelope.DecoderConfig{}) })
	for _, r := range recs {
		rs := []store.Record{r}
		if err := st.Append(rs...); err != nil {
			t.Fatal(err)
		}
		x.add(rs[0])
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	check := func(name string, x *stateIndex) {
		t.Helper()
		got := map[string]string{}
		deleted := map[string]bool{}
		var top uint64
		req := history.StateRequest{Domain: "cfg.app"}
		for pages := 0; ; pages++ {
			a, err := x.answer(req, testSelf)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := a.Encode()
			if len(b) > 2*history.MaxPageBytes+16<<10 {
				t.Errorf("%s: an answer of %d bytes", name, len(b))
			}
			dec := envelope.NewDecoder(envelope.DecoderConfig{})
			for _, r := range a.Records {
				envs, _, err := dec.Decode(r.Nick, r.Tags, r.Body, time.Unix(0, r.Time))
				if err != nil {
					t.Fatal(err)
				}
				for _, env := range envs {
					u, err := state.DecodeUpdate(env, r.Nick, "", nil)
					if err != nil {
						t.Fatal(err)
					}
					top = max(top, u.Version)
					for _, p := range u.Puts {
						got[p.Key] = string(p.Value)
					}
					for _, d := range u.Deletes {
						deleted[d.Key] = true
					}
				}
			}
			if a.End {
				break
			}
			if pages > 100 || a.Last <= req.After {
				t.Fatalf("%s: paging does not advance (%q after %q)", name, a.Last, req.After)
			}
			req.After = a.Last
		}
		for k, v := range latest {
			if got[k] != v {
				t.Errorf("%s: key %s is %.20q, want %.20q", name, k, got[k], v)
			}
		}
		if !deleted["k00"] || top != w.v {
			t.Errorf("%s: the delete of k00 (%v) or the top version (%d, want %d) is missing", name, deleted["k00"], top, w.v)
		}
		// Versions of one key: the last 8 kept, oldest first.
		a, err := x.answer(history.StateRequest{Domain: "cfg.app", Key: "k05", Versions: 3}, testSelf)
		if err != nil {
			t.Fatal(err)
		}
		if a.Kept != history.DefaultStateVersions || len(a.Records) != 3 {
			t.Errorf("%s: k05 keeps %d versions, answered %d lines; want %d and 3", name, a.Kept, len(a.Records), history.DefaultStateVersions)
		}
		a, _ = x.answer(history.StateRequest{Domain: "cfg.app", Key: "k01"}, testSelf)
		for _, r := range a.Records {
			if r.Nick == "billing-x" {
				t.Errorf("%s: the forged update of k01 is indexed", name)
			}
		}
	}
	check("live", x)
	rebuilt := newStateIndex(st, testNS, 0, func() *envelope.Decoder { return envelope.NewDecoder(envelope.DecoderConfig{}) })
	rebuilt.build()
	check("rebuilt", rebuilt)
}
