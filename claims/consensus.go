package claims

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/meshbot/meshbot/envelope"
)

// Consensus offsets (docs/PROTOCOL.md §6.13): members of a group
// periodically post a HistoryClaim with the offset up to which they believe
// every event is completed; each other member acknowledges it when its own
// completed prefix reaches that far and rejects it otherwise; an offset
// acknowledged by a majority of the group's live members (the claimant
// counts for itself) is committed. Every member sees every claim, ack and
// reject in the channel, so every member computes the same committed
// offset. The committed offset only grows.

// EncodeOffset and DecodeOffset are the payload of HistoryClaim, -Ack and
// -Reject envelopes. EncodeOffset refuses an offset DecodeOffset would.
func EncodeOffset(o envelope.Offset) ([]byte, error) {
	if err := checkOffset(o); err != nil {
		return nil, err
	}
	return encMode.Marshal(o)
}

// checkOffset is what the decoders require of an offset: a time, and a
// msgid of valid UTF-8 (CBOR text) of at most MaxMsgIDLen bytes.
func checkOffset(o envelope.Offset) error {
	if o.Time <= 0 || !validMsgID(o.MsgID) {
		return fmt.Errorf("%w: offset %v", ErrMalformed, o)
	}
	return nil
}

func validMsgID(s string) bool { return len(s) <= envelope.MaxMsgIDLen && utf8.ValidString(s) }

