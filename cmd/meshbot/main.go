// Command meshbot is the command-line tool of meshbot, a service mesh over
// IRC: publish events, watch topics, make requests, decode recorded lines,
// and run a small demo mesh on a local IRC server.
//
// Run "meshbot --help" for the commands, or see docs/CLI.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal cancels ctx and every command stops cleanly;
		// restoring the default handlers lets a second one end the
		// process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}

// env is what a run of the tool sees of the outside world; tests supply
// their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}
