package envelope

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for bad input wraps one
// of them, so callers can count rejections by reason with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed envelope or mesh line.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrTruncated: the envelope or line ends before it is complete.
	ErrTruncated = errors.New("envelope: truncated")
	// ErrTooLarge: over the configured size limit.
	ErrTooLarge = errors.New("envelope: too large")
	// ErrVersion: a wire version this build does not speak (see VersionError).
	ErrVersion = errors.New("envelope: unsupported version")
	// ErrUnsigned: the envelope has no signature and signatures are required.
	ErrUnsigned = errors.New("envelope: unsigned")
	// ErrForged: the signature does not verify.
	ErrForged = errors.New("envelope: bad signature")
	// ErrUnknownKey: signed with a key that is not in the keyring, or with a
	// key that does not belong to the sending service.
	ErrUnknownKey = errors.New("envelope: unknown signing key")
	// ErrDuplicate: an envelope with this id was already accepted (a replay).
	ErrDuplicate = errors.New("envelope: duplicate")
	// ErrExpired: the sender time is outside the accepted window.
	ErrExpired = errors.New("envelope: outside time window")
	// ErrFragment: a fragment that does not fit its envelope (wrong count,
	// out of range, or its envelope was evicted).
	ErrFragment = errors.New("envelope: bad fragment")
	// ErrWrongSender: the envelope's sender (service, instance) is not the
	// nick that sent its line, or the line's account is not the one the
	// sending service is bound to (docs/PROTOCOL.md §4.4).
	ErrWrongSender = errors.New("envelope: sender does not match the line's nick or account")
	// ErrUnencrypted: the payload travels in clear where encryption is
	// required (docs/PROTOCOL.md §4.6).
	ErrUnencrypted = errors.New("envelope: payload not encrypted")
)

// VersionError reports an envelope written by a newer (or unknown) version
// of the protocol. It matches ErrVersion with errors.Is.
type VersionError struct {
	Got uint8 // version found on the wire
	Max uint8 // newest version this build speaks
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("envelope: wire version %d is not supported (this build speaks %d..%d); upgrade meshbot", e.Got, MinVersion, e.Max)
}

// Is makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// reasons names each sentinel, for counters and logs.
var reasons = []struct {
	err  error
	name string
}{
	{ErrTruncated, "truncated"}, {ErrTooLarge, "too-large"}, {ErrVersion, "version"},
	{ErrUnsigned, "unsigned"}, {ErrForged, "forged"}, {ErrUnknownKey, "unknown-key"},
	{ErrDuplicate, "duplicate"}, {ErrExpired, "expired"}, {ErrFragment, "fragment"},
	{ErrWrongSender, "wrong-sender"}, {ErrUnencrypted, "unencrypted"},
	{ErrMalformed, "malformed"},
}

// Reason names the rejection reason err wraps ("forged", "truncated", ...);
// any error that wraps none of the sentinels is "malformed".
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "malformed"
}

// Reasons lists every name Reason returns.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.name
	}
	return out
}
