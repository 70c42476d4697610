package proxy

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// log_messages: commands and replies rendered for the log, secrets masked.

func (s *session) logCommand(c cmdClass, name []byte, argc int) {
	cmd := strings.ToUpper(truncate(string(name), 64))
	if c == cmdAuth || c == cmdHello {
		s.logInfo("command", "cmd", cmd, "args", argc-1, "note", "credentials redacted: ***")
		return
	}
	s.logInfo("command", "cmd", cmd, "args", argc-1)
}

// capture passes writes on and keeps their first bytes, for log_messages.
type capture struct {
	w    io.Writer
	buf  []byte
	more bool
}

const captureMax = 512

func (c *capture) Write(p []byte) (int, error) {
	room := captureMax - len(c.buf)
	if len(p) > room {
		c.more = true
	}
	if room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return c.w.Write(p)
}

// renderCommand turns the start of a multibulk request into readable
// words, masking the arguments of commands that carry secrets.
func renderCommand(b []byte, more bool) string {
	var args []string
	if len(b) > 0 && b[0] == '*' {
		_, rest, _ := bytes.Cut(b, []byte("\r\n"))
		for len(rest) > 0 && rest[0] == '$' {
			head, body, ok := bytes.Cut(rest, []byte("\r\n"))
			n, _ := strconv.Atoi(string(head[1:]))
			if !ok || n < 0 {
				break
			}
			if n > len(body) {
				args = append(args, strconv.Quote(string(body))+"...")
				more = false
				break
			}
			args = append(args, quoteArg(body[:n]))
			rest = body[n:]
			if len(rest) >= 2 {
				rest = rest[2:]
			}
		}
	}
	if len(args) > 1 {
		switch strings.ToUpper(args[0]) {
		case "AUTH": // every argument may be the password
			args = append(args[:1], "***")
			more = false
		case "ACL", "CONFIG", "MIGRATE", "HELLO":
			args = append(args[:2], "***")
			more = false
		}
	}
	out := strings.Join(args, " ")
	if more {
		out += " ..."
	}
	return out
}

func quoteArg(a []byte) string {
	for _, c := range a {
		if c <= ' ' || c == '"' || c >= 0x7f {
			return strconv.Quote(string(a))
		}
	}
	return string(a)
}

// renderReply shows the start of a reply as RESP, quoted.
func renderReply(b []byte, more bool) string {
	out := strconv.Quote(string(b))
	if more {
		out += "..."
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..." + strconv.Itoa(len(s)-n) + " more bytes"
}
