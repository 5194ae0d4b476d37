package envelope

import "unsafe"

// One allocation per received envelope. A decoded envelope needs its
// struct, its sealed bytes (kept for signature checks and for copies that
// serve updates as their writers signed them) and its strings and payload.
// Unmarshal copies the sealed bytes into a block that holds the Envelope
// and its Auth too, and the strings, payload, signature and nonce of the
// envelope point into that copy: one allocation, sized to the Go
// allocator's size classes. Whatever part of an envelope a caller keeps
// (its payload, its topic) keeps the whole block alive; the block is never
// written after Unmarshal returns (an encrypted payload is opened in a
// copy of its own, see unmarshalInto).

// blockHead is the part of a block that is not the sealed bytes.
const blockHead = unsafe.Sizeof(Envelope{}) + unsafe.Sizeof(Auth{})

// block is an envelope with room for its sealed bytes; B is a byte array.
type block[B any] struct {
	env  Envelope
	auth Auth
	buf  B
}

// newBlockOf allocates a block whose buffer is a B.
func newBlockOf[B any]() (*Envelope, *Auth, []byte) {
	b := new(block[B])
	return &b.env, &b.auth, unsafe.Slice((*byte)(unsafe.Pointer(&b.buf)), unsafe.Sizeof(b.buf))
}

// newBlock returns an envelope, a spare Auth and a buffer of at least n
// bytes, in one allocation of one of the allocator's size classes; an
// envelope too large for the largest block gets its struct and buffer
// apart.
func newBlock(n int) (*Envelope, *Auth, []byte) {
	switch {
	case uintptr(n) <= 384-blockHead:
		return newBlockOf[[384 - blockHead]byte]()
	case uintptr(n) <= 512-blockHead:
		return newBlockOf[[512 - blockHead]byte]()
	case uintptr(n) <= 640-blockHead:
		return newBlockOf[[640 - blockHead]byte]()
	case uintptr(n) <= 768-blockHead:
		return newBlockOf[[768 - blockHead]byte]()
	case uintptr(n) <= 1024-blockHead:
		return newBlockOf[[1024 - blockHead]byte]()
	case uintptr(n) <= 1280-blockHead:
		return newBlockOf[[1280 - blockHead]byte]()
	case uintptr(n) <= 1536-blockHead:
		return newBlockOf[[1536 - blockHead]byte]()
	case uintptr(n) <= 2048-blockHead:
		return newBlockOf[[2048 - blockHead]byte]()
	case uintptr(n) <= 3072-blockHead:
		return newBlockOf[[3072 - blockHead]byte]()
	case uintptr(n) <= 4096-blockHead:
		return newBlockOf[[4096 - blockHead]byte]()
	case uintptr(n) <= 6144-blockHead:
		return newBlockOf[[6144 - blockHead]byte]()
	case uintptr(n) <= 8192-blockHead:
		return newBlockOf[[8192 - blockHead]byte]()
	}
	return new(Envelope), new(Auth), make([]byte, n)
}
