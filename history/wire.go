package history

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/meshbot/meshbot/envelope"
)

// The wire of the history service (docs/PROTOCOL.md §7): the requests a
// reader sends to a recorder and the answers it gets, one CBOR map each in
// a mesh request's payload. Readers (Replay, Source) and recorders
// (history/recorder) both use these types and decoders; everything that
// arrives from the network goes through a Decode function, which refuses
// what does not decode with ErrMalformedPage.

// Service is the history recorder's service name; MethodRead the method
// that serves pages (ReadRequest → Page); MethodCommitted the method that
// finds a group's last committed offset in the record (CommitRequest →
// CommitAnswer).
const (
	Service         = "history"
	MethodRead      = "history.read"
	MethodCommitted = "history.committed"
)

// Page bounds.
const (
	DefaultPageRecords = 500
	MaxPageRecords     = 2000
	MaxPageBytes       = 32 << 10
)

// ReadRequest asks for one page of a topic's recorded lines. With
// Recorder set, the page holds the lines with sequence numbers FromSeq to
// FromSeq+Max-1 in that recorder's store; otherwise it starts after the
// line at After, else at the first line at or after Since, else at the
// first line kept, and holds at most Max lines.
type ReadRequest struct {
	Topic      string `cbor:"1,keyasint"`
	AfterTime  int64  `cbor:"2,keyasint,omitempty"` // Unix nanoseconds
	AfterMsgID string `cbor:"3,keyasint,omitempty"`
	Since      int64  `cbor:"4,keyasint,omitempty"` // Unix nanoseconds
	Max        int    `cbor:"5,keyasint,omitempty"` // records, ≤ MaxPageRecords
	FromSeq    uint64 `cbor:"6,keyasint,omitempty"`
	Recorder   string `cbor:"7,keyasint,omitempty"` // whose sequence numbers
	// Binary asks for the lines' envelope data as bytes (Page.Data).
	Binary bool `cbor:"8,keyasint,omitempty"`
}

// PageRecord is one recorded line in a page.
type PageRecord struct {
	_     struct{} `cbor:",toarray"`
	Time  int64    // Unix nanoseconds
	MsgID string
	Nick  string
	Tags  map[string]string
	Body  string
}

// Size is what the line counts against MaxPageBytes: its text, its tags
// and 64 bytes, with data (the envelope data tag's value given as bytes,
// Page.Data) counted as it is.
func (r *PageRecord) Size(data []byte) int {
	n := len(r.Body) + 64
	for k, v := range r.Tags {
		n += len(k) + len(v) + 2
	}
	if data != nil {
		n += len(envelope.TagData) + len(data) + 2
	}
	return n
}

// b64 is the envelope data's text encoding (docs/PROTOCOL.md §3); strict:
// a value it decodes encodes back to the same text.
var b64 = base64.RawURLEncoding.Strict()

// TakeData takes the envelope data tag out of a whole (unfragmented) mesh
// line's tags and returns it decoded, for a page asked for with Binary;
// for any other line it returns nil and leaves tags untouched.
func TakeData(tags map[string]string) []byte {
	v, ok := tags[envelope.TagData]
	if !ok || v == "" {
		return nil
	}
	if _, frag := tags[envelope.TagFragment]; frag {
		return nil
	}
	data, err := b64.DecodeString(v)
	if err != nil {
		return nil
	}
	delete(tags, envelope.TagData)
	return data
}

// Page is a recorder's answer to a ReadRequest.
type Page struct {
	Records []PageRecord `cbor:"1,keyasint"`
	// End: no line was recorded after this page's last when it was read.
	End bool `cbor:"2,keyasint,omitempty"`
	// Remaining counts the lines recorded after this page.
	Remaining uint64 `cbor:"3,keyasint,omitempty"`
	// Recorder is the instance that answered.
	Recorder string `cbor:"4,keyasint,omitempty"`
	// Through is the sequence number, in Recorder's store, of the last
	// line the page covers: it holds every line kept from where it starts
	// through Through (0: the page covers nothing).
	Through uint64 `cbor:"5,keyasint,omitempty"`
	// Last is Recorder's last sequence number of the topic when the page
	// was read.
	Last uint64 `cbor:"6,keyasint,omitempty"`
	// Moved: the request named another recorder's sequence numbers; the
	// page holds no lines.
	Moved bool `cbor:"7,keyasint,omitempty"`
	// Data, for a request with Binary, goes with Records (empty, or one
	// entry per record): the envelope data of a whole mesh line, decoded
	// from its tag, which the record then leaves out; nil for other lines.
	Data [][]byte `cbor:"8,keyasint,omitempty"`
}

