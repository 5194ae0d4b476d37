package ircd

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestListensOn tells a port this process listens on from one another
// process (an IRC server) holds and from a closed one.
func TestListensOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mine := l.Addr().(*net.TCPAddr).Port
	spec, err := SpecFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx, spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	free, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		port int
		want bool
	}{{"this process's listener", mine, true}, {"the server's port", srv.Port(), false}, {"a closed port", free[0], false}} {
		got, err := listensOn(os.Getpid(), tc.port)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s (%d): listensOn = %v, want %v", tc.name, tc.port, got, tc.want)
		}
	}

	// A second server asked for the first one's port fails clearly, and
	// leaves the first one alone.
	_, err = Start(ctx, spec, Options{Port: srv.Port()})
	if !errors.Is(err, ErrPortInUse) {
		t.Errorf("Start on a taken port: %v; want ErrPortInUse", err)
	}
	if !srv.Running() {
		t.Error("the first server stopped")
	}
}
