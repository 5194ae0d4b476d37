// Package envelope is meshbot's wire format: the Envelope (a CBOR map with
// small integer keys), its signatures, and the two ways it rides in IRC lines.
//
// What it guarantees:
//
//   - Encoding is CBOR core deterministic: one envelope, one byte string, so
//     a signature covers exactly what was sent. Unknown keys are ignored on
//     decode (newer minor additions pass through); a newer wire version is
//     refused with a *VersionError naming the versions this build speaks.
//   - Decoding never trusts its input: size, nesting, map and array limits
//     are enforced before and during decode, duplicate keys are rejected,
//     and every failure wraps one of the package's sentinel errors
//     (ErrMalformed, ErrTruncated, ErrTooLarge, ErrVersion, ErrUnsigned,
//     ErrForged, ErrUnknownKey, ErrDuplicate, ErrExpired, ErrFragment).
//     Nothing in this package panics on input from the network.
//   - Lines are legible: either carrier shows a person the kind, topic and
//     short id of every mesh line; lines that are not mesh lines (human
//     chatter) are reported as such by ParseLine, never as errors.
//   - Fragment reassembly is bounded in bytes, fragments, envelopes per
//     sender, total memory and age; what does not fit is evicted and
//     counted by reason.
//   - With DecoderConfig.BindSender, an envelope is accepted only from the
//     nick of its sender ("<service>-<instance>"), and with Accounts from
//     the account its service is bound to (ErrWrongSender), before its
//     signature is checked: in every trust mode, for live lines and for
//     recorded ones (OpenFrom).
//   - Payloads can be encrypted (Crypter: XChaCha20-Poly1305 under a mesh
//     key, or a key two services agree on with X25519), with every routing
//     field bound as associated data and key ids for rotation. A decoder
//     with the keys opens them (Envelope.Encrypted stays true); summaries
//     of encrypted envelopes say "+encrypted" and show nothing of them.
//
// What the user must do: pick the carrier from the server's capabilities
// (CarrierTag needs message-tags), size lines from what receivers see
// (BodyBudget, with a margin), and feed each connection's lines to one
// Decoder from one goroutine (Decode to act on lines; DecodeLine, the same
// steps, reports each of them for tools that show lines; AcceptUnchecked
// is for such tools only). Reassembler, Decoder and Guard are pure cores:
// they read no clock and start no goroutines; "now" is an argument.
//
// The protocol is written down in docs/PROTOCOL.md.
package envelope