// Add appends one line to the page, with its envelope data (nil: none),
// keeping Data empty until a line has some and one entry per record from
// then on.
func (p *Page) Add(r PageRecord, data []byte) {
	p.Records = append(p.Records, r)
	switch {
	case data != nil:
		if p.Data == nil {
			p.Data = make([][]byte, len(p.Records)-1)
		}
		p.Data = append(p.Data, data)
	case p.Data != nil:
		p.Data = append(p.Data, nil)
	}
}

// CommitRequest asks for the last line, before Before (a recorder's
// sequence number; 0: from the end), that carries a HistoryClaim of Group
// on Topic with a committed offset.
type CommitRequest struct {
	Topic  string `cbor:"1,keyasint"`
	Group  string `cbor:"2,keyasint"`
	Before uint64 `cbor:"3,keyasint,omitempty"`
}

// CommitAnswer is a recorder's answer to a CommitRequest.
type CommitAnswer struct {
	// Found is the line, when one was found.
	Found *PageRecord `cbor:"1,keyasint,omitempty"`
	// Seq is the found line's sequence number in the answering recorder;
	// without a line found, where to go on looking back from (0: the
	// start of the record was reached).
	Seq uint64 `cbor:"2,keyasint,omitempty"`
	// Recorder is the instance that answered (its sequence numbers).
	Recorder string `cbor:"3,keyasint,omitempty"`
}

var (
	wireEnc = envelope.EncMode()
	wireDec = envelope.StrictDecMode(8, MaxPageRecords, 256)
)

// ErrMalformedPage is returned for a request or answer of the history
// service that does not decode, or that breaks the protocol's rules.
var ErrMalformedPage = errors.New("history: malformed page")

// Encode returns the request's wire form.
func (r *ReadRequest) Encode() ([]byte, error) { return wireEnc.Marshal(r) }

// Encode returns the page's wire form.
func (p *Page) Encode() ([]byte, error) { return wireEnc.Marshal(p) }

// Encode returns the request's wire form.
func (r *CommitRequest) Encode() ([]byte, error) { return wireEnc.Marshal(r) }

// Encode returns the answer's wire form.
func (a *CommitAnswer) Encode() ([]byte, error) { return wireEnc.Marshal(a) }

// decode reads one wire value into v.
func decode(what string, b []byte, v any) error {
	if err := wireDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformedPage, what, err)
	}
	return nil
}

// DecodeReadRequest reads a ReadRequest, as a recorder receives it.
func DecodeReadRequest(b []byte) (ReadRequest, error) {
	var r ReadRequest
	err := decode("read request", b, &r)
	return r, err
}

// DecodePage reads a Page, as a reader receives it. A page whose Data does
// not go with its Records (neither empty nor one per record) is refused.
func DecodePage(b []byte) (*Page, error) {
	var p Page
	if err := decode("page", b, &p); err != nil {
		return nil, err
	}
	if len(p.Data) != 0 && len(p.Data) != len(p.Records) {
		return nil, fmt.Errorf("%w: %d data for %d lines", ErrMalformedPage, len(p.Data), len(p.Records))
	}
	return &p, nil
}

// DecodeCommitRequest reads a CommitRequest, as a recorder receives it.
func DecodeCommitRequest(b []byte) (CommitRequest, error) {
	var r CommitRequest
	err := decode("commit request", b, &r)
	return r, err
}

// DecodeCommitAnswer reads a CommitAnswer, as a reader receives it.
func DecodeCommitAnswer(b []byte) (*CommitAnswer, error) {
	var a CommitAnswer
	if err := decode("commit answer", b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}
