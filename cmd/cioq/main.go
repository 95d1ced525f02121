// Command cioq delivers operations to the Customer.io Track API through a
// Redis-backed queue. Run `cioq --help` for its subcommands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // the first signal stops the command gracefully
		sig := <-sigs
		// A second one exits at once, as a shell reports a process the
		// signal killed (130 for SIGINT, 143 for SIGTERM).
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	code := execute(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, nil)
	signal.Stop(sigs)
	cancel()
	os.Exit(code)
}
