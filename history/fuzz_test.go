package history_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
)

// Fuzz targets for what a reader decodes from the network: pages and
// commit answers. (What a recorder decodes — read and commit requests —
// is fuzzed through the recorder's handlers in history/recorder.) Seed
// corpus: testdata/fuzz/.

func seedLine() history.PageRecord {
	return history.PageRecord{Time: 1_800_000_000_000_000_000, MsgID: "m1", Nick: "orders-1",
		Tags: map[string]string{"msgid": "m1", "+meshbot/d": "AAEC"}, Body: "~m1 event"}
}

func FuzzDecodePage(f *testing.F) {
	for _, p := range []history.Page{
		{},
		{Records: []history.PageRecord{seedLine()}, Recorder: "history/a", Through: 7, Last: 9, Remaining: 2},
		{Records: []history.PageRecord{seedLine(), seedLine()}, Data: [][]byte{{0xa0}, nil}, End: true, Through: 2, Last: 2},
		{Recorder: "history/b", Moved: true},
	} {
		b, err := p.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x01, 0x9f})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := history.DecodePage(b)
		if err != nil {
			if !errors.Is(err, history.ErrMalformedPage) {
				t.Fatalf("error does not wrap ErrMalformedPage: %v", err)
			}
			return
		}
		if len(p.Data) != 0 && len(p.Data) != len(p.Records) {
			t.Fatalf("accepted %d data for %d lines", len(p.Data), len(p.Records))
		}
		for i := range p.Records {
			var data []byte
			if len(p.Data) > 0 {
				data = p.Data[i]
			}
			if p.Records[i].Size(data) < 64 {
				t.Fatalf("line %d counts %d bytes", i, p.Records[i].Size(data))
			}
		}
		// What decodes encodes, and decodes again to the same encoding.
		b2, err := p.Encode()
		if err != nil {
			t.Fatalf("a decoded page does not encode: %v", err)
		}
		p2, err := history.DecodePage(b2)
		if err != nil {
			t.Fatalf("a re-encoded page does not decode: %v", err)
		}
		if b3, _ := p2.Encode(); !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable:\n%x\n%x", b2, b3)
		}
	})
}

func FuzzDecodeCommitAnswer(f *testing.F) {
	line := seedLine()
	for _, a := range []history.CommitAnswer{
		{},
		{Found: &line, Seq: 40, Recorder: "history/a"},
		{Seq: 86, Recorder: "history/b"},
	} {
		b, err := a.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := history.DecodeCommitAnswer(b)
		if err != nil {
			if !errors.Is(err, history.ErrMalformedPage) {
				t.Fatalf("error does not wrap ErrMalformedPage: %v", err)
			}
			return
		}
		if a.Found != nil {
			// The asking member decodes the line it got with its trust;
			// a line of any content is refused or read, never a panic.
			dec := envelope.NewDecoder(envelope.DecoderConfig{Verifier: &envelope.Verifier{RequireSigned: true}})
			if c, ok := history.ClaimedOffset(dec, a.Found, "workers"); ok && c.IsZero() {
				t.Fatal("a zero committed offset reported as found")
			}
		}
		b2, err := a.Encode()
		if err != nil {
			t.Fatalf("a decoded answer does not encode: %v", err)
		}
		if _, err := history.DecodeCommitAnswer(b2); err != nil {
			t.Fatalf("a re-encoded answer does not decode: %v", err)
		}
	})
}
