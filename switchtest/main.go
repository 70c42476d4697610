// Command switchtest proves that redis-proxy can replace the Redis behind it
// under load without breaking a client connection or losing an acknowledged
// write (doc/switch-test.md).
//
// It starts a redis-server, the proxy built from this repository (or the
// one -proxy names) and N clients writing through the proxy. Then, K times,
// it does what a failover runbook does, through the proxy's admin HTTP API:
// start a fresh redis-server, make it a replica of the current one, wait for
// the initial sync, cmd=pause, wait until the replica has applied the
// master's whole replication stream (INFO replication offsets), promote it
// (REPLICAOF NO ONE), point the config file at it, cmd=reload, cmd=unpause,
// stop the old server. At the end it stops the load and compares every
// client's acknowledged writes with the final server. Subscribers and
// publishers through the proxy check that every message published reaches
// every subscriber exactly once, in order (pubsub.go).
//
//	go run ./switchtest -clients 50 -switches 20
//	go run ./switchtest -switches 0          # demo: SIGHUP switches, SIGINT ends
//
// It exits 0 only when there were no client errors, no disconnects, no
// lost or duplicated writes and no pause that took anywhere near
// read_time_limit_ms; 1 otherwise (or when it could not set up); 2 for bad
// flags. doc/switch-test.md explains the procedure and the report.
//
// Everything runs on 127.0.0.1. Only processes this program started are
// ever signalled, by PID; its temporary directory (binary, config, logs,
// server directories) is removed at the end unless -keep is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// longRunRate is the default -rate of the long-running modes: every write
// stays in Redis and in the client's record until the end.
const longRunRate = 200

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

// mainCode is the whole command; it returns the exit code.
func mainCode(args []string, stdout, stderr io.Writer) int {
	o, asJSON, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	o.Log = stderr

	// First SIGINT or SIGTERM: stop the load, verify and report. Second:
	// abort (everything started is still stopped and removed). SIGHUP: one
	// switch now.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	switchNow := make(chan struct{}, 1)
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				select {
				case switchNow <- struct{}{}:
				default: // one is pending already
				}
			case !stopping:
				stopping = true
				fmt.Fprintf(stderr, "switchtest: %v: stopping the load, then verifying (again to abort)\n", sig)
				close(stop)
			default:
				fmt.Fprintf(stderr, "switchtest: %v again: aborting\n", sig)
				cancel()
			}
		}
	}()

	rep, err := run(ctx, o, control{Stop: stop, Switch: switchNow})
	if err != nil {
		fmt.Fprintf(stderr, "switchtest: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "switchtest: %v\n", err)
			return 1
		}
	} else {
		rep.WriteText(stdout)
	}
	if !rep.Pass {
		return 1
	}
	return 0
}

// parseFlags parses the command line into options; asJSON is -json.
func parseFlags(args []string, stderr io.Writer) (o options, asJSON bool, err error) {
	fs := flag.NewFlagSet("switchtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: go run ./switchtest [flags]

Switches the redis-server behind redis-proxy K times under the load of N
clients and verifies that no client saw an error or lost its connection,
that no acknowledged write was lost or duplicated, and that every pause
stayed short (below 1 s, or half of -read-time-limit). Exit status 0 = clean.

flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Clients, "clients", 50, "number of client connections writing through the proxy")
	fs.IntVar(&o.Proxies, "proxies", 1, "proxies in front of the same primary; with more than 1, the first lists the others\nin switch.peers and gets every cmd=switch, and the load is spread over all of them")
	fs.IntVar(&o.Switches, "switches", 5, "number of switches; 0 = long-running: SIGHUP switches, SIGINT ends")
	fs.BoolVar(&o.Forever, "forever", false, "long-running: switch every -interval until SIGINT (or -duration); SIGHUP adds one")
	fs.DurationVar(&o.Duration, "duration", 0, "total load time; with -switches > 0 the switches are spread evenly over it\n(overriding -interval); with -switches 0 or -forever the run ends after it (0 = at SIGINT)")
	fs.DurationVar(&o.Interval, "interval", time.Second, "load time before the first switch, between switches and after the last")
	fs.Float64Var(&o.Rate, "rate", 0, "writes a second per client, 0 = as fast as it goes (default 0; 200 with -switches 0\nor -forever, so that a long run does not fill the memory)")
	fs.IntVar(&o.Subscribers, "subscribers", 6, "pub/sub subscribers through the proxy (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE in turn; every other three RESP3); 0 = none")
	fs.IntVar(&o.Publishers, "publishers", 3, "publishers of numbered messages through the proxy (every third one SPUBLISH, the others PUBLISH)")
	fs.Float64Var(&o.PublishRate, "publish-rate", defaultPublishRate, "messages a second per publisher")
	fs.StringVar(&o.ProxyBin, "proxy", "", "prebuilt redis-proxy binary (default: go build this repository into the temp dir)")
	fs.StringVar(&o.RedisServer, "redis-server", "", "redis-server binary (default: $REDIS_SERVER, else redis-server from PATH)")
	fs.IntVar(&o.ReadTimeLimitMS, "read-time-limit", 5000, "the proxy's read_time_limit_ms")
	fs.BoolVar(&o.Manual, "manual", false, "switch the manual way (cmd=pause, REPLICAOF, config file, cmd=reload, cmd=unpause) instead of cmd=switch")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temp dir: proxy binary, config, proxy and redis-server logs")
	fs.BoolVar(&o.Verbose, "v", false, "verbose: every step of every switch, and the proxy's log on stderr")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments: %q", fs.Args()))
	}
	if o.Clients < 1 {
		problems = append(problems, "-clients must be at least 1")
	}
	if o.Proxies < 1 {
		problems = append(problems, "-proxies must be at least 1")
	}
	if o.Proxies > 1 && o.Manual {
		problems = append(problems, "-manual drives one proxy; -proxies > 1 needs cmd=switch")
	}
	if o.Switches < 0 {
		problems = append(problems, "-switches must not be negative")
	}
	if o.Interval <= 0 {
		problems = append(problems, "-interval must be positive")
	}
	if o.Duration < 0 {
		problems = append(problems, "-duration must not be negative")
	}
	if o.ReadTimeLimitMS < 1 {
		problems = append(problems, "-read-time-limit must be at least 1 (ms)")
	}
	if o.Forever && o.Switches > 0 && isSet(fs, "switches") {
		problems = append(problems, "-forever and -switches > 0 exclude each other")
	}
	if o.Subscribers < 0 || o.Publishers < 0 {
		problems = append(problems, "-subscribers and -publishers must not be negative")
	}
	if o.Subscribers > 0 && o.Publishers < 3 && o.Subscribers > 2 {
		problems = append(problems, "-publishers must be at least 3 with 3 or more -subscribers (the SSUBSCRIBE ones need a SPUBLISH publisher)")
	}
	if o.Subscribers > 0 && o.Publishers < 1 {
		problems = append(problems, "-publishers must be at least 1 with -subscribers")
	}
	if o.PublishRate <= 0 {
		problems = append(problems, "-publish-rate must be positive")
	}
	if o.Rate < 0 {
		problems = append(problems, "-rate must not be negative")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "switchtest: %s\n", p)
		}
		return o, false, errors.New("bad flags")
	}
	if o.Forever {
		o.Switches = 0
	}
	if o.Switches == 0 && !isSet(fs, "rate") {
		o.Rate = longRunRate
	}
	return o, asJSON, nil
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
