package state

import (
	"cmp"
	"slices"

	"github.com/meshbot/meshbot/heartbeat"
)

// Holder is a live member that announces a loaded copy of a domain in its
// heartbeats (heartbeat.Beat.Domains): a source of snapshots (§8.5).
type Holder struct {
	Member heartbeat.Member
	// Owner is set for an instance of the owning service.
	Owner bool
	// Version, Keys and Bytes are its copy as it announced it.
	Version, Keys, Bytes uint64
}

// Holders returns the live (alive or suspect) members of all that announce
// a loaded copy of domain, best source first: the highest version, then
// instances of the owner, then alive before suspect, then the least
// loaded, then by nick.
func Holders(all []heartbeat.Member, domain string) []Holder {
	owner := Owner(domain)
	var out []Holder
	for _, m := range all {
		if m.State == heartbeat.Dead {
			continue
		}
		for _, d := range m.Beat.Domains {
			if d.Name == domain {
				out = append(out, Holder{Member: m, Owner: m.Service == owner, Version: d.Version, Keys: d.Keys, Bytes: d.Bytes})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Holder) int {
		if c := cmp.Compare(b.Version, a.Version); c != 0 {
			return c
		}
		if a.Owner != b.Owner {
			if a.Owner {
				return -1
			}
			return 1
		}
		if a.Member.State != b.Member.State {
			if a.Member.State == heartbeat.Alive {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Member.Beat.Load, b.Member.Beat.Load); c != 0 {
			return c
		}
		return cmp.Compare(a.Member.Nick, b.Member.Nick)
	})
	return out
}
