package envelope

import (
	"bytes"
	"errors"
	"testing"
)

// checkAppendData checks appendData against its naive twin: checkData,
// then b64's decoder.
func checkAppendData(t *testing.T, prefix []byte, s string) {
	t.Helper()
	got, err := appendData(append([]byte(nil), prefix...), s)
	werr := checkData(s)
	var want []byte
	if werr == nil {
		var derr error
		if want, derr = b64.DecodeString(s); derr != nil {
			werr = derr
		}
	}
	switch {
	case (err == nil) != (werr == nil):
		t.Fatalf("appendData(%q): error %v, the naive decode's %v", s, err, werr)
	case err != nil:
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("appendData(%q): %v wraps no sentinel", s, err)
		}
		if cerr := checkData(s); cerr != nil && err.Error() != cerr.Error() {
			t.Fatalf("appendData(%q): %v, checkData says %v", s, err, cerr)
		}
	case !bytes.Equal(got, append(append([]byte(nil), prefix...), want...)):
		t.Fatalf("appendData(%q) = %x, want %x after %x", s, got, want, prefix)
	}
}

// TestAppendData: the data decoder gives what checking and decoding gave,
// for every length's remainder, bytes outside the alphabet, and after
// bytes already in the buffer.
func TestAppendData(t *testing.T) {
	for _, s := range []string{"", "A", "AB", "ABC", "ABCD", "ABCDE", "ABCDEF", "ABCDEFG", "AB_-", "__8", "AB=",
		"AB\r\n", "ABC%", "%", "ABCD EF", "ABCDEFGH\x00", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"} {
		checkAppendData(t, nil, s)
		checkAppendData(t, []byte("xyz"), s)
	}
}

func FuzzAppendData(f *testing.F) {
	for _, s := range []string{"", "A", "ABCD", "ABCDEFG", "AB\r\n", "_-_-_", "QUJD%"} {
		f.Add([]byte{1, 2}, s)
	}
	f.Fuzz(func(t *testing.T, prefix []byte, s string) {
		checkAppendData(t, prefix, s)
	})
}
