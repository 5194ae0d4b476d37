package recorder

import (
	"errors"
	"testing"
	"time"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/history/store"
)

// Fuzz targets for what a recorder decodes from the network, through its
// handlers: read requests (servePage) and commit requests
// (serveCommitted), over a small store. Whatever the payload, the answer
// is a refusal as a bad request, or a well-formed answer that keeps the
// protocol's rules. Seed corpus: testdata/fuzz/.

// fuzzStore holds topic t: 40 events, a HistoryClaim of group workers at
// line 20, and 10 big lines in topic big.
func fuzzStore(f *testing.F) *store.Store {
	var recs []store.Record
	for i := 1; i <= 40; i++ {
		if i == 20 {
			recs = append(recs, claimRecord(f, "t", "workers", i, envelope.OffsetAt(testBase, "m0001"), nil))
			continue
		}
		recs = append(recs, eventRecord(f, "t", i))
	}
	big := make([]byte, 6000)
	for i := range big {
		big[i] = 'x'
	}
	for i := 1; i <= 10; i++ {
		recs = append(recs, store.Record{Channel: "#h.big", Time: testBase.Add(time.Duration(i)), Nick: "n", Body: string(big)})
	}
	return openStore(f, recs...)
}

// refused reports whether err is how a handler refuses a request.
func refused(err error) bool {
	return errors.Is(err, errBadRequest) || errors.Is(err, history.ErrMalformedPage)
}

func FuzzServePage(f *testing.F) {
	st := fuzzStore(f)
	for _, r := range []history.ReadRequest{
		{Topic: "t"},
		{Topic: "t", Max: 5, Binary: true},
		{Topic: "t", FromSeq: 10, Max: 3, Recorder: testSelf},
		{Topic: "t", FromSeq: 10, Recorder: "history/other"},
		{Topic: "t", AfterTime: testBase.Add(5 * time.Millisecond).UnixNano(), AfterMsgID: "m0005"},
		{Topic: "t", Since: testBase.Add(30 * time.Millisecond).UnixNano()},
		{Topic: "big", Max: history.MaxPageRecords},
		{Topic: "_hb", FromSeq: ^uint64(0), Recorder: testSelf, Max: -1},
	} {
		f.Add(mustEncode(f, &r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := servePageBytes(st, testNS, testSelf, b)
		if err != nil {
			if !refused(err) {
				t.Fatalf("not refused as a bad request: %v", err)
			}
			return
		}
		req, err := history.DecodeReadRequest(b)
		if err != nil {
			t.Fatalf("answered a request that does not decode: %v", err)
		}
		p, err := history.DecodePage(out)
		if err != nil {
			t.Fatalf("the answer does not decode: %v", err)
		}
		if p.Recorder != testSelf {
			t.Fatalf("answered as %q", p.Recorder)
		}
		if p.Moved {
			if len(p.Records) != 0 || req.Recorder == testSelf {
				t.Fatalf("moved with %d lines for a request of %q", len(p.Records), req.Recorder)
			}
			return
		}
		limit := req.Max
		if limit <= 0 || limit > history.MaxPageRecords {
			limit = history.DefaultPageRecords
		}
		size := 0
		for i := range p.Records {
			var data []byte
			if len(p.Data) > 0 {
				data = p.Data[i]
			}
			size += p.Records[i].Size(data)
		}
		switch {
		case len(p.Records) > limit:
			t.Fatalf("%d lines for %d asked", len(p.Records), limit)
		case len(p.Records) > 1 && size > history.MaxPageBytes:
			t.Fatalf("%d lines of %d bytes", len(p.Records), size)
		case p.End != (p.Through >= p.Last):
			t.Fatalf("end %v through %d of %d", p.End, p.Through, p.Last)
		case !p.End && p.Remaining != p.Last-p.Through:
			t.Fatalf("remaining %d through %d of %d", p.Remaining, p.Through, p.Last)
		case !req.Binary && len(p.Data) != 0:
			t.Fatal("data for a request that did not ask for bytes")
		}
	})
}

func FuzzServeCommitted(f *testing.F) {
	st := fuzzStore(f)
	for _, r := range []history.CommitRequest{
		{Topic: "t", Group: "workers"},
		{Topic: "t", Group: "workers", Before: 20},
		{Topic: "t", Group: "workers", Before: 21},
		{Topic: "t", Group: "others"},
		{Topic: "big", Group: "workers", Before: ^uint64(0)},
	} {
		f.Add(mustEncode(f, &r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := serveCommittedBytes(st, testNS, testSelf, 7, b)
		if err != nil {
			if !refused(err) {
				t.Fatalf("not refused as a bad request: %v", err)
			}
			return
		}
		req, err := history.DecodeCommitRequest(b)
		if err != nil {
			t.Fatalf("answered a request that does not decode: %v", err)
		}
		a, err := history.DecodeCommitAnswer(out)
		if err != nil {
			t.Fatalf("the answer does not decode: %v", err)
		}
		if a.Recorder != testSelf {
			t.Fatalf("answered as %q", a.Recorder)
		}
		if a.Found != nil {
			if _, ok := history.ClaimedOffset(candidates(), a.Found, req.Group); !ok || a.Seq == 0 {
				t.Fatalf("found line %d holds no claim of %q", a.Seq, req.Group)
			}
		}
		if req.Before != 0 && a.Seq >= req.Before {
			t.Fatalf("answered %d for a look before %d: the asker would not move back", a.Seq, req.Before)
		}
	})
}
