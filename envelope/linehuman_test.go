package envelope

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func humanEvent(payload string) *Envelope {
	e := New(KindEvent, Sender{Service: "orders", Instance: "a1b2c3", Incarnation: 7}, "orders.created", []byte(payload), t0)
	e.Headers.ContentType = "application/json"
	return e
}

// decodeAll decodes lines as one receiver and returns the envelope.
func decodeAll(t *testing.T, lines []Line) *Envelope {
	t.Helper()
	d := NewDecoder(DecoderConfig{})
	var got *Envelope
	for _, l := range lines {
		envs, mesh, err := d.Decode("orders-a1b2c3", l.Tags, l.Body, t0)
		if !mesh || err != nil {
			t.Fatalf("%q: mesh=%v err=%v", l.Body, mesh, err)
		}
		if len(envs) == 1 {
			got = envs[0]
		}
	}
	if got == nil {
		t.Fatalf("no envelope from %d lines", len(lines))
	}
	return got
}

// §3.2: the tag carrier's text shows the payload after the size.
func TestTagLineShowsPreview(t *testing.T) {
	e := humanEvent(`{"order":7,"item":"coffee"}`)
	sealed, _ := Seal(e, nil)
	lines, err := EncodeLines(e, sealed, CarrierTag, Limits{TagBytes: DefaultTagBytes, BodyBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	want := "mesh event orders.created " + e.ID.Short() + ` (27 B) {"order":7,"item":"coffee"}`
	if len(lines) != 1 || lines[0].Body != want {
		t.Fatalf("got %q, want %q", lines[0].Body, want)
	}
	decodeAll(t, lines)

	// Little room: the preview is cut to fit, the summary never.
	lines, _ = EncodeLines(e, sealed, CarrierTag, Limits{TagBytes: DefaultTagBytes, BodyBytes: len(want) - 8})
	if got := lines[0].Body; len(got) > len(want)-8 || !strings.HasPrefix(got, "mesh event orders.created "+e.ID.Short()+" (27 B) {") || !strings.HasSuffix(got, "…") {
		t.Errorf("cut line: %q", got)
	}
}

// §3.3: on the body carrier a person reads the summary, size and preview
// before the data; the receiver reads the data alone.
func TestBodyLineShowsTextBeforeData(t *testing.T) {
	e := humanEvent(`{"order":7,"item":"coffee"}`)
	sealed, _ := Seal(e, nil)
	lim := Limits{BodyBytes: 400}
	lines, err := EncodeLines(e, sealed, CarrierBody, lim)
	if err != nil {
		t.Fatal(err)
	}
	head := "~m2 event orders.created " + e.ID.Short() + ` (27 B) {"order":7,"item":"coffee"} `
	if len(lines) != 1 || !strings.HasPrefix(lines[0].Body, head) || len(lines[0].Body) > lim.BodyBytes {
		t.Fatalf("got %q, want it to start with %q", lines[0].Body, head)
	}
	if data := strings.TrimPrefix(lines[0].Body, head); data != b64.EncodeToString(sealed) {
		t.Errorf("data after the text: %q", data)
	}
	if got := decodeAll(t, lines); !bytes.Equal(got.Payload, e.Payload) {
		t.Errorf("payload %q", got.Payload)
	}

	// The text takes only the room the data leaves: the envelope still
	// travels on one line, with the preview cut.
	long := humanEvent(`{"note":"` + strings.Repeat("y", 150) + `"}`)
	sealed, _ = Seal(long, nil)
	tight := Limits{BodyBytes: len("~m2 event orders.created 12345678 (161 B) ") + b64.EncodedLen(len(sealed)) + 20}
	lines, _ = EncodeLines(long, sealed, CarrierBody, tight)
	if len(lines) != 1 || len(lines[0].Body) > tight.BodyBytes || !strings.Contains(lines[0].Body, `(161 B) {"note":"yy`) {
		t.Fatalf("tight line (%d bytes, room %d): %q", len(lines[0].Body), tight.BodyBytes, lines[0].Body)
	}
	decodeAll(t, lines)
}

// §3.6: a fragmented envelope shows its text once, on the first fragment,
// on either carrier; the other fragments carry the size.
func TestFragmentsShowTextOnce(t *testing.T) {
	e := humanEvent(strings.Repeat("z", 3000))
	sealed, _ := Seal(e, nil)
	lim := Limits{TagBytes: 1200, BodyBytes: 400}
	lines, err := EncodeLines(e, sealed, CarrierTag, lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		if has := strings.Contains(l.Body, "zzz"); has != (i == 0) {
			t.Errorf("tag fragment %d: %q", i+1, l.Body)
		}
	}
	decodeAll(t, lines)
	lines, _ = EncodeLines(e, sealed, CarrierBody, lim)
	for i, l := range lines {
		if !strings.HasPrefix(l.Body, "~m2 event orders.created "+e.ID.Short()+" ") || !strings.Contains(l.Body, "/"+strconv.Itoa(len(lines))+" (3000 B) ") {
			t.Errorf("body fragment %d: %.80q", i+1, l.Body)
		}
		// The first fragment shows the text before its data; the others
		// only the size.
		if has := strings.Contains(l.Body, " (3000 B) zzz"); has != (i == 0) {
			t.Errorf("body fragment %d: %.100q", i+1, l.Body)
		}
		if len(l.Body) > lim.BodyBytes {
			t.Errorf("body fragment %d is %d bytes, room %d", i+1, len(l.Body), lim.BodyBytes)
		}
	}
	decodeAll(t, lines)
}

// §3.2: encrypted payloads are never previewed, secret ones show
// SecretMark, binary ones their type.
func TestLinesNeverShowHiddenPayloads(t *testing.T) {
	_, _, ring := testKeys(t)
	key := bytes.Repeat([]byte{7}, 32)
	if err := ring.AddPayloadKey("p1", key); err != nil {
		t.Fatal(err)
	}
	c := NewCrypter("orders", ring)
	if err := c.UseMeshKey("p1"); err != nil {
		t.Fatal(err)
	}
	e := humanEvent(`{"card":"4111 1111"}`)
	enc, err := c.Encrypt(e, "")
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := Seal(enc, nil)
	secret := humanEvent(`{"card":"4111 1111"}`)
	secret.Secret = true
	sealedSecret, _ := Seal(secret, nil)
	bin := humanEvent("\x00\x01\x02")
	bin.Headers.ContentType = "application/x-protobuf"
	sealedBin, _ := Seal(bin, nil)
	for _, carrier := range []Carrier{CarrierTag, CarrierBody} {
		lim := Limits{TagBytes: DefaultTagBytes, BodyBytes: 400}
		ls, _ := EncodeLines(enc, sealed, carrier, lim)
		if strings.Contains(ls[0].Body, "card") || strings.Contains(ls[0].Body, "[") || !strings.Contains(ls[0].Body, "event+encrypted") {
			t.Errorf("%s encrypted: %q", carrier, ls[0].Body)
		}
		ls, _ = EncodeLines(secret, sealedSecret, carrier, lim)
		if strings.Contains(ls[0].Body, "card") || !strings.Contains(ls[0].Body, " B) "+SecretMark) {
			t.Errorf("%s secret: %q", carrier, ls[0].Body)
		}
		ls, _ = EncodeLines(bin, sealedBin, carrier, lim)
		if !strings.Contains(ls[0].Body, "(3 B) [binary application/x-protobuf]") {
			t.Errorf("%s binary: %q", carrier, ls[0].Body)
		}
	}
}

// §3.2: a sender's note replaces the preview (heartbeats, claims).
func TestLinesShowNote(t *testing.T) {
	e := New(KindHeartbeat, Sender{Service: "pricing", Instance: "x7"}, "pricing", []byte{0xa1, 0x01, 0x00}, t0)
	e.Human = "pricing/x7 load 0.12"
	sealed, _ := Seal(e, nil)
	ls, _ := EncodeLines(e, sealed, CarrierTag, Limits{TagBytes: DefaultTagBytes, BodyBytes: 400})
	if want := "mesh hb pricing " + e.ID.Short() + " (3 B) pricing/x7 load 0.12"; ls[0].Body != want {
		t.Errorf("got %q, want %q", ls[0].Body, want)
	}
}

// §3.9: a batch line shows the text of its first envelope.
func TestBatchLineShowsFirstText(t *testing.T) {
	var envs []*Envelope
	var sealed [][]byte
	for _, p := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
		e := humanEvent(p)
		s, _ := Seal(e, nil)
		envs, sealed = append(envs, e), append(sealed, s)
	}
	l, err := EncodeBatchLine(envs, sealed, Limits{TagBytes: DefaultTagBytes, BodyBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	if want := "mesh event orders.created " + envs[0].ID.Short() + ` +2 more (21 B) {"n":1}`; l.Body != want {
		t.Errorf("got %q, want %q", l.Body, want)
	}
}

// §3.3: format 2 body lines parse whatever their text holds; format 1
// lines still parse.
func TestParseBody2(t *testing.T) {
	for _, tc := range []struct {
		body               string
		short, data        string
		index, count       int
		wantErr, wantWhole bool
	}{
		{body: "~m2 event t 12345678 (5 B) hello AAAA", data: "AAAA", index: 1, count: 1},
		{body: "~m2 event t 12345678 (5 B) 1/2 3/4 looks like an index AAAA", data: "AAAA", index: 1, count: 1},
		{body: "~m2 event t 12345678 (0 B) AAAA", data: "AAAA", index: 1, count: 1},
		{body: "~m2 event t 12345678 2/3 (500 B) AAAA", short: "12345678", data: "AAAA", index: 2, count: 3},
		{body: "~m2 event t 12345678 AAAA", data: "AAAA", index: 1, count: 1},
		{body: "~m1 event t 12345678 1/2 AAAA", short: "12345678", data: "AAAA", index: 1, count: 2},
		{body: "~m1 event t 12345678 AAAA", data: "AAAA", index: 1, count: 1},
		{body: "~m2 event t 12345678 (5 B) text not*base64", wantErr: true},
		{body: "~m2 event t 12345678 4/3 (5 B) AAAA", wantErr: true},
		{body: "~m2 event t zzzzzzzz 1/3 (5 B) AAAA", wantErr: true},
		{body: "~m2 event t", wantErr: true},
	} {
		f, mesh, err := ParseLine(nil, tc.body)
		switch {
		case !mesh:
			t.Errorf("%q: not mesh", tc.body)
		case tc.wantErr != (err != nil):
			t.Errorf("%q: err %v", tc.body, err)
		case err == nil && (f.Data != tc.data || f.Short != tc.short || f.Index != tc.index || f.Count != tc.count || f.Carrier != CarrierBody):
			t.Errorf("%q: %+v", tc.body, f)
		}
	}
}

// Lines of text payloads of every size fit their budget on both carriers
// and decode to the envelope sent.
func TestTextPayloadLinesFit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abc xyz{}\":,é€שלום\x02\x03\n\u202e")
	for _, size := range []int{0, 1, 10, 60, 120, 180, 240, 300, 1000, 5000} {
		var b strings.Builder
		for b.Len() < size {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		e := humanEvent(b.String())
		sealed, _ := Seal(e, nil)
		lim := Limits{TagBytes: DefaultTagBytes, TagReserve: 20, BodyBytes: BodyBudget(512, "orders-a1b2c3!~orders@127.0.0.1", "#mesh.orders.created", 10)}
		for _, c := range []Carrier{CarrierTag, CarrierBody} {
			lines, err := EncodeLines(e, sealed, c, lim)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				if len(l.Body) > lim.BodyBytes {
					t.Fatalf("%s/%d: %d bytes > %d", c, size, len(l.Body), lim.BodyBytes)
				}
				if strings.ContainsAny(l.Body, "\x00\r\n\x02\x03\u202e") {
					t.Fatalf("%s/%d: control or formatting in %q", c, size, l.Body)
				}
			}
			if got := decodeAll(t, lines); !bytes.Equal(got.Payload, e.Payload) {
				t.Fatalf("%s/%d: payload differs", c, size)
			}
		}
	}
}
