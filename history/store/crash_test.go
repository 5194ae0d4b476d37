package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashEnv names the store a crash child process writes to; the test
// binary re-executes itself with it set, and TestMain then runs crashChild
// instead of the tests.
const crashEnv = "HISTORY_STORE_CRASH_CHILD"

// crashChildTimeout ends a crash child its parent never killed.
const crashChildTimeout = 2 * time.Minute

var crashChannels = []string{"#crash.a", "#crash.b", "#crash.c"}

// TestMain runs the tests, or, when crashEnv is set, is the child process
// of TestCrashSIGKILL: it runs crashChild and never returns.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
	}
	os.Exit(m.Run())
}

// crashChild is the child of TestCrashSIGKILL. It opens the store at path,
// appends records to three channels as fast as it can — continuing each
// channel's Seqs, every record derived from its channel and Seq — and
// prints "COMMITTED channel seq" to stdout whenever it sees that a commit
// made a new record visible (Last reads committed records only, and bbolt
// makes a commit visible after its fsync). It runs until it is killed (or
// exits after crashChildTimeout), and never returns.
func crashChild(path string) {
	time.AfterFunc(crashChildTimeout, func() {
		fmt.Fprintf(os.Stderr, "crash child not killed within %v\n", crashChildTimeout)
		os.Exit(2)
	})
	s, err := Open(Options{Path: path})
	if err != nil {
		fmt.Printf("ERROR open: %v\n", err)
		os.Exit(3)
	}
	next := make([]uint64, len(crashChannels))
	for i, ch := range crashChannels {
		next[i] = 1
		if l, ok := s.Last(ch); ok {
			next[i] = l.Seq + 1
		}
	}
	go func() {
		seen := make([]uint64, len(crashChannels))
		for {
			for i, ch := range crashChannels {
				if l, ok := s.Last(ch); ok && l.Seq > seen[i] {
					seen[i] = l.Seq
					fmt.Printf("COMMITTED %s %d\n", ch, l.Seq)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	fmt.Println("READY")
	batch := make([]Record, 16)
	for {
		for i, ch := range crashChannels {
			for j := range batch {
				batch[j] = testRecord(ch, next[i]+uint64(j))
			}
			if err := s.Append(batch...); err != nil {
				fmt.Printf("ERROR append: %v\n", err)
				os.Exit(3)
			}
			for j := range batch {
				if batch[j].Seq != next[i]+uint64(j) {
					fmt.Printf("ERROR %s: got Seq %d, want %d\n", ch, batch[j].Seq, next[i]+uint64(j))
					os.Exit(3)
				}
			}
			next[i] += uint64(len(batch))
		}
	}
}

// TestCrashSIGKILL kills a process writing as fast as it can with
// SIGKILL, three times, and checks after each kill that the store opens
// cleanly and holds, for every channel, exactly the records 1..N intact,
// where N is at least the last Seq the child reported committed.
func TestCrashSIGKILL(t *testing.T) {
	path := testPath(t)
	for round := 1; round <= 3; round++ {
		committed := crashRound(t, path)
		s, err := Open(Options{Path: path})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		var total uint64
		for _, ch := range crashChannels {
			l, _ := s.Last(ch)
			if l.Seq < committed[ch] {
				t.Fatalf("round %d: %s ends at %d, but %d was reported committed", round, ch, l.Seq, committed[ch])
			}
			expectChannel(t, s, ch, 1, l.Seq)
			total += l.Seq
			t.Logf("round %d: %s: %d records, %d reported committed (%d committed but not reported)",
				round, ch, l.Seq, committed[ch], l.Seq-committed[ch])
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if total == 0 {
			t.Fatalf("round %d: nothing written", round)
		}
	}
}

// crashRound runs the child for about a second of writes, kills it with
// SIGKILL, and returns the last Seq it reported committed per channel.
func crashRound(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	defer func() {
		kill()
		_ = cmd.Wait()
	}()

	type report struct {
		ch  string
		seq uint64
		err string
	}
	lines := make(chan report, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "COMMITTED":
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				lines <- report{ch: f[1], seq: seq}
			case len(f) > 0 && f[0] == "ERROR":
				lines <- report{err: sc.Text()}
			case len(f) > 0 && f[0] == "READY":
				lines <- report{}
			}
		}
	}()

	committed := make(map[string]uint64)
	var killAt <-chan time.Time
	giveUp := time.After(15 * time.Second)
	commits := 0
	for {
		select {
		case r, ok := <-lines:
			if !ok {
				if !killed {
					t.Fatal("the child exited before it was killed")
				}
				return committed
			}
			if r.err != "" {
				t.Fatalf("child: %s", r.err)
			}
			if r.ch == "" {
				continue
			}
			// Reports printed before the kill are commits that happened.
			if !killed {
				committed[r.ch] = max(committed[r.ch], r.seq)
				commits++
				if killAt == nil {
					killAt = time.After(time.Second)
				}
			}
		case <-killAt:
			kill()
			killAt = nil
			if commits < 3 {
				t.Fatalf("only %d commits seen in a second of writes", commits)
			}
		case <-giveUp:
			t.Fatalf("the child reported no commit (or did not stop) within 15 s")
		}
	}
}
