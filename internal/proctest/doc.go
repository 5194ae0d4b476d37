// Package proctest runs the meshbot binary as real processes in tests, so
// that a test can do to a service instance what happens to one in
// production: SIGKILL it, freeze it (SIGSTOP) and thaw it (SIGCONT), stop
// it gracefully (SIGTERM), and start it again.
//
// The binary is built once per test binary, from the module the test runs
// in (go build ./cmd/meshbot, with -race when the tests run with -race), into
// a temporary directory that Main removes:
//
//	func TestMain(m *testing.M) { proctest.Main(m) }
//
//	func TestFailover(t *testing.T) {
//		srv := ircdtest.Start(t)
//		events := filepath.Join(t.TempDir(), "w.jsonl")
//		w := proctest.Start(t, "serve", "--server", srv.Addr(), "--service", "w",
//			"--instance", "1", "--subscribe", "jobs", "--events", events)
//		w.WaitReady(20 * time.Second) // "w-1"
//		... publish from an in-process node ...
//		proctest.WaitEvents(t, events, 5*time.Second, proctest.HasID(ack.ID.String()))
//		w.Kill()        // SIGKILL
//		w = w.Restart(t) // the same arguments: the same instance
//		w.WaitReady(20 * time.Second)
//	}
//
// Every process is started with its own process group, stdin from
// /dev/null, the environment of the test minus MESHBOT_* variables (so that
// a developer's settings never point a test at a real mesh), and its stdout
// and stderr captured. Each one is waited for by its own goroutine from the
// start (no zombies), killed by PID at the end of the test that started it,
// and its output is printed with t.Log when that test failed. A data race
// reported by a -race child fails the test. Every wait is bounded.
//
// Methods that fail the test with Fatal (WaitReady, Wait, Stop, Cont,
// Restart) must be called from the test's goroutine; Kill, Terminate and the
// accessors may be called from any goroutine.
//
// The package runs processes with POSIX signals: it builds on Unix only
// (SIGSTOP state checks use /proc on Linux).
package proctest
