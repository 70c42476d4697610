// Package resp reads and writes the Redis serialization protocol (RESP2 and
// RESP3) as a stream: one value at a time from a *bufio.Reader, with bulk
// payloads handed on through a fixed buffer so that no whole reply is ever
// held in memory. It also inspects client commands cheaply (the command name
// and the few small arguments a proxy must understand) and appends the
// proxy's own replies. A command or reply already whole in the buffer is
// checked in one pass and moved in one write (whole.go); anything else is
// read line by line, with the same result. A caller that moves a run of
// such values at once (a pipeline) checks them one after the other in the
// buffer (Pending, CommandAt, ValueAt) and takes them together (Consume).
//
// It imports nothing of the project's own.
package resp
