package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/history"
	"github.com/meshbot/meshbot/mesh"
	dstate "github.com/meshbot/meshbot/state"
)

// domainRow is one domain as the heartbeats announce it.
type domainRow struct {
	Domain    string   `json:"domain"`
	Owner     string   `json:"owner"`
	Version   uint64   `json:"version"`
	Available bool     `json:"available"`
	Keys      uint64   `json:"keys"`
	Bytes     uint64   `json:"bytes"`
	Holders   []string `json:"holders"`
}

// domainsFromBeats lists the domains the live members announce.
func domainsFromBeats(n *mesh.Node) []domainRow {
	all := n.AllMembers()
	names := map[string]bool{}
	for _, m := range all {
		for _, d := range m.Beat.Domains {
			names[d.Name] = true
		}
	}
	rows := []domainRow{}
	for name := range names {
		hs := dstate.Holders(all, name)
		if len(hs) == 0 {
			continue // announced only by dead members
		}
		r := domainRow{Domain: name, Owner: dstate.Owner(name), Version: hs[0].Version, Keys: hs[0].Keys, Bytes: hs[0].Bytes, Holders: []string{}}
		for _, h := range hs {
			r.Holders = append(r.Holders, h.Member.Nick)
			if h.Owner {
				r.Available = true
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b domainRow) int { return strings.Compare(a.Domain, b.Domain) })
	return rows
}

func printDomains(w io.Writer, rows []domainRow, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"domains": rows})
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no domain announced")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tOWNER\tVERSION\tAVAILABLE\tKEYS\tBYTES\tHOLDERS")
	for _, r := range rows {
		avail := "stale"
		if r.Available {
			avail = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\n", r.Domain, r.Owner, r.Version, avail, r.Keys, r.Bytes, strings.Join(r.Holders, ", "))
	}
	return tw.Flush()
}

// entryDoc is an entry in JSON.
type entryDoc struct {
	Domain        string    `json:"domain,omitempty"`
	Key           string    `json:"key"`
	Value         *string   `json:"value,omitempty"`
	ValueB64      string    `json:"value_b64,omitempty"`
	Version       uint64    `json:"version"`
	DomainVersion uint64    `json:"domain_version"`
	Writer        string    `json:"writer"`
	Deleted       bool      `json:"deleted,omitempty"`
	ID            string    `json:"id"`
	SentAt        time.Time `json:"sent_at"`
}

func newEntryDoc(domain string, e dstate.Entry) entryDoc {
	d := entryDoc{Domain: domain, Key: e.Key, Version: e.Version, DomainVersion: e.DomainVersion, Writer: e.Writer,
		Deleted: e.Deleted, ID: e.ID.String(), SentAt: time.Unix(0, e.SentAt).UTC()}
	if !e.Deleted {
		if utf8.Valid(e.Value) {
			v := string(e.Value)
			d.Value = &v
		} else {
			d.ValueB64 = base64.StdEncoding.EncodeToString(e.Value)
		}
	}
	return d
}

