package main

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// logOptions are the logging flags (doc/operations.md, Running).
type logOptions struct {
	format  string // "text" or "structured"
	output  string // "stderr" or "stdout"
	level   slog.Level
	noColor bool
}

// newLogger builds the process's logger on w (the stream --log-output
// chose). Structured is slog's JSON handler: one object a line with time,
// level, msg and the fields. Text is textHandler, coloured only when w is a
// terminal and neither --nocolor nor $NO_COLOR says otherwise.
func newLogger(w io.Writer, o logOptions) *slog.Logger {
	if o.format == "structured" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: o.level}))
	}
	color := !o.noColor && os.Getenv("NO_COLOR") == "" && isTerminal(w)
	return slog.New(newTextHandler(w, o.level, color))
}

// isTerminal reports whether w is a character device (a terminal), never
// true for a file, a pipe or a socket.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// textHandler writes one line an event, for people:
//
//	2025-01-02T15:04:05.000+01:00 INFO  client connected client=127.0.0.1:50312 id=7
//
// Values that would not read as one word (spaces, quotes, '=', control
// characters, an empty string) are quoted with strconv.Quote, so a line can
// never be split or coloured by what a client sends. With color, only the
// level is coloured (ANSI).
type textHandler struct {
	out    *lockedWriter
	level  slog.Leveler
	color  bool
	prefix string // the attrs added by WithAttrs, formatted
	group  string // the open groups, "a.b." (key prefix)
}

// lockedWriter serializes whole lines from every clone of a handler.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newTextHandler(w io.Writer, level slog.Leveler, color bool) *textHandler {
	return &textHandler{out: &lockedWriter{w: w}, level: level, color: color}
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	var b []byte
	for _, a := range attrs {
		b = appendAttr(b, h.group, a)
	}
	h2.prefix += string(b)
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group += name + "."
	return &h2
}

// levelColor is the ANSI colour of a level: debug blue, info green, warn
// yellow, error red.
func levelColor(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "\x1b[34m"
	case l < slog.LevelWarn:
		return "\x1b[32m"
	case l < slog.LevelError:
		return "\x1b[33m"
	}
	return "\x1b[31m"
}

const colorReset = "\x1b[0m"

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, 256)
	if !r.Time.IsZero() {
		b = r.Time.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, ' ')
	}
	level := r.Level.String()
	if h.color {
		b = append(b, levelColor(r.Level)...)
		b = append(b, level...)
		b = append(b, colorReset...)
	} else {
		b = append(b, level...)
	}
	for n := len(level); n < 5; n++ { // align the messages
		b = append(b, ' ')
	}
	b = append(b, ' ')
	if hasControl(r.Message) {
		b = strconv.AppendQuote(b, r.Message)
	} else {
		b = append(b, r.Message...)
	}
	b = append(b, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(b)
	return err
}

// appendAttr appends " key=value", or every member of a group as
// " group.key=value".
func appendAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		prefix := group
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			b = appendAttr(b, prefix, m)
		}
		return b
	}
	b = append(b, ' ')
	b = appendString(b, group+a.Key)
	b = append(b, '=')
	return appendString(b, formatValue(a.Value))
}

// formatValue renders a value as text, unquoted.
func formatValue(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return x.Error()
		case fmt.Stringer:
			return x.String()
		case encoding.TextMarshaler:
			t, err := x.MarshalText()
			if err != nil {
				return "!ERROR:" + err.Error()
			}
			return string(t)
		case []string:
			return "[" + strings.Join(x, ", ") + "]"
		case []byte:
			return string(x)
		}
	}
	return v.String() // numbers, booleans, and fmt's rendering of the rest
}

// appendString appends s, quoted when it would not read as one word.
func appendString(b []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// hasControl reports whether s holds anything that could break the line or
// reach the terminal as a control sequence.
func hasControl(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
