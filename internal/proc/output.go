package proc

import (
	"bufio"
	"io"
	"strings"
	"sync"
	"time"
)

// Output collects the lines a process writes on one stream (or on both,
// given as Options.Stdout and Options.Stderr). Set its fields before the
// process starts; its methods are safe for concurrent use. The zero value
// keeps every line.
type Output struct {
	// Keep bounds how many of the last lines are kept; 0 keeps all. Line
	// numbers count every line read, kept or not.
	Keep int
	// OnLine, if set, gets every line (without its line end) as it is
	// read, from the goroutine that reads the stream, before it is kept.
	OnLine func(line string)

	mu      sync.Mutex
	lines   []string
	dropped int  // lines no longer kept (Keep)
	partial bool // the last line had no line end
	eof     bool // the stream ended
	notify  chan struct{}
}

// Collect reads r to its end, line by line, as Start does with a
// process's streams: for output that does not come from a child (a pipe
// within this process). Call it once, and only on an Output not given to
// Start.
func (o *Output) Collect(r io.Reader) { o.read(r) }

// read reads r to its end, line by line.
func (o *Output) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			partial := !strings.HasSuffix(line, "\n")
			line = strings.TrimRight(line, "\r\n")
			if o.OnLine != nil {
				o.OnLine(line)
			}
			o.mu.Lock()
			if o.Keep > 0 && len(o.lines) == o.Keep {
				o.lines = append(o.lines[:0], o.lines[1:]...)
				o.dropped++
			}
			o.lines = append(o.lines, line)
			o.partial = partial
			o.wakeLocked()
			o.mu.Unlock()
		}
		if err != nil {
			o.mu.Lock()
			o.eof = true
			o.wakeLocked()
			o.mu.Unlock()
			return
		}
	}
}

// wakeLocked wakes every waiter: the channel is closed and replaced.
func (o *Output) wakeLocked() {
	if o.notify != nil {
		close(o.notify)
		o.notify = nil
	}
}

// Lines returns the lines kept so far.
func (o *Output) Lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lines...)
}

// Len returns how many lines have been read so far, kept or not: the
// number the next line will have (for Next).
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped + len(o.lines)
}

// String returns the lines kept, joined by newlines.
func (o *Output) String() string { return strings.Join(o.Lines(), "\n") }

// Text returns the lines kept as written, each with its "\n" (but for a
// last line that had none); a "\r" before it is gone.
func (o *Output) Text() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.lines) == 0 {
		return ""
	}
	s := strings.Join(o.lines, "\n")
	if !o.partial {
		s += "\n"
	}
	return s
}

// Next waits for the first line numbered from or later that match
// accepts, and returns it with its number. ok is false when the stream
// ends, or timeout passes, first. Lines no longer kept are not seen.
func (o *Output) Next(from int, timeout time.Duration, match func(line string) bool) (line string, n int, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	n = from
	for {
		o.mu.Lock()
		n = max(n, o.dropped)
		for ; n < o.dropped+len(o.lines); n++ {
			if l := o.lines[n-o.dropped]; match(l) {
				o.mu.Unlock()
				return l, n, true
			}
		}
		if o.eof {
			o.mu.Unlock()
			return "", n, false
		}
		if o.notify == nil {
			o.notify = make(chan struct{})
		}
		notify := o.notify
		o.mu.Unlock()
		select {
		case <-notify:
		case <-deadline.C:
			return "", n, false
		}
	}
}
