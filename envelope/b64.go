package envelope

import "fmt"

// The base64 of received lines. Every line's data is checked to be
// base64url (checkData) and then decoded; appendData does both in one pass
// over the text, with the errors of each: the decode of the data of a
// whole line, the most common line there is.

// b64Values maps each byte to its base64url value, 0xff outside the
// alphabet.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// appendData appends the bytes of s, unpadded base64url, to dst. It
// accepts what checkData accepts and b64 then decodes (trailing bits are
// ignored, as b64 does), and it refuses the rest with checkData's error
// for a byte outside the alphabet and ErrMalformed for a length no
// encoding has.
func appendData(dst []byte, s string) ([]byte, error) {
	if s == "" {
		return nil, checkData(s)
	}
	full, rem := len(s)/4, len(s)%4
	if rem == 1 {
		if err := checkData(s); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: base64 of %d bytes", ErrMalformed, len(s))
	}
	size := full*3 + max(rem-1, 0)
	n := len(dst)
	if cap(dst)-n < size {
		dst = append(dst[:cap(dst)], make([]byte, n+size-cap(dst))...)
	}
	dst = dst[:n+size]
	out := dst[n:]
	var bad byte // bit 7 set by any byte outside the alphabet
	j := 0
	for i := 0; i+4 <= len(s); i += 4 {
		a, b, c, d := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]], b64Values[s[i+3]]
		bad |= a | b | c | d
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		o := out[j : j+3 : j+3]
		o[0], o[1], o[2] = byte(v>>16), byte(v>>8), byte(v)
		j += 3
	}
	if rem > 0 {
		t := s[full*4:]
		a, b := b64Values[t[0]], b64Values[t[1]]
		bad |= a | b
		v := uint32(a)<<18 | uint32(b)<<12
		if rem == 3 {
			c := b64Values[t[2]]
			bad |= c
			v |= uint32(c) << 6
			out[j+1] = byte(v >> 8)
		}
		out[j] = byte(v >> 16)
	}
	if bad&0x80 != 0 {
		return nil, checkData(s)
	}
	return dst, nil
}
