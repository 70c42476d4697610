package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"redis-proxy/internal/proc"
)

func TestTextHandlerLines(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	tests := []struct {
		name  string
		level slog.Level
		msg   string
		attrs []slog.Attr
		want  string
	}{
		{"plain", slog.LevelInfo, "client connected",
			[]slog.Attr{slog.String("client", "127.0.0.1:5000"), slog.Int("id", 7)},
			`INFO  client connected client=127.0.0.1:5000 id=7`},
		{"quoting", slog.LevelWarn, "uplink dial failed",
			[]slog.Attr{slog.Any("err", errors.New("dial tcp: connection refused")), slog.String("empty", ""), slog.String("eq", "a=b"), slog.String("q", `say "hi"`)},
			`WARN  uplink dial failed err="dial tcp: connection refused" empty="" eq="a=b" q="say \"hi\""`},
		{"control characters", slog.LevelError, "bad\nmessage",
			[]slog.Attr{slog.String("reply", "+OK\r\n"), slog.String("name", "\x1b[31mred")},
			`ERROR "bad\nmessage" reply="+OK\r\n" name="\x1b[31mred"`},
		{"kinds", slog.LevelDebug, "kinds",
			[]slog.Attr{slog.Bool("b", true), slog.Float64("ms", 1.5), slog.Duration("d", 1500*time.Millisecond), slog.Any("changed", []string{"max_clients: 1 -> 2", "x: a -> b"})},
			`DEBUG kinds b=true ms=1.5 d=1.5s changed="[max_clients: 1 -> 2, x: a -> b]"`},
		{"groups", slog.LevelInfo, "g",
			[]slog.Attr{slog.Group("up", slog.String("addr", "h:1"), slog.Bool("tls", false)), slog.Group("", slog.Int("inline", 1)), slog.Group("empty")},
			`INFO  g up.addr=h:1 up.tls=false inline=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := newTextHandler(&buf, slog.LevelDebug, false)
			r := slog.NewRecord(at, tt.level, tt.msg, 0)
			r.AddAttrs(tt.attrs...)
			if err := h.Handle(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			want := "2025-03-04T05:06:07.891Z " + tt.want + "\n"
			if have := buf.String(); have != want {
				t.Errorf("\nhave %q\nwant %q", have, want)
			}
		})
	}
}

func TestTextHandlerWithAttrsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newTextHandler(&buf, slog.LevelInfo, false))
	log = log.With("client", "c:1", "id", 3).WithGroup("stats").With("n", 1)
	log.Info("closed", "reason", "client closed")
	log.Debug("not shown")
	line := strings.SplitN(buf.String(), " ", 2)[1]
	if want := "INFO  closed client=c:1 id=3 stats.n=1 stats.reason=\"client closed\"\n"; line != want {
		t.Errorf("\nhave %q\nwant %q", line, want)
	}
}

func TestTextHandlerColour(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug, "\x1b[34mDEBUG\x1b[0m "},
		{slog.LevelInfo, "\x1b[32mINFO\x1b[0m  "},
		{slog.LevelWarn, "\x1b[33mWARN\x1b[0m  "},
		{slog.LevelError, "\x1b[31mERROR\x1b[0m "},
	} {
		var buf bytes.Buffer
		h := newTextHandler(&buf, slog.LevelDebug, true)
		r := slog.NewRecord(time.Now(), tt.level, "m", 0)
		r.AddAttrs(slog.String("k", "v"))
		h.Handle(t.Context(), r)
		_, rest, _ := strings.Cut(buf.String(), " ")
		if want := tt.want + "m k=v\n"; rest != want {
			t.Errorf("%v: have %q, want %q (only the level coloured)", tt.level, rest, want)
		}
	}
}

// TestTextHandlerSlogtest runs the standard library's handler conformance
// tests, parsing the text lines back.
func TestTextHandlerSlogtest(t *testing.T) {
	var buf bytes.Buffer
	newHandler := func(*testing.T) slog.Handler {
		buf.Reset()
		return newTextHandler(&buf, slog.LevelDebug, false)
	}
	result := func(t *testing.T) map[string]any {
		line := strings.TrimSuffix(buf.String(), "\n")
		m, err := parseTextLine(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return m
	}
	slogtest.Run(t, newHandler, result)
}

// firstKey finds where the attributes of a text line begin.
var firstKey = regexp.MustCompile(` [^ ="]+=`)

// parseTextLine parses a line of textHandler (without colour) into a map,
// group keys ("a.b") as nested maps. Messages in these tests hold no "=".
func parseTextLine(line string) (map[string]any, error) {
	m := map[string]any{}
	if ts, rest, ok := strings.Cut(line, " "); ok {
		if at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", ts); err == nil {
			m[slog.TimeKey] = at
			line = rest
		}
	}
	level, line, _ := strings.Cut(line, " ")
	m[slog.LevelKey] = level
	line = strings.TrimLeft(line, " ")
	msg, attrs := line, ""
	if loc := firstKey.FindStringIndex(line); loc != nil {
		msg, attrs = line[:loc[0]], line[loc[0]:]
	}
	m[slog.MessageKey] = msg
	for attrs != "" {
		attrs = strings.TrimPrefix(attrs, " ")
		key, rest, ok := strings.Cut(attrs, "=")
		if !ok {
			return nil, errors.New("no '=' in " + strconv.Quote(attrs))
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, err
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		attrs = strings.TrimPrefix(rest, " ")
		dst := m
		parts := strings.Split(key, ".")
		for _, g := range parts[:len(parts)-1] {
			sub, ok := dst[g].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[g] = sub
			}
			dst = sub
		}
		dst[parts[len(parts)-1]] = val
	}
	return m, nil
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, w := range map[string]io.Writer{"pipe": w, "file": f, "buffer": &bytes.Buffer{}} {
		if isTerminal(w) {
			t.Errorf("%s: isTerminal is true", name)
		}
	}
	// A file never gets colour, whatever the flags say.
	log := newLogger(f, logOptions{format: "text", level: slog.LevelInfo})
	log.Info("x")
	b, _ := os.ReadFile(f.Name())
	if bytes.Contains(b, []byte("\x1b")) {
		t.Errorf("colour in a file: %q", b)
	}
}

func TestStructuredLogger(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, logOptions{format: "structured", level: slog.LevelWarn})
	log.Info("hidden")
	log.Warn("uplink dial failed", "err", errors.New("connection refused"), "client", "c:1")
	line := buf.String()
	e, err := parseEntry(strings.TrimSuffix(line, "\n"))
	if err != nil || strings.Count(line, "\n") != 1 {
		t.Fatalf("have %q (%v), want one JSON line", line, err)
	}
	for k, want := range map[string]string{"level": "WARN", "msg": "uplink dial failed", "err": "connection refused", "client": "c:1"} {
		if e.str(k) != want {
			t.Errorf("%s: have %q, want %q", k, e.str(k), want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, e.str("time")); err != nil {
		t.Errorf("time: %v", err)
	}
}

func TestVersionString(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "1.2.3"
	if have := versionString(); have != "1.2.3" {
		t.Errorf("with -ldflags -X main.version=1.2.3: have %q", have)
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"--version"}, &out, &errOut); code != 0 || out.String() != "redis-proxy 1.2.3\n" || errOut.Len() != 0 {
		t.Errorf("run --version: have %d, %q, %q", code, out.String(), errOut.String())
	}
	version = "dev"
	if have := versionString(); have == "" {
		t.Errorf("dev build: empty version")
	}
}

// TestRunInProcess runs the proxy inside the test: cancelling run's
// context is a graceful stop, exit code 0.
func TestRunInProcess(t *testing.T) {
	cfg := newConfig(t, freeAddr(t))
	path := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, path, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer // written only by run, read after it returned
	code := make(chan int, 1)
	go func() {
		defer pw.Close()
		code <- run(ctx, []string{"-f", path, "--log-format", "structured", "--log-output", "stdout"}, pw, &errOut)
	}()
	logs := new(proc.Output)
	go logs.Collect(pr)
	if _, _, ok := logs.Next(0, waitTimeout, msgIs("started")); !ok {
		t.Fatalf("no started line:\n%s", logs)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code: have %d, want 0", c)
		}
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after the context was cancelled")
	}
	if _, _, ok := logs.Next(0, waitTimeout, msgIs("stopped")); !ok {
		t.Errorf("no stopped line:\n%s", logs)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q", errOut.String())
	}
}
