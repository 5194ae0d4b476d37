package envelope

import (
	"fmt"
	"strconv"
)

// Batches (docs/PROTOCOL.md §3.9): at high rates a sender packs several
// small envelopes for one target into one tag-carrier line. The line's data
// is then a CBOR array of byte strings, each a sealed envelope (signed on
// its own), instead of one sealed envelope (a CBOR map). Receivers tell the
// two apart by the first byte.

// MaxBatch bounds the envelopes of one batch.
const MaxBatch = 256

// SplitBatch returns the sealed envelopes held in data: data itself when it
// is one envelope, the elements when it is a batch.
func SplitBatch(data []byte) ([][]byte, error) {
	return appendBatch(nil, data)
}

// appendBatch is SplitBatch appending to dst.
func appendBatch(dst [][]byte, data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrTruncated)
	}
	switch data[0] >> 5 {
	case 5: // map: one envelope
		return append(dst, data), nil
	case 4: // array: a batch
	default:
		return nil, fmt.Errorf("%w: neither an envelope nor a batch", ErrMalformed)
	}
	n, rest, err := readHead(data, 4)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > MaxBatch {
		return nil, fmt.Errorf("%w: batch of %d envelopes (1..%d)", ErrMalformed, n, MaxBatch)
	}
	out := dst
	if dst == nil {
		out = make([][]byte, 0, n)
	}
	for range n {
		var size uint64
		size, rest, err = readHead(rest, 2)
		if err != nil {
			return nil, err
		}
		if size > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: batch element of %d bytes, %d left", ErrTruncated, size, len(rest))
		}
		out = append(out, rest[:size])
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the batch", ErrMalformed, len(rest))
	}
	return out, nil
}

// readHead reads a definite-length CBOR head of major type mt.
func readHead(b []byte, mt byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: batch", ErrTruncated)
	}
	if b[0]>>5 != mt {
		return 0, nil, fmt.Errorf("%w: batch: major type %d, want %d", ErrMalformed, b[0]>>5, mt)
	}
	info := b[0] & 0x1f
	var size int
	switch {
	case info < 24:
		return uint64(info), b[1:], nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	default:
		return 0, nil, fmt.Errorf("%w: batch: length form %d", ErrMalformed, info)
	}
	if len(b) < 1+size {
		return 0, nil, fmt.Errorf("%w: batch", ErrTruncated)
	}
	var n uint64
	for _, c := range b[1 : 1+size] {
		n = n<<8 | uint64(c)
	}
	return n, b[1+size:], nil
}

// batchOverhead is the CBOR framing of a batch of n elements of the given sizes.
func batchOverhead(sizes []int) int {
	n := headLen(uint64(len(sizes)))
	for _, s := range sizes {
		n += headLen(uint64(s))
	}
	return n
}

// BatchFits reports whether sealed envelopes of the given sizes fit one
// tag-carrier line within lim.
func BatchFits(sizes []int, lim Limits) bool {
	total := batchOverhead(sizes)
	for _, s := range sizes {
		total += s
	}
	return b64.EncodedLen(total) <= tagRoom(lim)
}

// tagRoom is the base64 room of one tag-carrier line.
func tagRoom(lim Limits) int {
	tagBytes := lim.TagBytes
	if tagBytes <= 0 {
		tagBytes = DefaultTagBytes
	}
	return tagBytes - lim.TagReserve - len("@"+TagData+"= ")
}

// EncodeBatchLine packs sealed envelopes (2 or more, for one target) into
// one tag-carrier line. envs supply the legible summary. It fails with
// ErrTooLarge when they do not fit (check with BatchFits).
func EncodeBatchLine(envs []*Envelope, sealed [][]byte, lim Limits) (Line, error) {
	if len(envs) < 2 || len(envs) != len(sealed) || len(envs) > MaxBatch {
		return Line{}, fmt.Errorf("envelope: a batch needs 2..%d envelopes, got %d", MaxBatch, len(envs))
	}
	sizes := make([]int, len(sealed))
	total := 0
	for i, s := range sealed {
		sizes[i] = len(s)
		total += len(s)
	}
	if !BatchFits(sizes, lim) {
		return Line{}, fmt.Errorf("%w: batch does not fit one line", ErrTooLarge)
	}
	raw := appendHead(make([]byte, 0, total+batchOverhead(sizes)), 0x80, uint64(len(sealed)))
	payload := 0
	for i, s := range sealed {
		raw = appendHead(raw, 0x40, uint64(len(s)))
		raw = append(raw, s...)
		payload += len(envs[i].Payload)
	}
	first := envs[0]
	body := withHuman(SummaryPrefix+" "+first.Summary()+" +"+strconv.Itoa(len(envs)-1)+" more ("+strconv.Itoa(payload)+" B)", first, lim.BodyBytes)
	return Line{Tags: map[string]string{TagData: b64.EncodeToString(raw)}, Body: clip(body, lim.BodyBytes)}, nil
}
