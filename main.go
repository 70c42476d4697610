// Command redis-proxy sits between Redis clients and one upstream Redis, so
// that the upstream can be paused, switched and resumed without breaking a
// client connection (see README.md and doc/).
//
//	redis-proxy -f config.json          run in the foreground
//	redis-proxy -f config.json -t       check the config and the uplink
//	redis-proxy -version                print the version
//
// main only wires things together: flags and logging here and in
// logging.go, the -t check in check.go, the run with its signals in
// serve.go; config, proxy and admin do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes (doc/operations.md, Running).
const (
	exitOK      = 0 // clean stop, -version, -t with a good config
	exitFailure = 1 // bad config, start-up failure, forced stop
	exitUsage   = 2 // bad flags
)

// run is the whole program: it returns the exit code. Cancelling ctx stops
// a running proxy as SIGTERM does.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	start := time.Now()
	fl, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	switch {
	case fl.version:
		fmt.Fprintf(stdout, "redis-proxy %s\n", versionString())
		return exitOK
	case fl.check:
		return check(ctx, fl.configPath, stdout, stderr)
	}
	out := stderr
	if fl.log.output == "stdout" {
		out = stdout
	}
	return serve(ctx, fl.configPath, newLogger(out, fl.log), start)
}

// flags are the parsed command line.
type flags struct {
	configPath string
	check      bool
	version    bool
	log        logOptions
}

const usageText = `usage:
  redis-proxy -f config.json [log flags]   run in the foreground
  redis-proxy -f config.json -t            check the config: parse, validate, load TLS
                                           files, dial + AUTH + PING the uplink
  redis-proxy -version                     print the version

flags (one or two dashes):
`

// parseFlags parses args; errors (and -h) are reported on stderr, with the
// usage.
func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var fl flags
	format := &choice{value: "text", allowed: []string{"text", "structured"}}
	output := &choice{value: "stderr", allowed: []string{"stderr", "stdout"}}
	level := &choice{value: "info", allowed: []string{"debug", "info", "warn", "error"}}

	fs := flag.NewFlagSet("redis-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&fl.configPath, "f", "", "the JSON configuration `file` (required)")
	fs.BoolVar(&fl.check, "t", false, "check the configuration and the uplink, print \"config ok\" or the errors, exit")
	fs.BoolVar(&fl.version, "version", false, "print the version and exit")
	fs.Var(format, "log-format", "log `format`: text (one line an event) or structured (one JSON object a line)")
	fs.Var(output, "log-output", "the `stream` logs go to: stderr or stdout")
	fs.Var(level, "log-level", "the least severe `level` logged: debug, info, warn or error")
	fs.BoolVar(&fl.log.noColor, "nocolor", false, "no ANSI colour in text logs (colour is only ever used on a terminal)")

	if err := fs.Parse(args); err != nil {
		return fl, err
	}
	fail := func(format string, args ...any) (flags, error) {
		err := fmt.Errorf(format, args...)
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return fl, err
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (flags come before arguments, and there are none)", fs.Arg(0))
	}
	if fl.configPath == "" && !fl.version {
		return fail("flag -f is required: redis-proxy -f config.json")
	}
	fl.log.format, fl.log.output = format.value, output.value
	if err := fl.log.level.UnmarshalText([]byte(level.value)); err != nil {
		return fail("-log-level: %v", err) // not reached: choice checked it
	}
	return fl, nil
}

// choice is a flag.Value that accepts one of a few words.
type choice struct {
	value   string
	allowed []string
}

func (c *choice) String() string { return c.value }

func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("must be %s", strings.Join(c.allowed, " or "))
	}
	c.value = s
	return nil
}

// errorLines splits an error (errors.Join gives one a line) into lines,
// each prefixed with prefix.
func errorLines(prefix string, err error) []string {
	var lines []string
	for line := range strings.Lines(err.Error()) {
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			lines = append(lines, prefix+line)
		}
	}
	return lines
}

// logErrors logs every line of err as its own record.
func logErrors(log *slog.Logger, msg string, err error) {
	for _, line := range errorLines("", err) {
		log.Error(msg, "err", line)
	}
}
