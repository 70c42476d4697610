package main

import (
	"context"
	"fmt"
	"io"

	"redis-proxy/config"
	"redis-proxy/proxy"
)

// check is -t: parse and validate the file, load every TLS file, and prove
// the uplink (dial, TLS, AUTH, PING) as a reload would, within
// read_time_limit_ms. It prints "config ok" on stdout, or every problem
// found on stderr, one a line, each naming the file.
func check(ctx context.Context, path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		printLines(stderr, errorLines("", err)) // Load names the file itself
		return exitFailure
	}
	var problems []string
	if err := cfg.LoadTLS(); err != nil {
		problems = append(problems, errorLines(path+": ", err)...)
	}
	// Prove needs the uplink's TLS files; when they are broken, that has
	// just been said.
	if _, err := cfg.UplinkTLS(); err == nil {
		pctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeLimit())
		err := proxy.Prove(pctx, cfg)
		cancel()
		if err != nil {
			problems = append(problems, errorLines(path+": ", err)...)
		}
	}
	if len(problems) > 0 {
		printLines(stderr, problems)
		return exitFailure
	}
	fmt.Fprintln(stdout, "config ok")
	return exitOK
}

func printLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
