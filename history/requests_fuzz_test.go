package history_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
)

// The requests and answers of the history service as they come from the
// network, decoded directly (the recorder's handlers are fuzzed in
// history/recorder): read and commit requests, the stored-publish track
// and stored requests, and their answers. No input panics, errors wrap
// ErrMalformedPage, and what decodes encodes to bytes that decode to the
// same encoding. Seed corpus: testdata/fuzz/.

// fuzzRoundTrip checks what one decoder accepted re-encodes stably.
func fuzzRoundTrip(t *testing.T, err error, encode func() ([]byte, error), decodeAgain func([]byte) ([]byte, error)) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, history.ErrMalformedPage) {
			t.Fatalf("error does not wrap ErrMalformedPage: %v", err)
		}
		return
	}
	b, err := encode()
	if err != nil {
		t.Fatalf("what decoded does not encode: %v", err)
	}
	b2, err := decodeAgain(b)
	if err != nil {
		t.Fatalf("re-encoded bytes do not decode: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not stable:\n%x\n%x", b, b2)
	}
}

func FuzzDecodeReadRequest(f *testing.F) {
	for _, r := range []history.ReadRequest{{Topic: "orders"}, {Topic: "orders", AfterTime: 1, AfterMsgID: "m", Max: 10, Binary: true}, {Topic: "t", FromSeq: 3, Recorder: "history/a"}, {Topic: "t", Since: 5}} {
		b, _ := r.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := history.DecodeReadRequest(b)
		fuzzRoundTrip(t, err, r.Encode, func(b []byte) ([]byte, error) {
			again, err := history.DecodeReadRequest(b)
			if err != nil {
				return nil, err
			}
			return again.Encode()
		})
	})
}

func FuzzDecodeCommitRequest(f *testing.F) {
	for _, r := range []history.CommitRequest{{Topic: "orders", Group: "billing"}, {Topic: "orders", Group: "g", Before: 99}} {
		b, _ := r.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := history.DecodeCommitRequest(b)
		fuzzRoundTrip(t, err, r.Encode, func(b []byte) ([]byte, error) {
			again, err := history.DecodeCommitRequest(b)
			if err != nil {
				return nil, err
			}
			return again.Encode()
		})
	})
}

func FuzzDecodeStoredRequest(f *testing.F) {
	for _, r := range []history.StoredRequest{{Topic: "orders", ID: envelope.NewID()}, {Topic: "orders", ID: envelope.NewID(), MsgID: "m1"}} {
		b, _ := r.Encode()
		f.Add(b)
	}
	tr, _ := (&history.TrackRequest{Topic: "orders"}).Encode()
	f.Add(tr)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := history.DecodeStoredRequest(b)
		fuzzRoundTrip(t, err, r.Encode, func(b []byte) ([]byte, error) {
			again, err := history.DecodeStoredRequest(b)
			if err != nil {
				return nil, err
			}
			return again.Encode()
		})
		if err == nil && r.ID.IsZero() {
			t.Fatal("accepted a stored request without an envelope id")
		}
		tr, err := history.DecodeTrackRequest(b)
		fuzzRoundTrip(t, err, tr.Encode, func(b []byte) ([]byte, error) {
			again, err := history.DecodeTrackRequest(b)
			if err != nil {
				return nil, err
			}
			return again.Encode()
		})
		a, err := history.DecodeStoredAnswer(b)
		if err == nil {
			fuzzRoundTrip(t, nil, a.Encode, func(b []byte) ([]byte, error) {
				again, err := history.DecodeStoredAnswer(b)
				if err != nil {
					return nil, err
				}
				return again.Encode()
			})
		} else if !errors.Is(err, history.ErrMalformedPage) {
			t.Fatalf("error does not wrap ErrMalformedPage: %v", err)
		}
	})
}