// DecodeOffset reads an offset payload.
func DecodeOffset(b []byte) (envelope.Offset, error) {
	var o envelope.Offset
	if err := decMode.Unmarshal(b, &o); err != nil {
		return envelope.Offset{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := checkOffset(o); err != nil {
		return envelope.Offset{}, err
	}
	return o, nil
}

// maxOpenClaims bounds the HistoryClaims a Consensus tallies at once.
const maxOpenClaims = 64

type openClaim struct {
	id       envelope.ID
	claimant string
	offset   envelope.Offset
	mark     envelope.Offset // where the claim stands among this member's own lines (ClaimAt)
	acks     map[string]bool
	rejects  map[string]bool
}

// historyClaim is a HistoryClaim's payload: the claimed offset, then the
// committed offset its claimant knew when it posted the claim (zero when
// none). A member resuming after the whole group was away starts from the
// committed offset of the group's last claim in the record (§6.12).
type historyClaim struct {
	_         struct{} `cbor:",toarray"`
	Time      int64
	MsgID     string
	CommTime  int64
	CommMsgID string
}

// EncodeHistoryClaim is the payload of a HistoryClaim for claimed, sent
// by a member whose committed offset is committed.
func EncodeHistoryClaim(claimed, committed envelope.Offset) ([]byte, error) {
	if err := checkOffset(claimed); err != nil {
		return nil, err
	}
	if !committed.IsZero() {
		if err := checkOffset(committed); err != nil {
			return nil, err
		}
	}
	return encMode.Marshal(historyClaim{Time: claimed.Time, MsgID: claimed.MsgID, CommTime: committed.Time, CommMsgID: committed.MsgID})
}

// DecodeHistoryClaim reads a HistoryClaim's payload. A bare offset (the
// form without the committed offset) decodes with a zero committed.
func DecodeHistoryClaim(b []byte) (claimed, committed envelope.Offset, err error) {
	if len(b) > 0 && b[0] == 0x82 { // array of two: the bare offset
		claimed, err = DecodeOffset(b)
		return claimed, envelope.Offset{}, err
	}
	var h historyClaim
	if err := decMode.Unmarshal(b, &h); err != nil {
		return envelope.Offset{}, envelope.Offset{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	claimed, committed = envelope.Offset{Time: h.Time, MsgID: h.MsgID}, envelope.Offset{Time: h.CommTime, MsgID: h.CommMsgID}
	if claimed.Time <= 0 || !validMsgID(claimed.MsgID) || committed.Time < 0 || !validMsgID(committed.MsgID) ||
		(committed.Time == 0 && committed.MsgID != "") {
		return envelope.Offset{}, envelope.Offset{}, fmt.Errorf("%w: history claim %v (committed %v)", ErrMalformed, claimed, committed)
	}
	return claimed, committed, nil
}

// Consensus tallies the HistoryClaims of one group. It is pure and not
// safe for concurrent use.
type Consensus struct {
	open      []*openClaim // oldest first
	committed envelope.Offset
	mark      envelope.Offset // the latest mark of a claim a majority acknowledged
}

// Claim: claimant posted a HistoryClaim (envelope id) for offset.
func (c *Consensus) Claim(id envelope.ID, claimant string, offset envelope.Offset) {
	c.ClaimAt(id, claimant, offset, envelope.Offset{})
}

// ClaimAt is Claim with the claim's mark: an offset of this member's own
// lines at or past every event the claim vouches for (zero: none known).
// Offsets on receive clocks (a server without server-time) are times of
// different clocks, and the claimed offset does not say which of this
// member's lines it covers; the mark does (Mark).
func (c *Consensus) ClaimAt(id envelope.ID, claimant string, offset, mark envelope.Offset) {
	for _, oc := range c.open {
		if oc.id == id {
			return
		}
	}
	if len(c.open) == maxOpenClaims {
		c.open = c.open[1:]
	}
	c.open = append(c.open, &openClaim{id: id, claimant: claimant, offset: offset, mark: mark, acks: map[string]bool{}, rejects: map[string]bool{}})
}

// Vote: member acknowledged (ok) or rejected the claim id.
func (c *Consensus) Vote(id envelope.ID, member string, ok bool) {
	for _, oc := range c.open {
		if oc.id == id && member != oc.claimant {
			if ok {
				oc.acks[member] = true
				delete(oc.rejects, member)
			} else {
				oc.rejects[member] = true
				delete(oc.acks, member)
			}
		}
	}
}

// Commit returns the committed offset given the group's live members now:
// the highest claimed offset acknowledged by a majority of them (its
// claimant included, votes of members no longer live not counted).
// Claims at or below the committed offset are closed.
func (c *Consensus) Commit(live []string) envelope.Offset { return c.CommitWith(live, 0) }

// CommitWith is Commit for a group with absent members besides the live
// ones (unreachable, or dead by silence: they may be voting on the other
// side of a split, §6.14): a majority is then more than half of the live
// and the absent together.
func (c *Consensus) CommitWith(live []string, absent int) envelope.Offset {
	alive := make(map[string]bool, len(live))
	for _, m := range live {
		alive[m] = true
	}
	for _, oc := range c.open {
		votes := 0
		if alive[oc.claimant] {
			votes++
		}
		for m := range oc.acks {
			if alive[m] {
				votes++
			}
		}
		if 2*votes <= len(alive)+absent {
			continue
		}
		if c.committed.Before(oc.offset) {
			c.committed = oc.offset
		}
		if c.mark.Time < oc.mark.Time {
			c.mark = oc.mark
		}
	}
	keep := c.open[:0]
	for _, oc := range c.open {
		if c.committed.Before(oc.offset) {
			keep = append(keep, oc)
		}
	}
	clear(c.open[len(keep):])
	c.open = keep
	return c.committed
}

// Committed returns the committed offset.
func (c *Consensus) Committed() envelope.Offset { return c.committed }

// Mark returns the latest mark (ClaimAt) of a claim a majority
// acknowledged, zero when none had one. It only grows. The events this
// member saw before it and completed are ones it may forget as behind the
// committed offset: the claim vouches for those up to its prefix, and the
// rest came before its line.
func (c *Consensus) Mark() envelope.Offset { return c.mark }

// Resume starts the tally from an offset committed earlier (found in the
// record by a member that was away); the committed offset only grows.
func (c *Consensus) Resume(committed envelope.Offset) {
	if c.committed.Before(committed) {
		c.committed = committed
	}
}

// Prefix tracks a member's completed prefix: the events it saw, in the
// order it saw them, and how far from the start all are completed.
type Prefix struct {
	q      []prefixEntry
	head   int
	prefix envelope.Offset
	max    int
	full   bool // past max: tracking stopped, the prefix stays short of the untracked
}

type prefixEntry struct {
	id     envelope.ID
	offset envelope.Offset
}

// NewPrefix returns a tracker of at most max events not yet passed. Past
// that bound it stops tracking, and its prefix never moves past an event
// it did not track: safe, at the cost of no further commits from it.
func NewPrefix(max int) *Prefix { return &Prefix{max: max} }

// Seen: an event arrived at offset. It reports whether it is tracked.
func (p *Prefix) Seen(id envelope.ID, offset envelope.Offset) bool {
	if p.full || len(p.q)-p.head >= p.max {
		p.full = true
		return false
	}
	p.q = append(p.q, prefixEntry{id, offset})
	return true
}

// Advance moves the prefix over the completed events at its front and
// returns it and the ids it moved over.
func (p *Prefix) Advance(done func(envelope.ID) bool) (envelope.Offset, []envelope.ID) {
	var passed []envelope.ID
	for p.head < len(p.q) && done(p.q[p.head].id) {
		p.prefix = p.q[p.head].offset
		passed = append(passed, p.q[p.head].id)
		p.head++
	}
	if p.head > 1024 && p.head > len(p.q)/2 {
		n := copy(p.q, p.q[p.head:])
		p.q = p.q[:n]
		p.head = 0
	}
	return p.prefix, passed
}

// sortPending puts the events not passed yet in the order of their
// lines' times (a replay of the record and live lines may have come
// interleaved); offs, the same events' offsets kept by the caller, is
// sorted alike.
func (p *Prefix) sortPending(offs []envelope.Offset) {
	byTime := func(a, b prefixEntry) int { return cmp.Compare(a.offset.Time, b.offset.Time) }
	slices.SortStableFunc(p.q[p.head:], byTime)
	slices.SortStableFunc(offs, func(a, b envelope.Offset) int { return cmp.Compare(a.Time, b.Time) })
}

// Offset returns the prefix as last advanced.
func (p *Prefix) Offset() envelope.Offset { return p.prefix }

// Reaches reports whether the prefix covers offset o: o is a line the
// prefix passed, or an earlier time. (Lines of one millisecond are told
// apart by msgid only when the prefix passed that very line.)
func (p *Prefix) Reaches(o envelope.Offset) bool {
	if o.Time < p.prefix.Time || o == p.prefix {
		return true
	}
	for i := p.head - 1; i >= 0 && i >= p.head-4096; i-- {
		if p.q[i].offset == o {
			return true
		}
		if p.q[i].offset.Time < o.Time {
			break
		}
	}
	return false
}

// Covered returns how many of offs (offsets in arrival order) the
// committed offset c covers: through the last one equal to c, or else those
// of an earlier time.
func Covered(offs []envelope.Offset, c envelope.Offset) int {
	n := 0
	for i, o := range offs {
		switch {
		case o == c:
			n = i + 1
		case o.Time < c.Time:
			if n == i {
				n = i + 1
			}
		case o.Time > c.Time:
			return n
		}
	}
	return n
}