// valueText shows a value on one line: as it is when printable, quoted
// otherwise.
func valueText(v []byte) string {
	s := string(v)
	if !utf8.Valid(v) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

func availText(available, stale bool) string {
	switch {
	case available:
		return "available"
	case stale:
		return "stale (no live instance of the owner)"
	}
	return "unavailable"
}

func printEntry(w io.Writer, domain string, e dstate.Entry, info mesh.DomainInfo, asJSON bool) error {
	if asJSON {
		doc := struct {
			entryDoc
			Available bool `json:"available"`
			Stale     bool `json:"stale"`
		}{newEntryDoc(domain, e), info.Available, info.Stale}
		return json.NewEncoder(w).Encode(doc)
	}
	_, err := fmt.Fprintf(w, "%s\n", e.Value)
	return err
}

// printSnapshot prints a whole domain: its keys (with values when asked).
func printSnapshot(w io.Writer, s *dstate.Snapshot, values, asJSON bool) error {
	if asJSON {
		doc := struct {
			Domain    string     `json:"domain"`
			Version   uint64     `json:"version"`
			Available bool       `json:"available"`
			Stale     bool       `json:"stale"`
			Entries   []entryDoc `json:"entries"`
		}{s.Domain, s.Version, s.Available, s.Stale, []entryDoc{}}
		for _, e := range s.Entries {
			ed := newEntryDoc("", e)
			if !values {
				ed.Value, ed.ValueB64 = nil, ""
			}
			doc.Entries = append(doc.Entries, ed)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	fmt.Fprintf(w, "# %s version %d, %d keys, %s\n", s.Domain, s.Version, len(s.Entries), availText(s.Available, s.Stale))
	if values {
		for _, e := range s.Entries {
			fmt.Fprintf(w, "%s=%s\n", e.Key, valueText(e.Value))
		}
		return nil
	}
	if len(s.Entries) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVERSION\tDOMAIN VERSION\tWRITER\tBYTES")
	for _, e := range s.Entries {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", e.Key, e.Version, e.DomainVersion, e.Writer, len(e.Value))
	}
	return tw.Flush()
}

// changeDoc is one watched change in JSON.
type changeDoc struct {
	Time       time.Time `json:"time"`
	Domain     string    `json:"domain"`
	Kind       string    `json:"kind"`
	Key        string    `json:"key,omitempty"`
	Entry      *entryDoc `json:"entry,omitempty"`
	OldVersion uint64    `json:"old_key_version,omitempty"`
	Version    uint64    `json:"version"` // the domain's, after the change
	Dropped    uint64    `json:"dropped,omitempty"`
	Keys       int       `json:"keys,omitempty"`
}

// watchDomain prints where the domain stands, then every change.
func watchDomain(ctx context.Context, w io.Writer, d *mesh.Domain, key string, timeout time.Duration, asJSON bool) error {
	changes := make(chan dstate.Change, 1024)
	watch := d.Watch
	if key != "" {
		watch = func(fn func(dstate.Change)) func() { return d.WatchKey(key, fn) }
	}
	stop := watch(func(c dstate.Change) {
		select {
		case changes <- c:
		case <-ctx.Done():
		}
	})
	defer stop()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err := d.Wait(wctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s was not loaded within %v", d.Name(), timeout)
	}
	info := d.Info()
	enc := json.NewEncoder(w)
	if asJSON {
		if err := enc.Encode(changeDoc{Time: time.Now().UTC(), Domain: d.Name(), Kind: "loaded", Version: info.Version, Keys: info.Keys}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "# %s version %d, %d keys, %s; watching %s\n", d.Name(), info.Version, info.Keys,
			availText(info.Available, info.Stale), map[bool]string{true: "key " + key, false: "every key"}[key != ""])
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-changes:
			if c.Kind == dstate.Loaded {
				continue // printed above
			}
			now := time.Now().UTC()
			if asJSON {
				doc := changeDoc{Time: now, Domain: c.Domain, Kind: c.Kind.String(), Key: c.Key, Version: c.NewVersion, Dropped: c.Dropped}
				if c.Kind == dstate.Put || c.Kind == dstate.Deleted {
					ed := newEntryDoc("", c.New)
					doc.Entry, doc.OldVersion = &ed, c.Old.Version
				}
				if err := enc.Encode(doc); err != nil {
					return err
				}
				continue
			}
			ts := now.Format("15:04:05.000")
			switch c.Kind {
			case dstate.Put:
				fmt.Fprintf(w, "%s  put      %s@%d  v%d→v%d  %s  %s\n", ts, c.Key, c.New.Version, c.OldVersion, c.NewVersion, c.New.Writer, valueText(c.New.Value))
			case dstate.Deleted:
				fmt.Fprintf(w, "%s  deleted  %s@%d  v%d→v%d  %s\n", ts, c.Key, c.New.Version, c.OldVersion, c.NewVersion, c.New.Writer)
			case dstate.Lost:
				fmt.Fprintf(w, "%s  lost     %d changes (the watcher fell behind)\n", ts, c.Dropped)
			default:
				fmt.Fprintf(w, "%s  %s\n", ts, c.Kind)
			}
		}
	}
}

func newStateHistoryCmd(st *state) *cobra.Command {
	var (
		f        stateFlags
		since    time.Duration
		versions int
	)
	cmd := &cobra.Command{
		Use:   "history DOMAIN [KEY]",
		Short: "Print a domain's updates as the history service recorded them",
		Long: `Replay the domain's channel from the history service (recorders record
every domain channel members announce), or from the server's CHATHISTORY
where there is no recorder, and print each update, oldest first:

  TIME  vDOMAIN-VERSION  WRITER  put KEY@VERSION=VALUE ... | del KEY@VERSION ... [whole]

With KEY, the key's versions the recorders keep indexed (the last 8 by
default; --versions N for fewer), without replaying the domain's whole
record; where the recorders do not index state, the record is replayed
and only the updates that write KEY are shown (and only that key of
each). --since bounds how far back a replay goes (default: everything
kept). Updates are verified with this tool's keys like live ones;
refused ones are counted on stderr.`,
		Example: `  meshbot state history config.flags
  meshbot state history config.flags dark-mode --since 1h --json`,
		Args: nargs(1, 2, "DOMAIN [KEY]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkDomainArg(a[0]); err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := stateNode(ctx, st, &f, "")
			if err != nil {
				return err
			}
			defer f.conn.closeNode(st, n)
			key := ""
			if len(a) == 2 {
				key = a[1]
			}
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			enc := json.NewEncoder(st.env.stdout)
			show := func(r mesh.Recorded) error {
				if r.Envelope.Kind != envelope.KindState {
					return nil
				}
				u, err := dstate.DecodeUpdate(r.Envelope, r.Nick, "", nil)
				if err != nil {
					return nil
				}
				return printUpdate(st.env.stdout, enc, r.Offset.At(), u, key, f.asJSON)
			}
			if key != "" && since == 0 {
				_, count, err := history.KeyVersions(ctx, n, a[0], key, versions, show)
				if count.RejectedTotal() > 0 {
					fmt.Fprintf(st.env.stderr, "meshbot: %d recorded lines refused by this tool's keys\n", count.RejectedTotal())
				}
				if err == nil || !errors.Is(err, history.ErrNoStateIndex) {
					if err != nil && ctx.Err() != nil {
						return errors.New("interrupted")
					}
					return err
				}
			}
			count, err := history.NewSource().Replay(ctx, n, dstate.Topic(a[0]), from, show)
			if count.RejectedTotal() > 0 {
				fmt.Fprintf(st.env.stderr, "meshbot: %d recorded lines refused by this tool's keys\n", count.RejectedTotal())
			}
			if err != nil {
				if ctx.Err() != nil {
					return errors.New("interrupted")
				}
				return err
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&since, "since", 0, "only updates recorded within this long (0: everything kept); replays the record")
	cmd.Flags().IntVar(&versions, "versions", 0, "with KEY: at most this many of its latest versions (0: all the recorders keep)")
	return cmd
}

// printUpdate prints one recorded update (only key's part, when set).
func printUpdate(w io.Writer, enc *json.Encoder, at time.Time, u *dstate.Update, key string, asJSON bool) error {
	var parts []string
	var entries []entryDoc
	writer := u.Writer.Service + "/" + u.Writer.Instance
	for _, p := range u.Puts {
		if key == "" || p.Key == key {
			parts = append(parts, fmt.Sprintf("put %s@%d=%s", p.Key, p.Version, valueText(p.Value)))
			entries = append(entries, newEntryDoc(u.Domain, dstate.Entry{Key: p.Key, Value: p.Value, Version: p.Version, DomainVersion: u.Version, Writer: writer, ID: u.ID, SentAt: u.SentAt}))
		}
	}
	for _, d := range u.Deletes {
		if key == "" || d.Key == key {
			parts = append(parts, fmt.Sprintf("del %s@%d", d.Key, d.Version))
			entries = append(entries, newEntryDoc(u.Domain, dstate.Entry{Key: d.Key, Version: d.Version, DomainVersion: u.Version, Writer: writer, Deleted: true, ID: u.ID, SentAt: u.SentAt}))
		}
	}
	if len(parts) == 0 && (key != "" || !u.Whole) {
		return nil
	}
	if asJSON {
		return enc.Encode(struct {
			Time    time.Time  `json:"time"`
			Domain  string     `json:"domain"`
			Version uint64     `json:"version"`
			Writer  string     `json:"writer"`
			Whole   bool       `json:"whole,omitempty"`
			Entries []entryDoc `json:"entries"`
		}{at.UTC(), u.Domain, u.Version, writer, u.Whole, entries})
	}
	if u.Whole {
		parts = append(parts, "whole")
	}
	_, err := fmt.Fprintf(w, "%s  v%d  %s  %s\n", at.UTC().Format(time.RFC3339Nano), u.Version, writer, strings.Join(parts, " "))
	return err
}
