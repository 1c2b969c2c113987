package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/synwall/synwall/deploy/lab/synflood"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := synflood.Command(ctx, "synflood", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
