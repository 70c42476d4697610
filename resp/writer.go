package resp

import "strings"

// Append-style helpers for the proxy's own replies and commands, in the
// manner of redcon: they append to b and return the extended slice, so a
// caller reuses one buffer and allocates nothing in steady state.

// AppendSimple appends a simple string: +s\r\n.
func AppendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = appendLine(b, s)
	return append(b, '\r', '\n')
}

// AppendError appends an error reply: -msg\r\n. msg starts with the error
// code ("ERR ...", "NOAUTH ..."); line breaks in it become spaces.
func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	b = appendLine(b, msg)
	return append(b, '\r', '\n')
}

func appendLine(b []byte, s string) []byte {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return append(b, s...)
}

// AppendBulk appends a bulk string: $len\r\np\r\n.
func AppendBulk(b []byte, p []byte) []byte {
	b = append(b, '$')
	b = formatInt(b, int64(len(p)))
	b = append(b, '\r', '\n')
	b = append(b, p...)
	return append(b, '\r', '\n')
}

// AppendBulkString is AppendBulk for a string.
func AppendBulkString(b []byte, s string) []byte {
	b = append(b, '$')
	b = formatInt(b, int64(len(s)))
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendArray appends an array header for n elements: *n\r\n.
func AppendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = formatInt(b, int64(n))
	return append(b, '\r', '\n')
}

// AppendNullArray appends a null array (an aborted EXEC): *-1 in RESP2,
// _ in RESP3.
func AppendNullArray(b []byte, proto int) []byte {
	if proto >= 3 {
		return append(b, "_\r\n"...)
	}
	return append(b, "*-1\r\n"...)
}

// AppendCommand appends a command as a multibulk request.
func AppendCommand(b []byte, args ...string) []byte {
	b = AppendArray(b, len(args))
	for _, a := range args {
		b = AppendBulkString(b, a)
	}
	return b
}
